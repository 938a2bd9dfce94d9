"""Commands that pull records in: `flask --app app sync` and `flask --app app demo`.

Exit codes: 0 when the run succeeded (or landed with some bad records: "partial"), 1 when the run
failed, 2 on bad usage (an unknown source, no import file, options that do not fit the source).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from extensions import db, needs_current_schema, schema_problem
from integrations.base import Source, SourceError
from integrations.sources import UnknownSource, get_source
from integrations.sync import MAX_STORED_ERRORS, SyncNotStarted, run_sync
from planning.models import SyncRun

# The summary lists this many errors; the run keeps up to MAX_STORED_ERRORS of them.
ERRORS_SHOWN = 10


def init_app(app: Flask) -> None:
    """Register the sync and demo commands."""
    app.cli.add_command(sync_command)
    app.cli.add_command(demo_command)


@click.command("sync")
@click.option(
    "--source", "source_name", metavar="S", help="demo, file, salesforce or hubspot [STRATLINK_SOURCE]"
)
@click.option("--full", is_flag=True, help="Read everything again instead of changes since the last sync.")
@click.option(
    "--path", metavar="FILE", help="The JSON import file for --source file [STRATLINK_IMPORT_PATH]."
)
@with_appcontext
@needs_current_schema
def sync_command(source_name: str | None, full: bool, path: str | None) -> None:
    """Pull records from a source into the database."""
    name = (source_name or current_app.config["STRATLINK_SOURCE"]).strip().lower()
    if path is not None and name != "file":
        raise click.UsageError(f"--path applies to --source file, not to {name!r}")
    source = build_source(name, path=path)
    run = sync_with_progress(source, full=full)
    click.get_current_context().exit(1 if run.status == "failed" else 0)


@click.command("demo")
@click.option(
    "--scale",
    type=click.IntRange(min=1),
    metavar="N",
    help="Build an org of N accounts with about 20 activities each (default: the standard demo org).",
)
@with_appcontext
def demo_command(scale: int | None) -> None:
    """Create the database if needed and load the demo sales org (safe to run again)."""
    problem = schema_problem(upgrading=True)
    if problem is not None:
        raise click.ClickException(problem)
    upgrade()
    source = build_source("demo", scale=scale)
    run = sync_with_progress(source, full=False)
    click.get_current_context().exit(1 if run.status == "failed" else 0)


def build_source(name: str, **options: Any) -> Source:
    """Build a source by name, turning a bad name or an unusable file into a usage error."""
    try:
        return get_source(name, current_app.config, **options)
    except (UnknownSource, SourceError) as error:
        raise click.UsageError(str(error)) from error


def sync_with_progress(source: Source, *, full: bool) -> SyncRun:
    """Run a sync with running counts on stderr, then print its summary on stdout."""
    counter = _RunningCounts(source.name)
    started = time.monotonic()
    try:
        run = run_sync(
            db.session(),
            source,
            full=full,
            batch_size=current_app.config.get("SYNC_BATCH_SIZE", 2000),
            progress=counter,
        )
    except SyncNotStarted as error:
        raise click.ClickException(str(error)) from error
    finally:
        counter.close()
    base_url = (current_app.config.get("STRATLINK_BASE_URL") or "").rstrip("/")
    for line in summary_lines(run, time.monotonic() - started, base_url):
        click.echo(line)
    return run


def summary_lines(run: SyncRun, seconds: float, base_url: str = "") -> list[str]:
    """Describe a finished run: status, counts (failed: records), the first errors, and where the rest are."""
    lines = [
        f"Sync run {run.id} from {run.source}: {run.status} in {seconds:.1f} s",
        f"  inserted {run.inserted:,}, updated {run.updated:,}, "
        f"unchanged {run.unchanged:,}, failed {run.failed:,}",
    ]
    if run.message:
        lines.append(f"  {run.message}")
    errors = run.errors or []
    shown = errors[:ERRORS_SHOWN]
    if shown:
        lines.append("  Errors:")
        lines.extend(f"    {_describe(error)}" for error in shown)
    more = len(errors) - len(shown)
    if more > 0:
        # A run stores its first MAX_STORED_ERRORS errors; past that it only counts failed records.
        at_least = "at least " if len(errors) >= MAX_STORED_ERRORS else ""
        lines.append(
            f"  ... and {at_least}{more:,} more error{'s' if more != 1 else ''}, "
            f"listed on {base_url}/admin/sync-runs/{run.id}/errors (admins)"
        )
    return lines


def _describe(error: dict[str, Any]) -> str:
    record = " ".join(str(part) for part in (error.get("stream"), error.get("external_id")) if part)
    field = error.get("field")
    return f"{record} {field}: {error.get('message')}" if field else f"{record}: {error.get('message')}"


class _RunningCounts:
    """Per-stream counts on stderr: rewritten in place on a terminal, else one line per stream."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stream: str | None = None
        self.count = 0
        self.live = sys.stderr.isatty()

    def __call__(self, stream: str, handled: int) -> None:
        if stream != self.stream:
            self._end_line()
            self.stream, self.count = stream, 0
        self.count += handled
        if self.live:
            click.echo(f"\r{self._line()}", nl=False, err=True)

    def close(self) -> None:
        self._end_line()
        self.stream = None

    def _end_line(self) -> None:
        if self.stream is None:
            return
        if self.live:
            click.echo(err=True)
        else:
            click.echo(self._line(), err=True)

    def _line(self) -> str:
        return f"{self.source} {self.stream}: {self.count:,} record{'' if self.count == 1 else 's'}"
