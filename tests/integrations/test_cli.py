"""`flask sync` and `flask demo` through Flask's CLI runner: summaries, progress and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from integrations import sources
from integrations.base import AccountRecord, ActivityRecord, Batch, SourceReport, UserRecord
from planning.models import Account, Activity, SyncRun, User
from tests.factories import utc

DOCUMENT = {
    "users": [{"id": "U1", "email": "vera@example.com", "name": "Vera Park", "role": "manager"}],
    "accounts": [{"id": "A1", "name": "Acme Corp", "owner_id": "U1"}],
    "activities": [
        {"id": "T1", "account_id": "A1", "kind": "call", "occurred_at": "2026-10-20T14:00:00Z"},
        {"id": "T2", "account_id": "A1", "kind": "email", "occurred_at": "2026-10-21T09:00:00Z"},
    ],
}


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "org.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class TinyDemo:
    """Stands in for the demo source: same constructor options, a few records, no cursor."""

    name = "demo"
    created: list[dict[str, Any]] = []

    def __init__(self, accounts: int) -> None:
        self.accounts = accounts
        self.report = SourceReport()

    @classmethod
    def from_config(
        cls, config: Any, scale: int | None = None, today: date | None = None, **_: Any
    ) -> TinyDemo:
        cls.created.append({"scale": scale, "today": today})
        return cls(scale or 3)

    def streams(self) -> list[str]:
        return ["users", "accounts", "activities"]

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        if stream == "users":
            yield Batch(stream, [UserRecord("DU001", "vp@northwind-demo.com", "Demo VP", role="manager")])
        elif stream == "accounts":
            yield Batch(
                stream, [AccountRecord(f"DA{n}", f"Account {n}", "DU001") for n in range(self.accounts)]
            )
        else:
            yield Batch(
                stream,
                [ActivityRecord(f"DT{n}", f"DA{n}", "call", utc(2026, 10, 20)) for n in range(self.accounts)],
            )


@pytest.fixture
def tiny_demo(monkeypatch):
    TinyDemo.created = []
    monkeypatch.setitem(sources.SOURCES, "demo", "tests.integrations.test_cli:TinyDemo.from_config")
    return TinyDemo


def test_sync_from_a_file_prints_progress_and_a_summary(runner, db, tmp_path):
    result = runner.invoke(args=["sync", "--source", "file", "--path", str(write(tmp_path, DOCUMENT))])

    assert result.exit_code == 0, result.output
    run = db.scalars(select(SyncRun)).one()
    assert result.stdout.splitlines()[0].startswith(f"Sync run {run.id} from file: succeeded in ")
    assert result.stdout.splitlines()[1] == "  inserted 4, updated 0, unchanged 0, failed 0"
    assert result.stderr.splitlines() == [
        "file users: 1 record",
        "file accounts: 1 record",
        "file activities: 2 records",
    ]
    assert db.scalar(select(func.count()).select_from(Activity)) == 2


def test_the_summary_lists_the_first_ten_errors_and_says_where_the_rest_are(app, runner, db, tmp_path):
    document = dict(DOCUMENT)
    document["activities"] = [
        {"id": f"T{n}", "account_id": "A1", "kind": "call", "occurred_at": "yesterday"} for n in range(13)
    ] + [{"id": "T99", "account_id": "A404", "kind": "call", "occurred_at": "2026-10-20"}]

    result = runner.invoke(args=["sync", "--source", "file", "--path", str(write(tmp_path, document))])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert " partial in " in lines[0]
    assert lines[1] == "  inserted 2, updated 0, unchanged 0, failed 14"
    assert lines[2] == "  Errors:"
    assert lines[3] == "    activities T0 occurred_at: 'yesterday' is not an ISO 8601 time"
    assert len([line for line in lines if line.startswith("    activities ")]) == 10
    run_id = db.scalar(select(SyncRun.id))
    base = app.config["STRATLINK_BASE_URL"]
    assert lines[-1] == f"  ... and 4 more errors, listed on {base}/admin/sync-runs/{run_id}/errors (admins)"


def test_a_malformed_file_fails_the_run_with_exit_code_1(runner, db, tmp_path):
    path = write(tmp_path, '{"accounts": [}')
    result = runner.invoke(args=["sync", "--source", "file", "--path", str(path)])
    assert result.exit_code == 1
    assert " failed in " in result.stdout.splitlines()[0]
    assert f"  {path}: not valid JSON: Expecting value at line 1, column 15" in result.stdout.splitlines()
    assert "Traceback" not in result.output
    assert db.scalar(select(SyncRun.status)) == "failed"


def test_a_sync_while_another_of_its_source_runs_says_so_and_exits_1(runner, db, tmp_path, another_sync_of):
    another_sync_of("file")

    result = runner.invoke(args=["sync", "--source", "file", "--path", str(write(tmp_path, DOCUMENT))])

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: A sync from file is already running; this one did not start."
    )
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sync", "--source", "nope"],
            "unknown source 'nope'; choose one of demo, file, salesforce, hubspot",
        ),
        (
            ["sync", "--source", "file"],
            "no import file given: set STRATLINK_IMPORT_PATH (or pass --path FILE to the sync command)",
        ),
        (
            ["sync", "--source", "file", "--path", "/nonexistent/org.json"],
            "import file '/nonexistent/org.json' does",
        ),
        (
            ["sync", "--source", "demo", "--path", "org.json"],
            "--path applies to --source file, not to 'demo'",
        ),
        (["demo", "--scale", "0"], "Invalid value for '--scale'"),
    ],
)
def test_bad_usage_exits_with_2_and_a_clear_message(runner, db, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert db.scalars(select(SyncRun)).all() == []


def test_the_source_and_file_default_to_the_configuration(app, runner, db, tmp_path):
    app.config["STRATLINK_SOURCE"] = "file"
    app.config["STRATLINK_IMPORT_PATH"] = str(write(tmp_path, DOCUMENT))
    result = runner.invoke(args=["sync"])
    assert result.exit_code == 0, result.output
    assert db.scalar(select(SyncRun.source)) == "file"


def test_sync_full_passes_through_to_the_run(runner, db, tmp_path):
    result = runner.invoke(
        args=["sync", "--source", "file", "--full", "--path", str(write(tmp_path, DOCUMENT))]
    )
    assert result.exit_code == 0, result.output
    assert db.scalar(select(SyncRun.full)) is True


def test_demo_loads_the_org_and_a_second_run_changes_nothing(runner, db, tiny_demo):
    first = runner.invoke(args=["demo"])
    second = runner.invoke(args=["demo"])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert first.stdout.splitlines()[1] == "  inserted 7, updated 0, unchanged 0, failed 0"
    assert second.stdout.splitlines()[1] == "  inserted 0, updated 0, unchanged 7, failed 0"
    assert tiny_demo.created == [{"scale": None, "today": None}, {"scale": None, "today": None}]
    assert db.scalars(select(User.email)).all() == ["vp@northwind-demo.com"]


def test_demo_scale_builds_a_larger_org(runner, db, tiny_demo):
    result = runner.invoke(args=["demo", "--scale", "40"])
    assert result.exit_code == 0, result.output
    assert tiny_demo.created == [{"scale": 40, "today": None}]
    assert db.scalar(select(func.count()).select_from(Account)) == 40


def test_demo_without_a_demo_source_is_a_usage_error(runner, monkeypatch):
    monkeypatch.setitem(sources.SOURCES, "demo", "integrations.not_there:DemoSource.from_config")
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 2
    assert "the demo source is not available in this version" in result.stderr


def test_the_real_demo_org_loads_cleanly_and_is_idempotent(runner, db):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0].split(": ")[1].startswith("succeeded")
    second = runner.invoke(args=["demo"])
    counts = second.stdout.splitlines()[1]
    assert counts.startswith("  inserted 0, updated 0, unchanged "), second.output
    assert counts.endswith(", failed 0")
