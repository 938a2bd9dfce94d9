"""Job runs: each period runs once, failures are recorded, the review job chains its digest."""

from __future__ import annotations

import json
import os
from datetime import date

import pytest
from sqlalchemy import func, select, text

from jobs import tasks
from jobs.models import JobRun
from jobs.tasks import JobSkipped, review_job, run_recorded, sync_job
from planning.models import Account, Review
from tests.factories import make_account, make_activity, make_user, utc

MONDAY_7AM = utc(2026, 11, 2, 7)


def runs(db, job=None):
    statement = select(JobRun).order_by(JobRun.scheduled_for, JobRun.id)
    if job is not None:
        statement = statement.where(JobRun.job == job)
    return list(db.scalars(statement))


@pytest.fixture
def scheduled_for():
    """Pretend the scheduler planned the runs of this test for Monday 07:00 UTC."""

    def plan(moment):
        return tasks.SCHEDULED_FOR.set(moment)

    tokens = [plan(MONDAY_7AM)]
    yield lambda moment: tokens.append(plan(moment))
    for token in reversed(tokens):
        tasks.SCHEDULED_FOR.reset(token)


def test_a_period_runs_once_however_often_it_is_started(db):
    calls = []

    def work(session):
        calls.append(1)
        return "did it"

    first = run_recorded(db, "nightly", MONDAY_7AM, work)
    again = run_recorded(db, "nightly", MONDAY_7AM, work)

    assert again is None
    assert calls == [1]
    [run] = runs(db)
    assert (run.job, run.scheduled_for, run.outcome, run.message) == (
        "nightly",
        MONDAY_7AM,
        "succeeded",
        "did it",
    )
    assert run.id == first.id
    assert run.finished_at >= run.started_at
    assert run.runner.endswith(f":{os.getpid()}")


def test_a_failed_run_is_recorded_and_the_next_period_runs_normally(db):
    def failing(session):
        make_account(session, name="Half-written")
        raise ValueError("the CRM said no")

    run_recorded(db, "nightly", MONDAY_7AM, failing)
    run_recorded(db, "nightly", utc(2026, 11, 9, 7), lambda session: "fine again")

    failed, succeeded = runs(db)
    assert failed.outcome == "failed"
    assert "ValueError: the CRM said no" in failed.error
    assert failed.finished_at is not None
    # The failed run's own writes were rolled back.
    assert db.scalar(select(func.count()).select_from(Account)) == 0
    assert (succeeded.outcome, succeeded.message, succeeded.error) == ("succeeded", "fine again", None)


def test_a_job_with_nothing_to_do_is_recorded_as_skipped(db):
    def nothing(session):
        raise JobSkipped("nothing new")

    run_recorded(db, "nightly", MONDAY_7AM, nothing)

    [run] = runs(db)
    assert (run.outcome, run.message) == ("skipped", "nothing new")


def test_the_review_job_reviews_the_scheduled_day_and_sends_the_digest_once(
    db, app, smtp_server, scheduled_for
):
    app.config["REVIEW_TIMEZONE"] = "America/Los_Angeles"
    rep = make_user(db, email="rita@example.com")
    account = make_account(db, owner=rep)
    make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 30))
    db.commit()

    review_job()
    review_job()

    # Monday 07:00 UTC is still Sunday in Los Angeles.
    [review] = db.scalars(select(Review)).all()
    assert review.as_of == date(2026, 11, 1)
    assert review.timezone == "America/Los_Angeles"
    assert [(run.job, run.outcome) for run in runs(db)] == [("review", "succeeded"), ("digest", "succeeded")]
    assert runs(db, "review")[0].message == f"review {review.id} as of 2026-11-01: 1 finding"
    assert runs(db, "digest")[0].message == f"1 digest sent for review {review.id}"
    assert [message.recipients for message in smtp_server.messages] == [["rita@example.com"]]


def test_a_second_review_of_the_same_day_sends_no_second_digest(db, app, smtp_server, scheduled_for):
    account = make_account(db, owner=make_user(db, email="rita@example.com"))
    make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 30))
    db.commit()

    review_job()
    scheduled_for(utc(2026, 11, 2, 19))  # REVIEW_CRON="0 7,19 * * *": the same day, twice
    review_job()

    review_id = db.scalar(select(Review.id))
    assert [(run.job, run.outcome) for run in runs(db)] == [
        ("review", "succeeded"),
        ("digest", "succeeded"),
        ("review", "succeeded"),
        ("digest", "skipped"),
    ]
    assert runs(db, "digest")[1].message.startswith(f"the digest of review {review_id} already went out")
    assert [message.recipients for message in smtp_server.messages] == [["rita@example.com"]]


def test_the_digest_is_skipped_when_the_review_found_nothing(db, app, smtp_server, scheduled_for):
    review_job()

    assert [(run.job, run.outcome, run.message) for run in runs(db)] == [
        ("review", "succeeded", f"review {db.scalar(select(Review.id))} as of 2026-11-02: 0 findings"),
        ("digest", "skipped", "nothing to report"),
    ]
    assert smtp_server.messages == []


def test_a_morning_review_with_nothing_to_report_leaves_the_days_digest_to_a_later_run(
    db, app, smtp_server, scheduled_for
):
    review_job()  # 07:00: nothing piled up yet
    account = make_account(db, owner=make_user(db, email="rita@example.com"))
    make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 11, 2, 9))
    db.commit()
    scheduled_for(utc(2026, 11, 2, 19))
    review_job()  # 19:00, the same day: a contract signed with no strategy

    assert [(run.outcome, run.message) for run in runs(db, "digest")] == [
        ("skipped", "nothing to report"),
        ("succeeded", f"1 digest sent for review {db.scalar(select(Review.id))}"),
    ]
    assert [message.recipients for message in smtp_server.messages] == [["rita@example.com"]]


def test_an_unreachable_smtp_server_fails_the_digest_not_the_review(db, app, scheduled_for):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=9)  # the discard port: nothing listens
    account = make_account(db, owner=make_user(db))
    make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 30))
    db.commit()

    review_job()
    scheduled_for(utc(2026, 11, 9, 7))
    review_job()

    assert [(run.job, run.outcome) for run in runs(db)] == [
        ("review", "succeeded"),
        ("digest", "failed"),
        ("review", "succeeded"),
        ("digest", "failed"),
    ]
    assert "ConnectionRefusedError" in runs(db, "digest")[0].error
    # The exception's line, which `job-runs` shows, names the server to fix.
    assert runs(db, "digest")[0].message.startswith(
        "planning.digest.DigestNotSent: could not send the digest through 127.0.0.1:9:"
    )


def test_the_sync_job_pulls_the_configured_source(db, app, tmp_path, scheduled_for):
    export = tmp_path / "crm.json"
    export.write_text(
        json.dumps(
            {
                "users": [{"id": "U1", "email": "vera@example.com", "name": "Vera Park", "role": "manager"}],
                "accounts": [{"id": "A1", "name": "Acme Corp", "owner_id": "U1"}],
            }
        )
    )
    app.config.update(STRATLINK_SOURCE="file", STRATLINK_IMPORT_PATH=str(export))

    sync_job()

    [run] = runs(db)
    assert (run.job, run.outcome) == ("sync", "succeeded")
    assert run.message.startswith("sync run ")
    assert db.scalar(select(Account.name)) == "Acme Corp"


def test_the_sync_job_skips_its_period_while_someone_else_syncs_the_source(
    db, app, tmp_path, scheduled_for, another_sync_of
):
    app.config.update(STRATLINK_SOURCE="file", STRATLINK_IMPORT_PATH=str(tmp_path / "crm.json"))
    (tmp_path / "crm.json").write_text("{}")
    another_sync_of("file")

    sync_job()

    [run] = runs(db)
    assert (run.outcome, run.message) == (
        "skipped",
        "A sync from file is already running; this one did not start.",
    )


def test_a_failing_sync_is_recorded_as_failed(db, app, tmp_path, scheduled_for):
    app.config.update(STRATLINK_SOURCE="file", STRATLINK_IMPORT_PATH=str(tmp_path / "missing.json"))

    sync_job()

    [run] = runs(db)
    assert run.outcome == "failed"
    assert "missing.json" in run.error


def test_job_runs_lists_the_latest_runs_with_a_failures_last_error_line(db, app):
    run_recorded(db, "sync", MONDAY_7AM, lambda session: "sync run 1 succeeded: 3 inserted")

    def failing(session):
        raise ValueError("the CRM said no")

    run_recorded(db, "salesforce_writeback", MONDAY_7AM.replace(hour=8), failing)
    cli = app.test_cli_runner()

    everything = cli.invoke(args=["job-runs"])
    only_sync = cli.invoke(args=["job-runs", "--job", "sync"])
    no_review = cli.invoke(args=["job-runs", "--job", "review"])
    unknown = cli.invoke(args=["job-runs", "--job", "bogus"])

    assert everything.exit_code == 0, everything.output
    header, latest, earliest = everything.output.splitlines()
    assert header.split() == ["job", "scheduled", "for", "(UTC)", "outcome", "took", "runner", "/", "message"]
    assert latest.startswith(f"salesforce_writeback {MONDAY_7AM.replace(hour=8):%Y-%m-%d %H:%M:%S}  failed ")
    assert latest.endswith("ValueError: the CRM said no")
    assert earliest.startswith(f"sync                 {MONDAY_7AM:%Y-%m-%d %H:%M:%S}  succeeded ")
    assert earliest.endswith("sync run 1 succeeded: 3 inserted")
    assert [line.split()[0] for line in only_sync.output.splitlines()[1:]] == ["sync"]
    assert no_review.output == "No review job has run yet.\n"
    assert unknown.exit_code == 2
    assert "Invalid value for '--job'" in unknown.output


def test_job_runs_shows_a_database_errors_own_line_not_sqlalchemys_link(db, app):
    # A database error's text ends with the SQL and "(Background on this error at: https://sqlalche.me/...)";
    # job-runs showed that link as all it knew of a sync cut off from PostgreSQL.
    def failing(session):
        session.execute(text("SELECT id FROM no_such_table"))

    run = run_recorded(db, "sync", MONDAY_7AM, failing)

    assert run is not None and run.outcome == "failed"
    assert "sqlalche.me" in run.error  # the whole traceback is kept
    output = app.test_cli_runner().invoke(args=["job-runs"]).output
    [line] = output.splitlines()[1:]
    assert "sqlalche.me" not in line
    assert "OperationalError: " in line or "ProgrammingError: " in line
    assert line.endswith("no_such_table") or 'relation "no_such_table" does not exist' in line
