"""The scheduler process: its jobs, the one-runner lock, failures, and clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app import create_app
from extensions import db as extension
from integrations.sync import sync_lock
from jobs import tasks
from jobs.lock import ADVISORY_LOCK_KEY, FileLock, PostgresAdvisoryLock, ProcessLock, lock_for
from jobs.models import JobRun
from jobs.scheduler import (
    JobSpec,
    build_scheduler,
    configured_jobs,
    run_scheduler,
    scheduler_lock,
    sync_job_store,
)
from planning.models import DigestDelivery, Review, SyncRun, utcnow
from tests.conftest import skip_or_fail
from tests.factories import make_user
from tests.jobs import sample_jobs

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll `condition` until it is truthy; fail (not flake) only after a generous timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def job_runs(job: str) -> list[JobRun]:
    extension.session.rollback()  # a fresh transaction sees what other threads and processes committed
    return list(
        extension.session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.scheduled_for))
    )


@pytest.fixture
def no_bound_app(monkeypatch):
    """Leave the jobs' process-wide app as it was once the test ends."""
    monkeypatch.setattr(tasks, "_app", None)


def test_the_configured_jobs_follow_the_settings(app):
    config = {"REVIEW_CRON": "30 6 * * tue", "REVIEW_TIMEZONE": "Europe/Paris", "SYNC_INTERVAL_MINUTES": 10}

    sync, review = configured_jobs(config)

    assert (sync.id, sync.func) == ("sync", "jobs.tasks:sync_job")
    assert isinstance(sync.trigger, IntervalTrigger)
    assert sync.trigger.interval == timedelta(minutes=10)
    assert (review.id, review.func) == ("review", "jobs.tasks:review_job")
    assert isinstance(review.trigger, CronTrigger)
    after = datetime(2026, 11, 2, 12, tzinfo=UTC)  # a Monday
    assert review.trigger.get_next_fire_time(None, after) == datetime(2026, 11, 3, 5, 30, tzinfo=UTC)
    assert [spec.id for spec in configured_jobs({**config, "SYNC_INTERVAL_MINUTES": 0})] == ["review"]


def test_the_default_review_runs_mondays_at_seven_in_the_review_timezone(app):
    [_, review] = configured_jobs(app.config)
    assert app.config["REVIEW_CRON"] == "0 7 * * mon"
    assert review.trigger.get_next_fire_time(None, datetime(2026, 11, 4, tzinfo=UTC)) == datetime(
        2026, 11, 9, 7, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("REVIEW_CRON", "0 7 * *", "REVIEW_CRON '0 7 * *' is not a valid crontab"),
        ("REVIEW_CRON", "61 7 * * mon", "REVIEW_CRON '61 7 * * mon' is not a valid crontab"),
        ("REVIEW_TIMEZONE", "Mars/Olympus", "REVIEW_TIMEZONE 'Mars/Olympus' is not a known time zone"),
        ("SYNC_INTERVAL_MINUTES", -5, "SYNC_INTERVAL_MINUTES must be 0 (no scheduled sync)"),
    ],
)
def test_a_bad_schedule_setting_stops_the_scheduler_command_with_a_clear_message(app, setting, value, words):
    app.config[setting] = value

    result = app.test_cli_runner().invoke(args=["scheduler"])

    assert result.exit_code == 1
    assert f"Error: cannot start the scheduler: {words}" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def paused_scheduler(app) -> Iterator[BackgroundScheduler]:
    """A scheduler on the app database's job store that never runs anything."""
    scheduler = build_scheduler(app)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=False)


def test_stored_jobs_follow_the_configuration_and_unchanged_ones_keep_their_next_run(app, paused_scheduler):
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    hourly = JobSpec("sync", "jobs.tasks:sync_job", IntervalTrigger(hours=1, start_date=anchor, timezone=UTC))
    weekly = JobSpec(
        "review", "jobs.tasks:review_job", CronTrigger.from_crontab("0 7 * * mon", timezone="UTC")
    )
    sync_job_store(paused_scheduler, [hourly, weekly])
    missed = datetime.now(UTC) - timedelta(minutes=3)
    paused_scheduler.modify_job("review", next_run_time=missed)

    sync_job_store(paused_scheduler, [weekly])  # sync turned off, review unchanged

    [review] = paused_scheduler.get_jobs()
    assert (review.id, review.func_ref) == ("review", "jobs.tasks:review_job")
    # Left alone, the run missed while no scheduler was up still happens (within the grace time).
    assert review.next_run_time == missed
    assert (review.coalesce, review.max_instances, review.misfire_grace_time) == (True, 1, 600)

    tuesday = JobSpec(
        "review", "jobs.tasks:review_job", CronTrigger.from_crontab("0 7 * * tue", timezone="UTC")
    )
    sync_job_store(paused_scheduler, [tuesday])
    [review] = paused_scheduler.get_jobs()
    assert review.next_run_time.weekday() == 1


def finished_runs(job: str, count: int) -> list[JobRun] | None:
    """The first `count` runs of `job` once all of them have finished (a run row exists while running)."""
    runs = job_runs(job)[:count]
    if len(runs) < count or any(run.outcome == "running" for run in runs):
        return None
    return runs


@contextmanager
def scheduler_thread(
    app: Any, tmp_path: Path, jobs: list[JobSpec]
) -> Iterator[tuple[threading.Thread, list[str]]]:
    """Run the scheduler in a thread on a file lock; yield it and the states it reports; stop it after."""
    stop = threading.Event()
    states: list[str] = []
    runner = threading.Thread(
        target=run_scheduler,
        kwargs={
            "app": app,
            "jobs": jobs,
            "stop": stop,
            "lock": FileLock(tmp_path / "scheduler.lock"),
            "heartbeat_seconds": 0.1,
            "on_state": states.append,
        },
    )
    runner.start()
    try:
        yield runner, states
    finally:
        stop.set()
        runner.join(TIMEOUT)


def test_a_failing_job_is_recorded_and_the_next_period_still_runs(app, tmp_path, no_bound_app):
    start = datetime.now(UTC).replace(microsecond=0)
    flaky = JobSpec("flaky", "tests.jobs.sample_jobs:flaky_job", IntervalTrigger(seconds=1, start_date=start))
    with scheduler_thread(app, tmp_path, [flaky]) as (runner, states):
        runs = wait_for(lambda: finished_runs("flaky", 2), "two finished periods of the job")

    assert not runner.is_alive()
    assert states == ["leader", "stopped"]
    first, second = runs[:2]
    assert first.outcome == "failed"
    assert "RuntimeError: the first period fails on purpose" in first.error
    assert second.scheduled_for > first.scheduled_for
    assert (second.outcome, second.message) == ("succeeded", "ran after a failure")


def test_a_period_coming_due_while_the_leader_stops_is_run_by_the_next_leader(app, tmp_path, no_bound_app):
    # The leader, told to stop, waits for its running job; a period of another job coming due meanwhile
    # was consumed by it (its next run moved on, its executor already shut down) and never ran anywhere.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    tick_due = start + timedelta(seconds=3)
    jobs = [
        JobSpec("held", "tests.jobs.sample_jobs:held_job", IntervalTrigger(hours=1, start_date=start)),
        JobSpec("tick", "tests.jobs.sample_jobs:tick_job", IntervalTrigger(hours=1, start_date=tick_due)),
    ]
    sample_jobs.release_held.clear()
    stop = threading.Event()
    lock = FileLock(tmp_path / "scheduler.lock")
    leader = threading.Thread(
        target=run_scheduler,
        kwargs={"app": app, "jobs": jobs, "stop": stop, "lock": lock, "heartbeat_seconds": 0.1},
    )
    leader.start()
    try:
        wait_for(lambda: job_runs("held"), "the held job to start")
        assert datetime.now(UTC) < tick_due, "the machine was too slow to stop the leader before the tick"
        stop.set()
        wait_for(lambda: datetime.now(UTC) > tick_due, "the tick's period to come due")
    finally:
        sample_jobs.release_held.set()
        leader.join(TIMEOUT)
    assert not leader.is_alive()
    assert job_runs("tick") == []

    with scheduler_thread(app, tmp_path, jobs):
        [tick] = wait_for(lambda: finished_runs("tick", 1), "the next leader to run the tick")

    assert tick.scheduled_for == tick_due
    assert tick.outcome == "succeeded"


def test_a_run_left_running_by_a_killed_leader_is_recorded_as_failed_by_the_next(app, tmp_path, no_bound_app):
    # What a leader killed with SIGKILL halfway through a sync leaves behind.
    orphan = JobRun(
        job="sync",
        scheduled_for=datetime(2026, 11, 2, 7, tzinfo=UTC),
        started_at=datetime(2026, 11, 2, 7, tzinfo=UTC),
        outcome="running",
        runner="old-host:4242",
    )
    extension.session.add(orphan)
    extension.session.commit()
    with scheduler_thread(app, tmp_path, []) as (_, states):
        wait_for(lambda: "leader" in states, "the scheduler to lead")

    [run] = job_runs("sync")
    assert run.outcome == "failed"
    assert run.finished_at is not None
    assert "Interrupted: the scheduler old-host:4242 stopped before this run finished" in run.error
    assert "digest" not in run.error


@pytest.mark.parametrize("handing_over", [False, True], ids=["between emails", "handing one over"])
def test_a_digest_cut_off_by_a_killed_leader_says_how_to_reach_the_others(
    app, tmp_path, no_bound_app, handing_over
):
    # Killed halfway through Monday's digest: those not yet emailed would hear nothing until next week's
    # review, and the run only said "this period does not run again". Killed while handing an email to
    # the SMTP server, it leaves that email's claim unconfirmed: it may never have gone out.
    app.config["REVIEW_TIMEZONE"] = "America/Los_Angeles"
    monday_7am_la = datetime(2026, 11, 2, 15, tzinfo=UTC)  # 2 November, 07:00 in Los Angeles
    session = extension.session
    session.add(
        JobRun(
            job="digest",
            scheduled_for=monday_7am_la + timedelta(hours=12),  # 19:00 there, still 2 November
            started_at=monday_7am_la,
            outcome="running",
            runner="old-host:4242",
        )
    )
    review = Review(as_of=date(2026, 11, 2), window_days=30, min_activities=5, stale_days=60)
    session.add(review)
    session.flush()
    walt = make_user(session, email="walt@example.com", role="manager")
    session.add(
        DigestDelivery(review_id=review.id, user_id=walt.id, accepted_at=None if handing_over else utcnow())
    )
    session.commit()
    with scheduler_thread(app, tmp_path, []) as (_, states):
        wait_for(lambda: "leader" in states, "the scheduler to lead")

    [run] = job_runs("digest")
    assert run.outcome == "failed"
    hint = "To email the people it had not reached yet: flask --app app digest --as-of 2026-11-02"
    if handing_over:
        hint += (
            ". It stopped while handing the email to walt@example.com to the SMTP server; that email may not "
            "have gone out: add --resend-unconfirmed to send it again"
        )
    assert run.error.strip().splitlines()[-1].endswith(hint)


def test_a_sync_run_left_running_by_a_killed_leader_is_recorded_as_interrupted_by_the_next(
    app, tmp_path, no_bound_app
):
    # A leader killed halfway through its sync leaves the sync run "running" too. The next leader records
    # it at once: the admin page must not show a sync running for the whole next interval (or forever
    # when the scheduled sync is off), while a sync someone really is running is left alone.
    started = datetime(2026, 11, 2, 7, tzinfo=UTC)
    killed = SyncRun(source="demo", status="running", started_at=started)
    live = SyncRun(source="file", status="running", started_at=started)
    extension.session.add_all([killed, live])
    extension.session.commit()
    killed_id, live_id = killed.id, live.id

    def sync_run(run_id: int) -> SyncRun:
        extension.session.rollback()  # see what the scheduler's thread committed
        run = extension.session.get(SyncRun, run_id)
        assert run is not None
        return run

    live_lock = sync_lock(extension.session, "file")
    assert live_lock.acquire()
    try:
        with scheduler_thread(app, tmp_path, []):
            killed_run = wait_for(
                lambda: (run := sync_run(killed_id)).status != "running" and run,
                "the next leader to record the killed sync run",
            )
        assert sync_run(live_id).status == "running"
    finally:
        live_lock.release()

    assert killed_run.status == "failed"
    assert killed_run.finished_at is not None
    assert killed_run.message.startswith("Interrupted: the process running this sync stopped")


def test_a_second_file_lock_waits_until_the_first_is_released(tmp_path):
    path = tmp_path / "stratlink.sqlite3.scheduler.lock"
    leader, standby = FileLock(path), FileLock(path)

    assert leader.acquire()
    assert not standby.acquire()
    assert standby.still_held() is False
    leader.release()
    assert standby.acquire()
    assert path.read_text().strip() == str(os.getpid())
    standby.release()


def test_the_lock_is_chosen_by_database(tmp_path):
    sqlite_lock = lock_for(f"sqlite:///{tmp_path}/data/stratlink.sqlite3")
    assert isinstance(sqlite_lock, FileLock)
    assert sqlite_lock.path == tmp_path / "data" / "stratlink.sqlite3.scheduler.lock"
    assert isinstance(lock_for("postgresql+psycopg://db.example.com/stratlink"), PostgresAdvisoryLock)
    assert isinstance(lock_for("sqlite://"), ProcessLock)


def test_a_database_in_memory_is_locked_by_name_within_the_process():
    first, second = lock_for("sqlite://", name="sync-demo"), lock_for("sqlite:///:memory:", name="sync-demo")
    other = lock_for("sqlite://", name="sync-file")

    assert first.acquire() and first.acquire()  # taking it again while held keeps it
    assert not second.acquire()
    assert other.acquire()
    first.release()
    assert not first.still_held()
    assert second.acquire()
    second.release()
    other.release()


def test_the_leaders_lock_of_a_relative_sqlite_url_is_beside_the_database_whatever_the_directory(
    tmp_path, monkeypatch
):
    # Flask-SQLAlchemy opens sqlite:///stratlink.sqlite3 in the instance folder; a lock next to that name
    # in the working directory let two schedulers started from two directories both lead.
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": "sqlite:///relative.sqlite3"}
    )
    locks = []
    for directory in ("one", "two"):
        (tmp_path / directory).mkdir()
        monkeypatch.chdir(tmp_path / directory)
        locks.append(scheduler_lock(app))

    assert [lock.path for lock in locks] == [Path(app.instance_path) / "relative.sqlite3.scheduler.lock"] * 2


@pytest.mark.postgres
def test_a_second_advisory_lock_waits_until_the_first_is_released(postgres):
    leader, standby = PostgresAdvisoryLock(postgres), PostgresAdvisoryLock(postgres)
    try:
        assert leader.acquire()
        assert leader.still_held()
        assert not standby.acquire()
        leader.release()
        assert not leader.still_held()
        assert standby.acquire()
    finally:
        leader.release()
        standby.release()


@pytest.mark.postgres
def test_an_advisory_lock_session_gives_up_on_a_silent_peer_within_about_a_minute(postgres):
    # A leader cut off by the network (no reset) must not keep the lock for the OS default of two hours.
    lock = PostgresAdvisoryLock(postgres)
    try:
        assert lock.acquire()
        session = lock._connection
        assert session is not None
        if not session.execute(text("SELECT inet_client_addr() IS NOT NULL")).scalar():
            skip_or_fail("the test database is reached over a Unix socket, where TCP keepalives do not apply")
        server = session.execute(
            text(
                "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'), "
                "current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')"
            )
        ).one()
        client = session.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        lock.release()
    assert tuple(server) == ("30", "10", "3", "60000")
    assert [client[name] for name in ("keepalives_idle", "keepalives_interval", "keepalives_count")] == [
        "30",
        "10",
        "3",
    ]
    assert client["tcp_user_timeout"] == "60000"


@pytest.mark.postgres
def test_an_advisory_lock_session_keeps_the_options_of_the_database_url(postgres):
    # DATABASE_URL's `?options=-c ...` (a search_path, a cloud proxy's endpoint) holds for the lock's
    # session too; the lock's own server settings used to replace it.
    url = make_url(postgres)
    url = url.update_query_dict({"options": "-c statement_timeout=4321"})
    lock = PostgresAdvisoryLock(url.render_as_string(hide_password=False))
    try:
        assert lock.acquire()
        assert lock._connection is not None
        timeout = lock._connection.execute(text("SELECT current_setting('statement_timeout')")).scalar()
    finally:
        lock.release()
    assert timeout == "4321ms"


@pytest.mark.postgres
def test_an_advisory_lock_session_names_its_lock_and_process_for_operators(app, postgres):
    # To cut a leader off (or see who leads), an operator finds its session in pg_stat_activity.
    leader, sync = lock_for(postgres), lock_for(postgres, name="sync-demo")
    try:
        assert leader.acquire()
        assert sync.acquire()
        extension.session.rollback()
        holders = dict(
            extension.session.execute(
                text(
                    "SELECT activity.application_name, locks.objid::bigint | (locks.classid::bigint << 32) "
                    "FROM pg_locks AS locks JOIN pg_stat_activity AS activity USING (pid) "
                    "WHERE locks.locktype = 'advisory' AND locks.granted"
                )
            ).all()
        )
    finally:
        leader.release()
        sync.release()
    process = f"{socket.gethostname()}:{os.getpid()}"
    assert holders[f"stratlink scheduler lock {process}"] == ADVISORY_LOCK_KEY
    assert f"stratlink sync-demo lock {process}" in holders


class Process:
    """A child process whose output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.popen = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.popen.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))
                self._changed.wait(min(remaining, 0.5))

    def terminate(self, timeout: float = TIMEOUT) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """Make sure the process is gone and its pipe closed."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    @property
    def runner(self) -> str:
        return f"{socket.gethostname()}:{self.popen.pid}"


def child_env(database_url: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "REVIEW_", "SYNC_"))
    }
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY="test-secret-key",
        STRATLINK_SOURCE="demo",
        SYNC_INTERVAL_MINUTES="0",  # no sync of the demo org into the test database
        REVIEW_CRON="0 0 1 1 *",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_a_second_scheduler_command_stands_by_and_takes_over_after_sigterm(app, database_url):
    command = [sys.executable, "-m", "flask", "--app", "app", "scheduler", "--retry-seconds", "0.2"]
    first = Process(command, child_env(database_url))
    second = None
    try:
        first.wait_for_line(f"scheduler {first.runner} leader")
        second = Process(command, child_env(database_url))
        second.wait_for_line(f"scheduler {second.runner} standby")
        assert not [line for line in second.lines if f"{second.runner} leader" in line]

        assert first.terminate() == 0
        first.wait_for_line(f"scheduler {first.runner} stopped")
        second.wait_for_line(f"scheduler {second.runner} leader")
        assert second.terminate() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
    extension.session.rollback()
    stored = extension.session.execute(
        select(func.count()).select_from(extension.metadata.tables["scheduler_jobs"])
    )
    assert stored.scalar() == 1  # the review job, kept in the app database


@pytest.mark.postgres
def test_two_scheduler_processes_on_postgresql_run_each_review_exactly_once(app, postgres):
    command = [sys.executable, "-m", "tests.jobs.scheduler_process", postgres]
    first = Process(command, child_env(postgres))
    second = None
    try:
        first.wait_for_line(f"scheduler {first.runner} leader")
        second = Process(command, child_env(postgres))
        second.wait_for_line(f"scheduler {second.runner} standby")
        wait_for(lambda: len(job_runs("review")) >= 3, "three reviews by the first process")
        assert first.terminate() == 0
        second.wait_for_line(f"scheduler {second.runner} leader")
        wait_for(
            lambda: sum(run.runner == second.runner for run in job_runs("review")) >= 3,
            "three reviews by the second process",
        )
        assert second.terminate() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()

    reviews = job_runs("review")
    assert {run.outcome for run in reviews} == {"succeeded"}
    assert len({run.scheduled_for for run in reviews}) == len(reviews)
    # One runner at a time: every run of the first process comes before every run of the second.
    runners = [run.runner for run in reviews]
    assert set(runners) == {first.runner, second.runner}
    assert runners == sorted(runners, key=lambda runner: runner == second.runner)
    # No process ever found its period already taken: nobody tried to run a review twice.
    assert not [line for line in first.lines + second.lines if "already ran" in line]
    assert [run.outcome for run in job_runs("digest")] == ["skipped"] * len(reviews)
