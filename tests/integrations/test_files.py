"""The JSON import file: the documented example lands; each kind of bad input gets a precise message."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from integrations.base import STREAMS, Batch, RecordError
from integrations.files import FileSource, ImportFileError
from integrations.sources import get_source
from integrations.sync import run_sync
from planning.models import Account, Activity, Opportunity, Role, Strategy, User
from tests.factories import utc

# The example from DESIGN.md, word for word.
EXAMPLE: dict[str, Any] = {
    "users": [
        {"id": "U1", "email": "vera@example.com", "name": "Vera Park", "role": "manager", "manager_id": None}
    ],
    "accounts": [
        {
            "id": "A1",
            "name": "Acme Corp",
            "owner_id": "U3",
            "industry": "Manufacturing",
            "annual_revenue": 12000000,
            "url": "https://crm.example.com/A1",
        }
    ],
    "activities": [
        {
            "id": "T1",
            "account_id": "A1",
            "owner_id": "U3",
            "kind": "call",
            "direction": "outbound",
            "occurred_at": "2026-10-20T14:00:00Z",
            "subject": "Intro call",
            "deleted": False,
        }
    ],
    "opportunities": [
        {
            "id": "O1",
            "account_id": "A1",
            "owner_id": "U3",
            "name": "Acme expansion",
            "stage": "Proposal",
            "amount": 50000,
            "close_date": "2026-12-15",
            "is_closed": False,
            "is_won": False,
        }
    ],
    "strategies": [
        {
            "id": "S1",
            "account_id": "A1",
            "author_id": "U3",
            "objective": "...",
            "customer_view": "...",
            "approach": "...",
            "success_measure": "...",
            "target_date": "2027-03-31",
            "review_date": "2026-12-01",
            "status": "active",
            "activity_ids": ["T1"],
        }
    ],
}
TOP_LEVEL = "the top level must be a JSON object with arrays " + ", ".join(STREAMS) + ", got"
RITA = {"id": "U3", "email": "rita@example.com", "name": "Rita Rep", "manager_id": "U1"}


def write(tmp_path: Path, document: Any, name: str = "import.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def example(**changes: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(EXAMPLE))
    document["users"].append(dict(RITA))
    document.update(changes)
    return document


def read_all(path: Path) -> tuple[list[Any], list[RecordError]]:
    source = FileSource(path)
    records: list[Any] = []
    errors: list[RecordError] = []
    for stream in source.streams():
        batch: Batch
        for batch in source.read(stream, None, full=False):
            records.extend(batch.records)
            errors.extend(batch.errors)
    return records, errors


def errors_of(tmp_path: Path, stream: str, entry: Any) -> list[tuple[str, str | None, str | None, str]]:
    _, errors = read_all(write(tmp_path, {stream: [entry]}))
    return [(e.stream, e.external_id, e.field, e.message) for e in errors]


def test_the_documented_example_lands_in_full(db, tmp_path):
    run = run_sync(db, FileSource(write(tmp_path, example())))

    assert (run.status, run.inserted, run.failed) == ("succeeded", 6, 0)
    users = {user.email: user for user in db.scalars(select(User))}
    assert users["vera@example.com"].role == Role.MANAGER
    assert users["rita@example.com"].role == Role.REP
    assert users["rita@example.com"].manager is users["vera@example.com"]
    account = db.scalars(select(Account)).one()
    assert (account.source, account.external_id, account.name, account.owner) == (
        "file", "A1", "Acme Corp", users["rita@example.com"]
    )  # fmt: skip
    assert (account.industry, account.annual_revenue, account.url) == (
        "Manufacturing", Decimal("12000000"), "https://crm.example.com/A1"
    )  # fmt: skip
    activity = db.scalars(select(Activity)).one()
    assert (activity.kind, activity.direction, activity.occurred_at, activity.subject, activity.deleted) == (
        "call", "outbound", utc(2026, 10, 20, 14), "Intro call", False
    )  # fmt: skip
    opportunity = db.scalars(select(Opportunity)).one()
    assert (opportunity.amount, opportunity.close_date, opportunity.stage) == (
        Decimal(50000), date(2026, 12, 15), "Proposal"
    )  # fmt: skip
    assert (opportunity.is_closed, opportunity.is_won, opportunity.account) == (False, False, account)
    strategy = db.scalars(select(Strategy)).one()
    assert (strategy.status, strategy.target_date, strategy.review_date, strategy.version) == (
        "active", date(2027, 3, 31), date(2026, 12, 1), 1
    )  # fmt: skip
    assert [link.activity for link in strategy.links] == [activity]


def test_a_reimport_updates_in_place(db, tmp_path):
    run_sync(db, FileSource(write(tmp_path, example())))
    changed = example()
    changed["activities"][0]["subject"] = "Intro call (rescheduled)"
    changed["accounts"][0]["name"] = "Acme Corporation"

    run = run_sync(db, FileSource(write(tmp_path, changed)))

    assert (run.inserted, run.updated, run.unchanged) == (0, 2, 4)
    assert db.scalars(select(Activity.subject)).all() == ["Intro call (rescheduled)"]
    assert db.scalars(select(Account.name)).all() == ["Acme Corporation"]


def test_lenient_forms_are_read_as_documented(tmp_path):
    document = {
        "accounts": [{"id": 42, "name": "Numbered", "annual_revenue": "1250000.50", "color": "blue"}],
        "activities": [
            {"id": "T1", "account_id": 42, "kind": "email", "occurred_at": "2026-10-20T14:00:00"},
            {"id": "T2", "account_id": "42", "kind": "note", "occurred_at": "2026-10-20T16:00:00+02:00"},
        ],
        "opportunities": [
            {"id": "O1", "account_id": "42", "name": "Deal", "amount": 49.99, "is_closed": None}
        ],
        "pipelines": "not ours, ignored",
    }
    records, errors = read_all(write(tmp_path, document))
    assert errors == []
    account, opportunity, first, second = records
    assert (account.external_id, account.annual_revenue) == ("42", Decimal("1250000.50"))
    # A time without a zone is UTC; a time with one is converted.
    assert (first.account_external_id, first.occurred_at, first.direction) == (
        "42",
        utc(2026, 10, 20, 14),
        "unknown",
    )
    assert second.occurred_at == utc(2026, 10, 20, 14)
    assert (opportunity.amount, opportunity.is_closed) == (Decimal("49.99"), False)


def test_blank_cells_are_left_out_like_null(db, tmp_path):
    """A spreadsheet export writes "" for an empty cell: the VP's manager, an unknown owner or amount."""
    blank = {
        "users": [
            {
                "id": "U1",
                "email": "vera@example.com",
                "name": "Vera Park",
                "role": "manager",
                "manager_id": "",
            },
            {
                "id": "U2",
                "email": "max@example.com",
                "name": "Max Lane",
                "role": "manager",
                "manager_id": "U1",
            },
            {"id": "U3", "email": "rita@example.com", "name": "Rita Rep", "role": " ", "manager_id": "U2"},
        ],
        "accounts": [{"id": "A1", "name": "Acme", "owner_id": "U3", "industry": "", "annual_revenue": " "}],
        "opportunities": [
            {"id": "O1", "account_id": "A1", "name": "Deal", "owner_id": "", "amount": "", "close_date": ""}
        ],
        "strategies": [{"id": "S1", "account_id": "A1", "author_id": "", "target_date": "", "status": ""}],
    }

    run = run_sync(db, FileSource(write(tmp_path, blank)))

    assert (run.status, run.inserted, run.failed, run.errors) == ("succeeded", 6, 0, [])
    users = {user.email: user for user in db.scalars(select(User))}
    assert users["vera@example.com"].manager is None  # the VP
    assert users["max@example.com"].manager is users["vera@example.com"]
    assert (users["rita@example.com"].role, users["rita@example.com"].manager) == (
        Role.REP, users["max@example.com"]
    )  # fmt: skip
    account = db.scalars(select(Account)).one()
    assert (account.industry, account.annual_revenue) == (None, None)
    opportunity = db.scalars(select(Opportunity)).one()
    assert (opportunity.owner, opportunity.amount, opportunity.close_date) == (None, None, None)
    strategy = db.scalars(select(Strategy)).one()
    assert (strategy.author, strategy.target_date, strategy.status) == (None, None, "draft")


def test_a_repeated_id_is_reported_and_only_its_first_record_lands(db, tmp_path):
    document = example()
    document["accounts"].append({"id": "A1", "name": "Acme Corp (copy)"})
    document["accounts"].append({"id": " A1 ", "name": "Acme Corp (third)"})

    run = run_sync(db, FileSource(write(tmp_path, document)))

    assert [(e["stream"], e["external_id"], e["message"]) for e in run.errors] == [
        ("accounts", "A1", "entry 1 repeats the id of entry 0; only the first is imported"),
        ("accounts", "A1", "entry 2 repeats the id of entry 0; only the first is imported"),
    ]
    assert db.scalars(select(Account.name)).all() == ["Acme Corp"]


@pytest.mark.parametrize(
    ("stream", "entry", "expected"),
    [
        (
            "activities",
            {"id": "T7", "account_id": "A1", "kind": "call", "occurred_at": "yesterday"},
            ("T7", "occurred_at", "'yesterday' is not an ISO 8601 time"),
        ),
        (
            "activities",
            {"id": "T7", "account_id": "A1", "kind": "call", "occurred_at": 1760968800},
            ("T7", "occurred_at", "1760968800 is not an ISO 8601 time"),
        ),
        (
            "activities",
            {"id": "T7", "account_id": "A1", "kind": "call"},
            ("T7", "occurred_at", "is required"),
        ),
        (
            "activities",
            {"id": "T7", "kind": "call", "occurred_at": "2026-10-20T14:00:00Z"},
            ("T7", "account_id", "is required"),
        ),
        (
            "activities",
            {"id": "T7", "account_id": "A1", "kind": 3, "occurred_at": "2026-10-20T14:00:00Z"},
            ("T7", "kind", "must be a string, got 3"),
        ),
        (
            "activities",
            {"id": "T7", "account_id": "A1", "kind": "call", "occurred_at": "2026-10-20", "deleted": "no"},
            ("T7", "deleted", "must be true or false, got 'no'"),
        ),
        (
            "activities",
            {"id": "T7", "account_id": ["A1"], "kind": "call", "occurred_at": "2026-10-20"},
            ("T7", "account_id", 'must be a string, got ["A1"]'),
        ),
        (
            "opportunities",
            {"id": "O7", "account_id": "A1", "name": "Deal", "amount": "abc"},
            ("O7", "amount", "'abc' is not a number"),
        ),
        (
            "opportunities",
            {"id": "O7", "account_id": "A1", "name": "Deal", "amount": True},
            ("O7", "amount", "true is not a number"),
        ),
        (
            "opportunities",
            {"id": "O7", "account_id": "A1", "name": "Deal", "is_closed": "maybe"},
            ("O7", "is_closed", "must be true or false, got 'maybe'"),
        ),
        (
            "opportunities",
            {"id": "O7", "account_id": "A1", "name": "Deal", "close_date": "15/12/2026"},
            ("O7", "close_date", "'15/12/2026' is not a date (YYYY-MM-DD)"),
        ),
        (
            "opportunities",
            {"id": "O7", "account_id": "A1", "name": "Deal", "close_date": "2026-02-30"},
            ("O7", "close_date", "'2026-02-30' is not a date (YYYY-MM-DD)"),
        ),
        ("opportunities", {"id": "O7", "account_id": "A1"}, ("O7", "name", "is required")),
        ("accounts", {"id": "A7", "name": "   "}, ("A7", "name", "is required")),
        (
            "accounts",
            {"id": "A7", "name": {"en": "Acme"}},
            ("A7", "name", 'must be a string, got {"en": "Acme"}'),
        ),
        (
            "accounts",
            {"id": "A7", "name": "Acme", "annual_revenue": [1]},
            ("A7", "annual_revenue", "[1] is not a number"),
        ),
        ("users", {"id": "U7", "name": "No Mail"}, ("U7", "email", "is required")),
        (
            "users",
            {"id": "U7", "email": "x@example.com", "name": "X", "manager_id": True},
            ("U7", "manager_id", "must be a string, got true"),
        ),
        (
            "users",
            {"id": "U7", "email": "x@example.com", "name": "X", "active": 1},
            ("U7", "active", "must be true or false, got 1"),
        ),
        (
            "strategies",
            {"id": "S7", "account_id": "A1", "review_date": "next week"},
            ("S7", "review_date", "'next week' is not a date (YYYY-MM-DD)"),
        ),
        (
            "strategies",
            {"id": "S7", "account_id": "A1", "activity_ids": "T1,T2"},
            ("S7", "activity_ids", "must be an array of ids, got 'T1,T2'"),
        ),
        (
            "strategies",
            {"id": "S7", "account_id": "A1", "activity_ids": ["T1", None]},
            ("S7", "activity_ids", "must be a string, got null"),
        ),
        (
            "strategies",
            {"id": "S7", "account_id": "A1", "objective": 5},
            ("S7", "objective", "must be a string, got 5"),
        ),
        ("accounts", {"name": "No id"}, (None, "id", "entry 0 has no id")),
        ("accounts", {"id": 1.5, "name": "Float id"}, (None, "id", "entry 0: id must be a string, got 1.5")),
        ("accounts", {"id": " ", "name": "Blank id"}, (None, "id", "entry 0 has no id")),
        ("activities", {"id": "T7", "account_id": "", "kind": "call"}, ("T7", "account_id", "is required")),
        ("accounts", "A1", (None, None, "entry 0 must be an object, got a string")),
        ("activities", ["T1", "A1"], (None, None, "entry 0 must be an object, got an array")),
    ],
)
def test_each_bad_field_is_reported_with_the_record_and_the_field(tmp_path, stream, entry, expected):
    assert errors_of(tmp_path, stream, entry) == [(stream, *expected)]


def test_values_the_format_forbids_are_reported_by_the_sync(db, tmp_path):
    document = example(
        activities=[
            {"id": "T1", "account_id": "A1", "kind": "fax", "occurred_at": "2026-10-20T14:00:00Z"},
            {
                "id": "T2",
                "account_id": "A1",
                "kind": "call",
                "direction": "sideways",
                "occurred_at": "2026-10-20",
            },
            {"id": "T3", "account_id": "A9", "kind": "call", "occurred_at": "2026-10-20"},
            {"id": "T4", "account_id": "A1", "kind": "meeting", "occurred_at": "2026-10-21T09:30:00Z"},
        ],
        strategies=[{"id": "S1", "account_id": "A1", "status": "shelved"}],
    )
    document["users"].append({"id": "U8", "email": "not-an-email", "name": "Nobody"})
    document["users"].append({"id": "U9", "email": "vp@example.com", "name": "VP", "role": "vp"})

    run = run_sync(db, FileSource(write(tmp_path, document)))

    assert run.status == "partial"
    assert [(e["stream"], e["external_id"], e["field"], e["message"]) for e in run.errors] == [
        ("users", "U8", "email", "'not-an-email' is not an email address"),
        ("users", "U9", "role", "must be one of rep, manager, admin, got 'vp'"),
        ("activities", "T1", "kind", "must be one of call, email, meeting, task, note, contract, got 'fax'"),
        ("activities", "T2", "direction", "must be one of inbound, outbound, unknown, got 'sideways'"),
        ("activities", "T3", "account_id", "unknown account 'A9'"),
        ("strategies", "S1", "status", "must be one of draft, active, achieved, abandoned, got 'shelved'"),
    ]
    assert db.scalars(select(Activity.external_id)).all() == ["T4"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"accounts": [{"id": "A1", "name": "Acme",}]}',
            "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 43",
        ),
        (
            '{"accounts": [\n  {"id": "A1"\n  "name": "Acme"}]}',
            "not valid JSON: Expecting ',' delimiter at line 3, column 3",
        ),
        ("", "not valid JSON: Expecting value at line 1, column 1"),
        (
            '{"accounts": [{"id": "A1", "name": "Acme", "annual_revenue": NaN}]}',
            "not valid JSON: NaN is not allowed in JSON at line 1, column 62",
        ),
        (
            # The words NaN and Infinity inside a string, even after an escaped quote, are not the culprit.
            '{"accounts": [\n  {"id": "A1", "name": "NaN \\" Infinity"},\n'
            '  {"id": "A2", "annual_revenue": -Infinity}]}',
            "not valid JSON: -Infinity is not allowed in JSON at line 3, column 34",
        ),
        ('[{"id": "A1"}]', TOP_LEVEL + " an array"),
        ('"accounts"', TOP_LEVEL + " a string"),
        ('{"accounts": {"A1": {"name": "Acme"}}}', '"accounts" must be an array, got an object'),
        ('{"users": [], "activities": "T1"}', '"activities" must be an array, got a string'),
    ],
)
def test_a_malformed_file_is_refused_with_what_and_where(db, tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(ImportFileError) as raised:
        list(FileSource(path).read("users", None, full=False))
    assert str(raised.value) == f"{path}: {message}"

    # Through the engine the run fails with the same message and nothing lands.
    run = run_sync(db, FileSource(path))
    assert (run.status, run.message, run.inserted) == ("failed", f"{path}: {message}", 0)
    assert db.scalars(select(Account)).all() == []


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"accounts": [{"id": "A1", "name": "Café"}]}'.encode("latin-1"))
    with pytest.raises(ImportFileError, match=r"not UTF-8 text \(byte 39\)"):
        list(FileSource(path).read("accounts", None, full=False))


def test_a_missing_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ImportFileError, match=r"import file '.*nowhere\.json' does not exist"):
        FileSource.from_config({}, path=str(missing))
    with pytest.raises(ImportFileError, match=r"import file '.*nowhere\.json' does not exist"):
        list(FileSource(missing).read("users", None, full=False))


def test_without_a_path_the_configured_one_is_used_and_none_at_all_is_refused(tmp_path):
    path = write(tmp_path, example())
    source = get_source("file", {"STRATLINK_IMPORT_PATH": str(path)}, path=None)
    assert isinstance(source, FileSource) and source.path == path
    with pytest.raises(
        ImportFileError,
        match=r"no import file given: set STRATLINK_IMPORT_PATH \(or pass --path FILE to the sync command\)",
    ):
        FileSource.from_config({"STRATLINK_IMPORT_PATH": ""})


def test_big_arrays_are_read_in_batches(tmp_path):
    activities = [
        {"id": f"T{n}", "account_id": "A1", "kind": "task", "occurred_at": "2026-10-20"} for n in range(4500)
    ]
    batches = list(
        FileSource(write(tmp_path, {"activities": activities})).read("activities", None, full=False)
    )
    assert [len(batch.records) for batch in batches] == [2000, 2000, 500]
    assert all(batch.cursor is None for batch in batches)


def test_a_file_with_none_of_the_arrays_says_so(db, tmp_path):
    run = run_sync(db, FileSource(write(tmp_path, {"contacts": []})))
    assert (run.status, run.inserted) == ("succeeded", 0)
    assert (
        run.message
        == "import.json holds none of the arrays users, accounts, opportunities, activities, strategies"
    )
