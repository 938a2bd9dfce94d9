"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from extensions import db as _db


def test_the_migrated_schema_matches_the_models(app):
    with _db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, _db.metadata)
    assert differences == []


def test_every_migration_goes_down_to_exactly_the_schema_before_it(app):
    # The stairway: up one revision at a time from an empty database, noting the schema at each, then
    # down one at a time, each downgrade leaving the schema its revision started from.
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    revisions = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    try:
        downgrade(revision="base")
        seen = {"base": _schema()}
        for revision in revisions:
            upgrade(revision=revision)
            seen[revision] = _schema()
        for revision, before in reversed(list(zip(revisions, ["base", *revisions[:-1]], strict=True))):
            downgrade(revision=before)
            assert _schema() == seen[before], f"downgrading {revision} did not restore {before}"
    finally:
        upgrade()  # the other tests share this database
    with _db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, _db.metadata) == []
        assert context.get_current_revision() == script.get_current_head()


def _schema() -> dict[str, Any]:
    """Return what the database's tables look like: columns, keys, indexes and constraints."""
    with _db.engine.connect() as connection:
        inspector = inspect(connection)
        return {
            table: {
                "columns": [
                    (column["name"], str(column["type"]), column["nullable"])
                    for column in inspector.get_columns(table)
                ],
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign keys": sorted(
                    (key["name"] or "", tuple(key["constrained_columns"]), key["referred_table"])
                    for key in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (index["name"] or "", tuple(index["column_names"]), bool(index["unique"]))
                    for index in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    tuple(constraint["column_names"])
                    for constraint in inspector.get_unique_constraints(table)
                ),
                "checks": sorted(
                    " ".join(check["sqltext"].split()) for check in inspector.get_check_constraints(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
            if table != "alembic_version"
        }
