"""Read StratLink's settings from the environment (and a `.env` file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

SOURCES = ("demo", "salesforce", "hubspot", "file")


class ConfigError(click.ClickException):
    """A setting that cannot be used. A ClickException, so that `flask` commands print its message alone
    (and exit 1) instead of a traceback; a web server shows it as the last line of its startup error.
    """


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from error


def _demo_scale() -> int:
    scale = _int("DEMO_SCALE", 0)
    if scale < 0:
        raise ConfigError(
            f"DEMO_SCALE must be 0 (the standard demo org) or a number of accounts, got {scale}"
        )
    return scale


def _bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def from_environment(instance_path: str) -> dict[str, Any]:
    """Build the Flask config mapping from environment variables."""
    default_db = "sqlite:///" + str(Path(instance_path) / "stratlink.sqlite3")
    source = os.environ.get("STRATLINK_SOURCE", "demo").strip().lower() or "demo"
    if source not in SOURCES:
        raise ConfigError(f"STRATLINK_SOURCE must be one of {', '.join(SOURCES)}, got {source!r}")
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL", default_db),
        "STRATLINK_SOURCE": source,
        "STRATLINK_BASE_URL": os.environ.get("STRATLINK_BASE_URL", "http://127.0.0.1:5000"),
        # Where a file import reads from when `sync --source file` gets no --path.
        "STRATLINK_IMPORT_PATH": os.environ.get("STRATLINK_IMPORT_PATH", ""),
        "SYNC_BATCH_SIZE": _int("SYNC_BATCH_SIZE", 2000),
        # Salesforce
        "SALESFORCE_INSTANCE_URL": os.environ.get("SALESFORCE_INSTANCE_URL", ""),
        "SALESFORCE_ACCESS_TOKEN": os.environ.get("SALESFORCE_ACCESS_TOKEN", ""),
        "SALESFORCE_USERNAME": os.environ.get("SALESFORCE_USERNAME", ""),
        "SALESFORCE_PASSWORD": os.environ.get("SALESFORCE_PASSWORD", ""),
        "SALESFORCE_SECURITY_TOKEN": os.environ.get("SALESFORCE_SECURITY_TOKEN", ""),
        "SALESFORCE_DOMAIN": os.environ.get("SALESFORCE_DOMAIN", "login"),
        "SALESFORCE_LOGIN_URL": os.environ.get("SALESFORCE_LOGIN_URL", ""),
        "SALESFORCE_CLIENT_ID": os.environ.get("SALESFORCE_CLIENT_ID", ""),
        "SALESFORCE_CLIENT_SECRET": os.environ.get("SALESFORCE_CLIENT_SECRET", ""),
        "SALESFORCE_REFRESH_TOKEN": os.environ.get("SALESFORCE_REFRESH_TOKEN", ""),
        "SALESFORCE_API_VERSION": os.environ.get("SALESFORCE_API_VERSION", "62.0"),
        "SALESFORCE_CANVAS_SECRET": os.environ.get("SALESFORCE_CANVAS_SECRET", ""),
        "SALESFORCE_WRITEBACK": _bool("SALESFORCE_WRITEBACK"),
        "SALESFORCE_TOKEN_URL": os.environ.get("SALESFORCE_TOKEN_URL", ""),
        "SALESFORCE_ACCOUNT_RECORD_TYPES": os.environ.get("SALESFORCE_ACCOUNT_RECORD_TYPES", ""),
        "SALESFORCE_BULK_THRESHOLD": _int("SALESFORCE_BULK_THRESHOLD", 100_000),
        "SALESFORCE_BULK_POLL_SECONDS": _int("SALESFORCE_BULK_POLL_SECONDS", 2),
        "SALESFORCE_MAX_RETRIES": _int("SALESFORCE_MAX_RETRIES", 4),
        "SALESFORCE_RETRY_BACKOFF_SECONDS": _int("SALESFORCE_RETRY_BACKOFF_SECONDS", 1),
        "SALESFORCE_TIMEOUT_SECONDS": _int("SALESFORCE_TIMEOUT_SECONDS", 120),
        "SALESFORCE_WRITEBACK_STATUS_FIELD": os.environ.get(
            "SALESFORCE_WRITEBACK_STATUS_FIELD", "StratLink_Strategy_Status__c"
        ),
        "SALESFORCE_WRITEBACK_OBJECTIVE_FIELD": os.environ.get(
            "SALESFORCE_WRITEBACK_OBJECTIVE_FIELD", "StratLink_Objective__c"
        ),
        "SALESFORCE_WRITEBACK_UNCOVERED_FIELD": os.environ.get(
            "SALESFORCE_WRITEBACK_UNCOVERED_FIELD", "StratLink_Uncovered_Activities__c"
        ),
        "SALESFORCE_WRITEBACK_OBJECTIVE_LENGTH": _int("SALESFORCE_WRITEBACK_OBJECTIVE_LENGTH", 255),
        # HubSpot
        "HUBSPOT_ACCESS_TOKEN": os.environ.get("HUBSPOT_ACCESS_TOKEN", ""),
        "HUBSPOT_API_BASE": os.environ.get("HUBSPOT_API_BASE", "https://api.hubapi.com"),
        "HUBSPOT_CLIENT_SECRET": os.environ.get("HUBSPOT_CLIENT_SECRET", ""),
        # The tactics review
        "REVIEW_WINDOW_DAYS": _int("REVIEW_WINDOW_DAYS", 30),
        "REVIEW_MIN_ACTIVITIES": _int("REVIEW_MIN_ACTIVITIES", 5),
        "REVIEW_STALE_DAYS": _int("REVIEW_STALE_DAYS", 60),
        "REVIEW_TIMEZONE": os.environ.get("REVIEW_TIMEZONE", "UTC"),
        "REVIEW_CRON": os.environ.get("REVIEW_CRON", "0 7 * * mon"),
        # Above this many findings, the review page lists teams to choose from instead of every finding.
        "REVIEW_PAGE_FINDINGS": _int("REVIEW_PAGE_FINDINGS", 500),
        "SYNC_INTERVAL_MINUTES": _int("SYNC_INTERVAL_MINUTES", 15),
        # Email digests
        "SMTP_HOST": os.environ.get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": _int("SMTP_PORT", 25),
        "SMTP_USERNAME": os.environ.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": os.environ.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool("SMTP_STARTTLS"),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "StratLink <stratlink@localhost>"),
        # A digest lists this many findings at most (new ones first); the rest are counted and linked.
        "DIGEST_MAX_FINDINGS": _int("DIGEST_MAX_FINDINGS", 100),
        # Framing: origins allowed to embed /embed/... pages.
        "EMBED_FRAME_ANCESTORS": _list(
            "EMBED_FRAME_ANCESTORS",
            "https://*.salesforce.com,https://*.force.com,https://*.lightning.force.com,"
            "https://app.hubspot.com,https://app-eu1.hubspot.com",
        ),
        # The demo org's random seed: the same seed, size and day give the same records.
        "DEMO_SEED": _int("DEMO_SEED", 20261124),
        # The demo org's size when `demo` gets no --scale, and for every sync of the demo source (the
        # scheduler's too): 0 is the standard org.
        "DEMO_SCALE": _demo_scale(),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE"),
        # Requests carry forms and small JSON bodies; anything larger is refused with a 413.
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 2 * 1024 * 1024),
    }
