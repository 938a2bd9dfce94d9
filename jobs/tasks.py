"""The scheduled jobs (sync, review, digest), each run recorded once per period in `job_runs`.

A job function first inserts its JobRun row for (job, scheduled time) and commits it: if that row
already exists the period has run (or is running) elsewhere, and the job does nothing. Otherwise it
does its work and records the outcome — succeeded, skipped (nothing to do) or failed with the error —
so a failed run is visible and the next period starts afresh.

The scheduler references these functions as "jobs.tasks:review_job" etc.; they run in worker threads
of the scheduler process, each inside an app context of the process's one app.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from extensions import DbSession, db
from jobs.models import JobOutcome, JobRun

log = logging.getLogger(__name__)

SYNC_JOB = "sync"
REVIEW_JOB = "review"
DIGEST_JOB = "digest"
WRITEBACK_JOB = "salesforce_writeback"
JOBS = (SYNC_JOB, REVIEW_JOB, DIGEST_JOB, WRITEBACK_JOB)

# The time the scheduler planned the current run for; set by jobs.scheduler's executor.
SCHEDULED_FOR: ContextVar[datetime | None] = ContextVar("scheduled_for", default=None)
# Longest error text kept on a run (the end of a traceback is the useful part).
MAX_ERROR_CHARS = 8000

_app: Flask | None = None


class JobSkipped(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by a job's work when there is nothing to do; the run is recorded as skipped."""


def bind_app(app: Flask | None) -> None:
    """Make `app` the one app the jobs of this process run in (None: create one on first use)."""
    global _app
    _app = app


@contextmanager
def job_app_context() -> Iterator[Flask]:
    """Run inside the process's app (created once on first use when none was bound)."""
    global _app
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        yield _app


def runner_name() -> str:
    """Name this process the way job runs record it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def scheduled_time() -> datetime:
    """Return the time the current run was scheduled for (now, to the second, when run by hand)."""
    planned = SCHEDULED_FOR.get()
    if planned is None:
        planned = datetime.now(UTC).replace(microsecond=0)
    return planned.astimezone(UTC)


def run_recorded(
    session: DbSession, job: str, scheduled_for: datetime, work: Callable[[DbSession], str | None]
) -> JobRun | None:
    """Run `work` once for (job, scheduled_for) and record how it went; None when it already ran."""
    run = JobRun(
        job=job,
        scheduled_for=scheduled_for,
        started_at=datetime.now(UTC),
        outcome=JobOutcome.RUNNING.value,
        runner=runner_name(),
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        log.info("%s for %s already ran; skipping", job, scheduled_for.isoformat())
        return None

    outcome, message, error = JobOutcome.SUCCEEDED, None, None
    try:
        message = work(session)
        session.commit()
    except JobSkipped as skipped:
        session.rollback()
        outcome, message = JobOutcome.SKIPPED, str(skipped) or None
    except Exception as failure:
        session.rollback()
        outcome, error = JobOutcome.FAILED, traceback.format_exc()[-MAX_ERROR_CHARS:]
        message = failure_summary(failure)
        log.exception("%s for %s failed: %s", job, scheduled_for.isoformat(), failure)
    run.outcome = outcome.value
    run.message = message
    run.error = error
    run.finished_at = datetime.now(UTC)
    session.commit()
    log.info(
        "%s for %s %s%s", job, scheduled_for.isoformat(), outcome.value, f": {message}" if message else ""
    )
    return run


def failure_summary(failure: BaseException) -> str:
    """Return the exception's own line ("Type: first line of its message"), which `job-runs` shows.

    The traceback's last line is not it when the message spans lines: a database error ends with the SQL
    it ran and SQLAlchemy's "(Background on this error at: https://sqlalche.me/...)".
    """
    lines = "".join(traceback.format_exception_only(failure)).strip().splitlines()
    return (lines[0] if lines else type(failure).__name__)[:MAX_ERROR_CHARS]


def close_interrupted_runs(session: DbSession) -> list[JobRun]:
    """Mark the runs still "running" as failed: their scheduler died before it could record them.

    Only the leader runs jobs, so a new leader calls this before it runs any: a run left running then
    belongs to a leader that was killed or crashed (or lost its database connection) mid-run, and
    would otherwise show as running forever.
    """
    runs = list(
        session.scalars(select(JobRun).where(JobRun.outcome == JobOutcome.RUNNING.value).order_by(JobRun.id))
    )
    now = datetime.now(UTC)
    for run in runs:
        run.outcome = JobOutcome.FAILED.value
        run.finished_at = now
        run.error = (
            f"Interrupted: the scheduler {run.runner or '(unknown)'} stopped before this run finished "
            "(killed, crashed or cut off from the database); this period does not run again."
        )
        if run.job == DIGEST_JOB:
            run.error += _digest_recovery(session, review_day(run.scheduled_for))
        log.warning(
            "%s for %s was interrupted on %s; recorded as failed", run.job, run.scheduled_for, run.runner
        )
    session.commit()
    return runs


def _digest_recovery(session: DbSession, day: date) -> str:
    """Say how to finish an interrupted digest of the review as of `day`: the people it had not reached
    would otherwise wait for the next review (a week), and the one whose email it was handing over when
    it stopped may never get it."""
    from planning.digest import unconfirmed_deliveries
    from planning.findings import review_as_of

    hint = f" To email the people it had not reached yet: flask --app app digest --as-of {day.isoformat()}"
    review = review_as_of(session, day)
    # Its sender is gone: every claim it left unconfirmed is unsure, however recent.
    unsure = [] if review is None else unconfirmed_deliveries(session, review, settled=timedelta(0))
    if unsure:
        hint += (
            f". It stopped while handing the email to {', '.join(row.email for row in unsure)} to the SMTP "
            "server; that email may not have gone out: add --resend-unconfirmed to send it again"
        )
    return hint


def review_day(scheduled_for: datetime) -> date:
    """The day a review run scheduled then is as of: the scheduled time's date in REVIEW_TIMEZONE."""
    from planning.review import zone_for

    timezone = (current_app.config.get("REVIEW_TIMEZONE") if has_app_context() else None) or "UTC"
    return scheduled_for.astimezone(zone_for(timezone)).date()


def sync_work(session: DbSession) -> str:
    """Pull the configured source incrementally."""
    from integrations.sources import get_source
    from integrations.sync import SyncAlreadyRunning, run_sync

    config = current_app.config
    source = get_source(config["STRATLINK_SOURCE"], config)
    try:
        sync_run = run_sync(session, source, batch_size=int(config.get("SYNC_BATCH_SIZE") or 2000))
    except SyncAlreadyRunning as error:
        raise JobSkipped(str(error)) from error
    summary = (
        f"sync run {sync_run.id} {sync_run.status}: {sync_run.inserted} inserted, "
        f"{sync_run.updated} updated, {sync_run.unchanged} unchanged, {sync_run.failed} failed"
    )
    if sync_run.status == "failed":
        raise RuntimeError(f"{summary}: {sync_run.message}")
    return summary


def review_work(session: DbSession, scheduled_for: datetime) -> tuple[int, str]:
    """Run the review as of the scheduled day in REVIEW_TIMEZONE; return its id and a summary."""
    from planning.describe import counted
    from planning.models import Finding
    from planning.review import run_review_from_config

    config = current_app.config
    as_of = review_day(scheduled_for)
    review = run_review_from_config(session, config, as_of=as_of)
    session.commit()
    # Counted in SQL: loading a large org's findings just to count them would cost more than the review.
    count = session.scalar(select(func.count()).select_from(Finding).where(Finding.review_id == review.id))
    return review.id, f"review {review.id} as of {as_of.isoformat()}: {counted(count or 0, 'finding')}"


def digest_work(session: DbSession, review_id: int) -> str:
    """Email the digest of one review; skipped when there is nothing to report."""
    from planning.describe import counted
    from planning.digest import send_digests
    from planning.models import Review

    review = session.get(Review, review_id)
    if review is None:
        raise JobSkipped(f"review {review_id} no longer exists")
    if review.digest_sent_at is not None:
        raise JobSkipped(
            f"the digest of review {review_id} already went out ({review.digest_sent_at:%Y-%m-%d %H:%M} UTC)"
        )
    sent = send_digests(session, review, current_app.config)  # DigestNotSent names the SMTP server
    if not sent:
        raise JobSkipped("nothing to report")
    return f"{counted(len(sent), 'digest')} sent for review {review_id}"


def writeback_work(session: DbSession, review_id: int) -> str:
    """Send one review's results to Salesforce Account fields (`SALESFORCE_WRITEBACK=1`)."""
    from integrations.salesforce_writeback import write_back
    from planning.models import Review

    review = session.get(Review, review_id)
    if review is None:
        raise JobSkipped(f"review {review_id} no longer exists")
    result = write_back(session, review, current_app.config)
    if not result.enabled:
        raise JobSkipped(result.message or "write-back is off")
    summary = f"{result.updated} of {result.accounts} accounts written back in {result.requests} requests"
    if result.errors:
        first = result.errors[0]
        summary += f"; {len(result.errors)} refused (first: {first.external_id}: {first.message})"
    return summary


def writeback_wanted(config: Any) -> bool:
    """Tell whether reviews should be written back to Salesforce."""
    return bool(config.get("SALESFORCE_WRITEBACK")) and config.get("STRATLINK_SOURCE") == "salesforce"


def sync_job() -> None:
    """The scheduled incremental sync."""
    scheduled_for = scheduled_time()
    with job_app_context():
        run_recorded(db.session, SYNC_JOB, scheduled_for, sync_work)


def review_job() -> None:
    """The scheduled review, then its digest (recorded as a run of its own)."""
    scheduled_for = scheduled_time()
    with job_app_context():
        reviewed: dict[str, Any] = {}

        def review(session: DbSession) -> str:
            reviewed["id"], summary = review_work(session, scheduled_for)
            return summary

        run = run_recorded(db.session, REVIEW_JOB, scheduled_for, review)
        if run is None or run.outcome != JobOutcome.SUCCEEDED.value:
            return
        run_recorded(
            db.session, DIGEST_JOB, scheduled_for, lambda session: digest_work(session, reviewed["id"])
        )
        # Recorded on its own too: Salesforce being down must not mark the review or digest failed.
        if writeback_wanted(current_app.config):
            run_recorded(
                db.session,
                WRITEBACK_JOB,
                scheduled_for,
                lambda session: writeback_work(session, reviewed["id"]),
            )
