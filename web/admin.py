"""The admin page: the CRM connection, recent sync runs with counts, errors and API usage, "Sync now"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from extensions import DbSession, db
from integrations.base import SourceError
from integrations.salesforce import check_connection
from integrations.salesforce_settings import SalesforceSettings
from integrations.sources import UnknownSource, get_source
from integrations.sync import MAX_STORED_ERRORS, SyncAlreadyRunning, SyncNotStarted, run_sync
from planning.accounts import is_valid_id
from planning.models import Role, SyncRun

bp = Blueprint("admin", __name__, url_prefix="/admin")

RECENT_RUNS = 20
ERRORS_SHOWN = 3
RUN_BADGES = {"succeeded": "active", "partial": "persisting", "failed": "new", "running": "draft"}


def recent_sync_runs(session: DbSession, limit: int = RECENT_RUNS) -> list[SyncRun]:
    """Return the latest sync runs of every source, newest first."""
    return list(
        session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit))
    )


def describe_connection(config: Any) -> dict[str, Any]:
    """Describe the configured source for people: never a token, password or secret."""
    source = config.get("STRATLINK_SOURCE", "demo")
    described: dict[str, Any] = {"source": source}
    if source == "salesforce":
        settings = SalesforceSettings.from_config(config, check=False)
        try:
            settings.validate()
            problem = None
        except SourceError as error:
            problem = str(error)
        described.update(
            instance_url=settings.public_instance_url() or None,
            auth_mode={
                "access_token": "access token",
                "refresh_token": "OAuth refresh token",
                "password": "username and password",
            }.get(settings.auth_mode, "not configured"),
            api_version=settings.api_version,
            record_types=", ".join(settings.account_record_types) or None,
            writeback=settings.writeback,
            problem=problem,
        )
    elif source == "hubspot":
        described["api_base"] = config.get("HUBSPOT_API_BASE")
    return described


def _require_admin() -> None:
    if current_user.role != Role.ADMIN:
        abort(403, "Only admins may use the admin page.")


@bp.get("")
@login_required
def index() -> ResponseReturnValue:
    """Show the connection and the recent sync runs."""
    _require_admin()
    runs = recent_sync_runs(db.session)
    return render_template(
        "admin/index.html",
        connection=describe_connection(current_app.config),
        runs=runs,
        last_run=runs[0] if runs else None,
        run_badges=RUN_BADGES,
        errors_shown=ERRORS_SHOWN,
    )


@bp.get("/sync-runs/<int:run_id>/errors")
@login_required
def sync_run_errors(run_id: int) -> ResponseReturnValue:
    """Show every error a sync run kept (the admin page shows the first few)."""
    _require_admin()
    run = db.session.get(SyncRun, run_id) if is_valid_id(run_id) else None
    if run is None:
        abort(404)
    return render_template(
        "admin/sync_errors.html", run=run, errors=run.errors or [], stored_at_most=MAX_STORED_ERRORS
    )


@bp.post("/sync")
@login_required
def sync_now() -> ResponseReturnValue:
    """Pull the configured source now, incrementally, and say how it went."""
    _require_admin()
    config = current_app.config
    try:
        source = get_source(config["STRATLINK_SOURCE"], config)
    except (UnknownSource, SourceError) as error:
        flash(f"Sync not started: {error}", "error")
        return redirect(url_for("admin.index"))
    try:
        run = run_sync(db.session, source, batch_size=int(config.get("SYNC_BATCH_SIZE") or 2000))
    except SyncNotStarted as error:
        flash(str(error), "warning" if isinstance(error, SyncAlreadyRunning) else "error")
        return redirect(url_for("admin.index"))
    counts = f"{run.inserted} new, {run.updated} updated, {run.unchanged} unchanged, {run.failed} failed"
    if run.status == "failed":
        flash(f"Sync failed after {counts}: {run.message}", "error")
    elif run.status == "partial":
        flash(f"Sync finished with errors: {counts}.", "warning")
    else:
        flash(f"Sync succeeded: {counts}.", "success")
    return redirect(url_for("admin.index"))


@bp.post("/check")
@login_required
def check() -> ResponseReturnValue:
    """Sign in to Salesforce and count its rows, to prove the settings work."""
    _require_admin()
    if current_app.config.get("STRATLINK_SOURCE") != "salesforce":
        flash("The connection test is for Salesforce; this deployment syncs another source.", "info")
        return redirect(url_for("admin.index"))
    try:
        found = check_connection(SalesforceSettings.from_config(current_app.config))
    except SourceError as error:
        flash(f"Salesforce connection failed: {error}", "error")
        return redirect(url_for("admin.index"))
    counts = ", ".join(f"{count} {sobject}" for sobject, count in found["counts"].items())
    usage = f" API usage {found['api_usage']}." if found["api_usage"] else ""
    flash(f"Connected to {found['instance_url']}: {counts}.{usage}", "success")
    return redirect(url_for("admin.index"))


def init_app(app: Flask) -> None:
    """Register the admin page."""
    app.register_blueprint(bp)
