"""Commands on a database that is not migrated, or not migrated far enough, stop with a message."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from app import create_app
from extensions import db, migrate, schema_problem

COMMANDS = [
    ["review"],
    ["digest"],
    ["delete-review", "--as-of", "2026-10-31", "--yes"],
    ["sync"],
    ["scheduler"],
    ["job-runs"],
    ["users", "list"],
    ["users", "token", "vera@example.com"],
    ["salesforce", "writeback", "--dry-run"],
]


@pytest.fixture
def empty_app(tmp_path):
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/stratlink.sqlite3", "SECRET_KEY": "x"}
    )
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_command_on_a_database_without_tables_says_to_upgrade_it(empty_app, command):
    result = empty_app.test_cli_runner().invoke(args=command)

    assert result.exit_code == 1
    assert "has no StratLink tables yet: run `flask --app app db upgrade`" in result.output
    assert "Traceback" not in result.output


def test_a_command_on_a_database_behind_the_code_names_both_revisions(empty_app):
    with empty_app.app_context():
        script = ScriptDirectory.from_config(migrate.get_config())
        head = script.get_current_head()
        previous = script.get_revision(head).down_revision
        upgrade(revision=previous)

    result = empty_app.test_cli_runner().invoke(args=["review"])

    assert result.exit_code == 1
    assert (
        f"is at schema revision {previous} and this code needs {head}: run `flask --app app db upgrade`"
        in result.output
    )


def test_a_migrated_database_has_no_schema_problem(empty_app):
    with empty_app.app_context():
        upgrade()
        assert schema_problem() is None
    assert empty_app.test_cli_runner().invoke(args=["job-runs"]).output == "No job has run yet.\n"


@pytest.mark.parametrize("command", ["review", "demo"])  # demo runs `db upgrade` itself, which cannot help
def test_a_database_migrated_by_newer_code_says_so_instead_of_asking_for_an_upgrade(empty_app, command):
    with empty_app.app_context():
        upgrade()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")

    result = empty_app.test_cli_runner().invoke(args=[command])

    assert result.exit_code == 1
    assert "is at schema revision 0999, which this code does not know" in result.output
    assert "db upgrade" not in result.output
