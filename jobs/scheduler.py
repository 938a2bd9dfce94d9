"""The scheduler process: one leader runs APScheduler, any other process waits on standby.

`run_scheduler(app)` loops: take the runner lock (jobs.lock) or wait `retry_seconds` and try again; as
leader, start APScheduler with its job store in the app database, bring the stored jobs in line with the
configuration, and check every `heartbeat_seconds` that the lock is still ours. A stop request (SIGTERM,
SIGINT) or a lost lock shuts the scheduler down, waiting for running jobs, and releases the lock.

Nothing here runs at import: only `flask --app app scheduler` (or a test that asks) starts it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from extensions import db
from integrations.sync import close_abandoned_syncs
from jobs import tasks
from jobs.lock import RunnerLock, lock_for
from jobs.models import SCHEDULER_JOBS_TABLE

log = logging.getLogger(__name__)

# A run delayed by a restart or a leader handover still runs within this many seconds (APScheduler's
# default is one second, which silently drops such runs).
MISFIRE_GRACE_SECONDS = 600
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS}
# Interval jobs count from a fixed instant, so their periods stay the same across restarts and leaders.
INTERVAL_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: its id, its "module:function" reference and when it runs."""

    id: str
    func: str
    trigger: BaseTrigger
    kwargs: dict[str, Any] = field(default_factory=dict)


class SchedulerConfigError(ValueError):
    """A scheduler setting (REVIEW_CRON, REVIEW_TIMEZONE, SYNC_INTERVAL_MINUTES) that cannot be used."""


def configured_jobs(config: Mapping[str, Any]) -> list[JobSpec]:
    """Return the jobs the configuration asks for: the sync every few minutes, the weekly review.

    Raises SchedulerConfigError, naming the setting, when one cannot be used.
    """
    from planning.review import ReviewParameterError, zone_for

    timezone = config.get("REVIEW_TIMEZONE") or "UTC"
    try:
        zone_for(timezone)
    except ReviewParameterError as error:
        raise SchedulerConfigError(
            f"REVIEW_TIMEZONE {timezone!r} is not a known time zone (e.g. UTC, Europe/Paris)"
        ) from error
    cron = config.get("REVIEW_CRON") or "0 7 * * mon"
    try:
        review_trigger = CronTrigger.from_crontab(cron, timezone=timezone)
    except ValueError as error:
        raise SchedulerConfigError(
            f"REVIEW_CRON {cron!r} is not a valid crontab (five fields: minute hour day month weekday, "
            f"e.g. '0 7 * * mon'): {error}"
        ) from error
    jobs = [JobSpec(tasks.REVIEW_JOB, "jobs.tasks:review_job", review_trigger)]
    minutes = int(config.get("SYNC_INTERVAL_MINUTES") or 0)
    if minutes < 0:
        raise SchedulerConfigError(
            f"SYNC_INTERVAL_MINUTES must be 0 (no scheduled sync) or a number of minutes, got {minutes}"
        )
    if minutes > 0:  # 0 turns the scheduled sync off.
        jobs.insert(
            0,
            JobSpec(
                tasks.SYNC_JOB,
                "jobs.tasks:sync_job",
                IntervalTrigger(minutes=minutes, start_date=INTERVAL_ANCHOR, timezone=UTC),
            ),
        )
    return jobs


def _run_with_scheduled_time(
    job: Any, jobstore_alias: str, run_times: list[datetime], logger_name: str
) -> Any:
    events = []
    for run_time in run_times:
        token = tasks.SCHEDULED_FOR.set(run_time)
        try:
            events.extend(run_job(job, jobstore_alias, [run_time], logger_name))
        finally:
            tasks.SCHEDULED_FOR.reset(token)
    return events


class ScheduledTimeExecutor(ThreadPoolExecutor):
    """A thread pool that tells each run the time it was scheduled for (see tasks.scheduled_time).

    APScheduler 3 does not pass the scheduled time to the job function; the job needs it to record
    its run once per period.
    """

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def callback(future: Any) -> None:
            error = future.exception()
            if error is not None:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(
            _run_with_scheduled_time, job, job._jobstore_alias, run_times, self._logger.name
        )
        future.add_done_callback(callback)


class AppEngineJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the app's engine, which the store must leave open.

    The stock store disposes of its engine at shutdown, before the scheduler's thread has finished
    with its connection; on the app's engine that would also cut off the jobs' sessions.
    """

    def shutdown(self) -> None:
        """Leave the app's engine to the app."""


class LeaderScheduler(BackgroundScheduler):
    """APScheduler's background scheduler, except that once told to shut down it takes no due job.

    `shutdown(wait=True)` marks the scheduler stopped, then waits for the running jobs. Meanwhile its
    thread still woke for a job coming due, failed to hand it to the executor (already shut down) and
    moved the job's next run time on in the shared job store: the next leader never ran that period (a
    sync crossing Monday 07:00 while a deploy restarts the scheduler lost the week's review). Left due, the
    period runs on the next leader, within the misfire grace time.
    """

    def _process_jobs(self) -> float | None:
        # Under the job stores' lock, which shutdown() holds from just after marking the scheduler stopped
        # until the executors have finished: either the jobs are taken while the executor still accepts
        # them (and shutdown waits for them), or the scheduler is seen stopped and nothing is taken.
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:
                return None
            next_wakeup: float | None = super()._process_jobs()
            return next_wakeup


def build_scheduler(app: Flask) -> BackgroundScheduler:
    """Build (not start) the scheduler: job store in the app database, one instance per job."""
    return LeaderScheduler(
        jobstores={"default": AppEngineJobStore(engine=db.engine, tablename=SCHEDULER_JOBS_TABLE)},
        executors={"default": ScheduledTimeExecutor(max_workers=4)},
        job_defaults=dict(JOB_DEFAULTS),
        timezone=app.config.get("REVIEW_TIMEZONE") or "UTC",
    )


def _same_job(stored: Any, spec: JobSpec) -> bool:
    return (
        stored.func_ref == spec.func
        and repr(stored.trigger) == repr(spec.trigger)
        and dict(stored.kwargs) == spec.kwargs
        and stored.coalesce == JOB_DEFAULTS["coalesce"]
        and stored.max_instances == JOB_DEFAULTS["max_instances"]
        and stored.misfire_grace_time == JOB_DEFAULTS["misfire_grace_time"]
    )


def sync_job_store(scheduler: BackgroundScheduler, jobs: list[JobSpec]) -> None:
    """Make the stored jobs match `jobs`: add or replace what changed, drop what is gone.

    An unchanged job is left alone, so it keeps its stored next run time and a run missed while no
    scheduler was up still runs (within the misfire grace time).
    """
    wanted = {spec.id: spec for spec in jobs}
    for stored in scheduler.get_jobs():
        if stored.id not in wanted:
            log.info("removing job %s, no longer configured", stored.id)
            scheduler.remove_job(stored.id)
    for spec in jobs:
        stored = scheduler.get_job(spec.id)
        if stored is not None and _same_job(stored, spec):
            continue
        scheduler.add_job(
            spec.func,
            trigger=spec.trigger,
            id=spec.id,
            name=spec.id,
            kwargs=spec.kwargs,
            replace_existing=True,
            **JOB_DEFAULTS,
        )
        log.info("scheduled job %s: %s", spec.id, spec.trigger)


def scheduler_lock(app: Flask) -> RunnerLock:
    """Return the leader's lock for the app's database, beside the file its engine opens: a relative
    SQLite path in DATABASE_URL is in the instance folder (as Flask-SQLAlchemy reads it), not in the
    working directory, where schedulers started from two directories took a lock each and both led."""
    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
    return lock_for(url)


def run_scheduler(
    app: Flask,
    *,
    jobs: list[JobSpec] | None = None,
    stop: threading.Event | None = None,
    lock: RunnerLock | None = None,
    retry_seconds: float = 5.0,
    heartbeat_seconds: float = 5.0,
    on_state: Callable[[str], None] | None = None,
) -> None:
    """Run as leader when the runner lock is free, as standby otherwise, until `stop` is set."""
    stop = stop or threading.Event()
    lock = lock or scheduler_lock(app)
    specs = jobs if jobs is not None else configured_jobs(app.config)
    tasks.bind_app(app)

    def announce(state: str) -> None:
        log.info("scheduler %s %s (%s)", tasks.runner_name(), state, lock.description)
        if on_state is not None:
            on_state(state)

    standing_by = False
    while not stop.is_set():
        if not lock.acquire():
            if not standing_by:
                announce("standby")
                standing_by = True
            stop.wait(retry_seconds)
            continue
        standing_by = False
        announce("leader")
        try:
            _lead(app, specs, stop, lock, heartbeat_seconds)
        finally:
            lock.release()
        if not stop.is_set():
            announce("lost the lock")
    announce("stopped")


def _lead(
    app: Flask, specs: list[JobSpec], stop: threading.Event, lock: RunnerLock, heartbeat: float
) -> None:
    with app.app_context():
        scheduler = build_scheduler(app)
        scheduler.start(paused=True)
        try:
            # Runs a previous leader left "running" died with it; record them before running anything.
            tasks.close_interrupted_runs(db.session)
            close_abandoned_syncs(db.session)
            sync_job_store(scheduler, specs)
            scheduler.resume()
            while not stop.wait(heartbeat):
                if not lock.still_held():
                    return
        finally:
            # Waits for running jobs, so no job is cut off halfway through its transaction.
            scheduler.shutdown(wait=True)
