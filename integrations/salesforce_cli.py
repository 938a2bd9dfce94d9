"""`flask --app app salesforce ...`: test the connection, and write review results back to Salesforce."""

from __future__ import annotations

from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from extensions import db, needs_current_schema
from integrations.base import SourceError
from integrations.salesforce import check_connection
from integrations.salesforce_settings import SalesforceSettings
from integrations.salesforce_writeback import write_back
from planning.findings import latest_review, review_as_of

salesforce_cli = AppGroup("salesforce", help="Work with the connected Salesforce org.")


@salesforce_cli.command("check")
def check_command() -> None:
    """Sign in to Salesforce and count the rows StratLink would sync."""
    try:
        found = check_connection(SalesforceSettings.from_config(current_app.config))
    except SourceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Connected to {found['instance_url']} (API v{found['api_version']}, {found['auth_mode']}).")
    for sobject, count in found["counts"].items():
        click.echo(f"  {sobject}: {count} rows")
    if found["api_usage"]:
        click.echo(f"API usage: {found['api_usage']}")


@salesforce_cli.command("writeback")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The review to send (default: the latest).",
)
@needs_current_schema
def writeback_command(dry_run: bool, as_of: datetime | None) -> None:
    """Send each account's strategy status, objective and uncovered count to Salesforce."""
    review = latest_review(db.session) if as_of is None else review_as_of(db.session, as_of.date())
    if review is None:
        raise click.ClickException("no review to write back: run `flask --app app review` first")
    try:
        result = write_back(db.session, review, current_app.config, dry_run=dry_run)
    except SourceError as error:
        raise click.ClickException(str(error)) from None
    if not result.enabled and not dry_run:
        raise click.ClickException(result.message or "write-back is off")
    for change in result.changes:
        values = {name: value for name, value in change.items() if name not in ("attributes", "id")}
        click.echo(f"{change['id']}: " + ", ".join(f"{name}={value!r}" for name, value in values.items()))
    verb = "would update" if dry_run else "updated"
    count = result.accounts if dry_run else result.updated
    click.echo(
        f"Review of {review.as_of.isoformat()}: {verb} {count} of {result.accounts} Salesforce accounts."
    )
    for problem in result.errors[:10]:
        click.echo(f"  {problem.external_id}: {problem.field or '-'}: {problem.message}", err=True)
    if len(result.errors) > 10:
        click.echo(f"  ... and {len(result.errors) - 10} more errors", err=True)
    if result.errors:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    """Register the `salesforce` command group."""
    app.cli.add_command(salesforce_cli)
