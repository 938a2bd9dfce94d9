"""Job functions only the scheduler tests use, referenced as "tests.jobs.sample_jobs:NAME"."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from extensions import db
from jobs.models import JobRun
from jobs.tasks import job_app_context, run_recorded, scheduled_time

FLAKY_JOB = "flaky"


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
