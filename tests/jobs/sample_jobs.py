"""Job functions only the scheduler tests use, referenced as "tests.jobs.sample_jobs:NAME"."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from extensions import db
from jobs.models import JobRun
from jobs.tasks import job_app_context, run_recorded, scheduled_time

FLAKY_JOB = "flaky"
HELD_JOB = "held"
TICK_JOB = "tick"
# Set by a test to let the held job finish.
release_held = threading.Event()


def flaky_job() -> None:
    """Fail in the first period it ever runs, succeed afterwards."""
    scheduled_for = scheduled_time()

    def work(session: Session) -> str:
        earlier = session.scalar(
            select(func.count())
            .select_from(JobRun)
            .where(JobRun.job == FLAKY_JOB, JobRun.scheduled_for < scheduled_for)
        )
        if not earlier:
            raise RuntimeError("the first period fails on purpose")
        return "ran after a failure"

    with job_app_context():
        run_recorded(db.session, FLAKY_JOB, scheduled_for, work)


def held_job() -> None:
    """Run until the test sets `release_held` (at most a minute)."""
    scheduled_for = scheduled_time()
    with job_app_context():
        run_recorded(db.session, HELD_JOB, scheduled_for, lambda _: str(release_held.wait(60)))


def tick_job() -> None:
    """Record a run and do nothing else."""
    scheduled_for = scheduled_time()
    with job_app_context():
        run_recorded(db.session, TICK_JOB, scheduled_for, lambda _: "tick")
