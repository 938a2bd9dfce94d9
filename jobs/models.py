"""Tables of the job process: the record of every job run, and APScheduler's job store."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from planning.models import UTCDateTime, utcnow


class JobOutcome(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class JobRun(db.Model):  # type: ignore[name-defined,misc]
    """One run of one scheduled job for one period; a period runs at most once."""

    __tablename__ = "job_runs"
    __table_args__ = (
        # The row a job inserts before doing anything: a conflict means this period already ran.
        UniqueConstraint("job", "scheduled_for", name="uq_job_runs_job"),
        CheckConstraint("outcome IN ('running', 'succeeded', 'failed', 'skipped')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16), default=JobOutcome.RUNNING.value)
    # Host and process id of the scheduler that ran it, so an operator can tell who ran what.
    runner: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<JobRun {self.job} {self.scheduled_for.isoformat()} {self.outcome}>"


# APScheduler's SQLAlchemyJobStore table, declared here too so that Alembic creates and owns it
# (the store only creates it if missing). The columns must match apscheduler.jobstores.sqlalchemy.
SCHEDULER_JOBS_TABLE = "scheduler_jobs"
scheduler_jobs = Table(
    SCHEDULER_JOBS_TABLE,
    db.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
