"""The Flask extension objects, created once and bound to the app in `create_app`."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, ParamSpec, TypeAlias, TypeVar

import click
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session


class Base(DeclarativeBase):
    # Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)

# What our functions take as a database session: a plain Session (scripts, jobs, tests) or the app's
# request-scoped `db.session`, which proxies every Session method.
DbSession: TypeAlias = Session | scoped_session[Any]
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


# SQLite settings for every connection. Write-ahead logging lets the web app read while the scheduler
# or a sync writes; with it, synchronous=NORMAL is durable across application crashes and skips one
# fsync per commit (a power cut may lose the last commits, never corrupt the file). A 64 MB page cache
# keeps a big sync's index pages in memory; a writer waits up to 30 s for another to finish instead
# of failing with "database is locked".
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
    "PRAGMA busy_timeout=30000",
)


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def upsert_insert(dialect: str, table: Any) -> Any:
    """Return an INSERT into `table` that takes `ON CONFLICT`: PostgreSQL's or SQLite's, by dialect name."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table)


def schema_problem(*, upgrading: bool = False) -> str | None:
    """Say what keeps this code from using the app's database (no tables, or another schema revision),
    or return None when its schema is the latest migration. Needs an app context.

    With `upgrading` (a command that runs `db upgrade` itself), only what an upgrade cannot fix counts:
    a schema migrated by newer code.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.get_config())
    head = script.get_current_head()
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    where = db.engine.url.render_as_string(hide_password=True)
    if current is None:
        if upgrading:
            return None
        return (
            f"the database {where} has no StratLink tables yet: run `flask --app app db upgrade` "
            "(or `flask --app app demo` for the demo org)"
        )
    if current != head and current not in {revision.revision for revision in script.walk_revisions()}:
        # Migrated by newer code: `db upgrade` would fail with "Can't locate revision".
        return (
            f"the database {where} is at schema revision {current}, which this code does not know "
            f"(its latest is {head}): a newer version of StratLink migrated it; run that version"
        )
    if current != head and not upgrading:
        return (
            f"the database {where} is at schema revision {current} and this code needs {head}: "
            "run `flask --app app db upgrade`"
        )
    return None


P = ParamSpec("P")
R = TypeVar("R")


def needs_current_schema(command: Callable[P, R]) -> Callable[P, R]:
    """Make a CLI command stop with a message, not a traceback, when `schema_problem` finds one.

    Goes under `with_appcontext`.
    """

    @functools.wraps(command)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        problem = schema_problem()
        if problem is not None:
            raise click.ClickException(problem)
        return command(*args, **kwargs)

    return checked
