"""Shared fixtures: an app on a migrated database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import create_app
from extensions import db as _db
from planning.models import User

UNDER_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip a test a newcomer's machine cannot run; under CI the same gap is a failure."""
    if UNDER_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture
def postgres(database_url: str) -> str:
    """Return the test database's URL when it is PostgreSQL; skip otherwise (fail under CI)."""
    if not database_url.startswith("postgresql"):
        skip_or_fail("needs TEST_DATABASE_URL pointing at PostgreSQL")
    return database_url


def _config(database_url: str, instance: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key",
        "WTF_CSRF_ENABLED": False,
        "STRATLINK_SOURCE": "demo",
        "SERVER_NAME": None,
    }


@pytest.fixture(scope="session")
def _migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build the schema once per run through the Alembic migrations, as production does."""
    app = create_app(_config(database_url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        if database_url.startswith("postgresql"):
            with _db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        _db.engine.dispose()


@pytest.fixture
def app(database_url: str, _migrated: None, tmp_path: Path) -> Iterator[Any]:
    app = create_app(_config(database_url, tmp_path))

    # The test keeps one app context open, so requests share its session. In production each request
    # ends by closing its session; here at least a request that failed must not leave an aborted
    # transaction behind for the next one (PostgreSQL refuses every statement after an error).
    @app.teardown_request
    def _rollback_after_error(error: BaseException | None) -> None:
        if error is not None:
            _db.session.rollback()

    with app.app_context():
        yield app
        _db.session.remove()
        _empty_all_tables()
        _db.engine.dispose()


def _empty_all_tables() -> None:
    tables = list(reversed(_db.metadata.sorted_tables))
    with _db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


@pytest.fixture
def db(app: Any) -> Session:
    return _db.session


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def login_as(client: FlaskClient) -> Callable[[User], FlaskClient]:
    """Sign a test client in as `user` without going through the form."""

    def sign_in(user: User) -> FlaskClient:
        with client.session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
        return client

    return sign_in


@pytest.fixture
def another_sync_of(db: Session) -> Iterator[Callable[[str], None]]:
    """Hold a source's sync lock, as a sync of it running in another process would."""
    from integrations.sync import sync_lock

    held = []

    def hold(source_name: str) -> None:
        lock = sync_lock(db, source_name)
        assert lock.acquire(), f"the sync lock of {source_name} is already taken"
        held.append(lock)

    yield hold
    for lock in held:
        lock.release()
