"""The application factory: `flask --app app run` and every CLI command start here."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from dotenv import load_dotenv
from flask import Flask

import config
from extensions import csrf, db, login_manager, migrate


def create_app(test_config: dict[str, Any] | None = None) -> APIFlask:
    """Create and configure a StratLink app."""
    load_dotenv()
    app = APIFlask(
        __name__,
        title="StratLink API",
        version="1",
        instance_relative_config=True,
        spec_path="/api/openapi.json",
        docs_path="/api/docs",
        json_errors=False,
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config is not None:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _local_secret_key(Path(app.instance_path))

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def _local_secret_key(instance: Path) -> str:
    """Keep a generated key in instance/ so sessions survive restarts on a developer's machine."""
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        os.chmod(key_file, 0o600)
    return key_file.read_text().strip()


def register_extensions(app: Flask) -> None:
    from jobs import models as job_models  # noqa: F401  (registers the tables on db.metadata)
    from planning import models  # noqa: F401

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)


def register_blueprints(app: Flask) -> None:
    from web import accounts, admin, api, auth, reviews, security, strategies

    for module in (security, auth, accounts, strategies, reviews, admin, api):
        module.init_app(app)


def register_errorhandlers(app: Flask) -> None:
    from web import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    from integrations import cli as integrations_cli
    from integrations import salesforce_cli
    from jobs import cli as jobs_cli
    from planning import cli as planning_cli
    from web import cli as web_cli

    for module in (integrations_cli, salesforce_cli, web_cli, planning_cli, jobs_cli):
        module.init_app(app)
