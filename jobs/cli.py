"""`flask --app app scheduler`: the long-running job process; `flask --app app job-runs`: its record."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from extensions import db, needs_current_schema
from jobs import tasks
from jobs.models import JobRun


@click.command("scheduler")
@click.option("--retry-seconds", default=5.0, show_default=True, help="How often a standby tries to lead.")
@with_appcontext
@needs_current_schema
def scheduler_command(retry_seconds: float) -> None:
    """Run the scheduled jobs (sync, review, digest); extra processes wait on standby."""
    from jobs.scheduler import SchedulerConfigError, configured_jobs, run_scheduler

    try:
        jobs = configured_jobs(current_app.config)
    except SchedulerConfigError as error:
        raise click.ClickException(f"cannot start the scheduler: {error}") from error
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        run_scheduler(app, jobs=jobs, stop=stop, retry_seconds=retry_seconds, heartbeat_seconds=retry_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("job-runs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--job", "job_name", default=None, type=click.Choice(tasks.JOBS), help="Only this job.")
@with_appcontext
@needs_current_schema
def job_runs_command(limit: int, job_name: str | None) -> None:
    """List the latest job runs: when, outcome, and what went wrong in a failed one."""
    statement = select(JobRun).order_by(JobRun.scheduled_for.desc(), JobRun.id.desc()).limit(limit)
    if job_name:
        statement = statement.where(JobRun.job == job_name)
    runs = list(db.session.scalars(statement))
    if not runs:
        click.echo(f"No {job_name} job has run yet." if job_name else "No job has run yet.")
        return
    width = max(len("job"), *(len(run.job) for run in runs))
    click.echo(f"{'job':<{width}} {'scheduled for (UTC)':<20} {'outcome':<10} {'took':>7}  runner / message")
    for run in runs:
        took = f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else "-"
        # A failed run's message is its exception's line; a run cut off has only the error's text.
        detail = run.message or ""
        if run.error and not run.message:
            detail = run.error.strip().splitlines()[-1]
        click.echo(
            f"{run.job:<{width}} {run.scheduled_for:%Y-%m-%d %H:%M:%S}  {run.outcome:<10} {took:>7}  "
            f"{run.runner or ''} {detail}".rstrip()
        )


def init_app(app: Flask) -> None:
    """Register the scheduler commands."""
    app.cli.add_command(scheduler_command)
    app.cli.add_command(job_runs_command)
