from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask_migrate import upgrade
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, create_engine, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

import extensions  # (also registers the SQLite connection settings)
from app import create_app
from planning.models import Activity, ActivityKind, Direction, Link, Role, StrategyStatus, UTCDateTime
from tests.factories import link, make_account, make_activity, make_strategy, make_user, utc


def test_times_come_back_as_aware_utc(db):
    account = make_account(db, owner=make_user(db))
    paris = timezone(timedelta(hours=1))
    make_activity(db, account=account, occurred_at=datetime(2026, 10, 20, 15, 0, tzinfo=paris))
    db.commit()
    db.expire_all()
    stored = db.scalars(select(Activity)).one()
    assert stored.occurred_at == utc(2026, 10, 20, 14, 0)
    assert stored.occurred_at.tzinfo is not None
    assert stored.occurred_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(db):
    account = make_account(db)
    with pytest.raises(Exception, match="naive datetime"):
        make_activity(db, account=account, occurred_at=datetime(2026, 10, 20, 14, 0))
    db.rollback()


def test_an_activity_serves_at_most_one_strategy(db):
    account = make_account(db)
    activity = make_activity(db, account=account, occurred_at=datetime.now(UTC))
    first = make_strategy(db, account=account)
    second = make_strategy(db, account=account)
    link(db, first, activity)
    db.commit()
    db.add(Link(activity=activity, strategy=second))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


def test_source_and_external_id_are_unique_per_synced_table(db):
    make_account(db, source="salesforce", external_id="001A")
    make_account(db, source="hubspot", external_id="001A")
    db.commit()
    with pytest.raises(IntegrityError):
        make_account(db, source="salesforce", external_id="001A")
    db.rollback()


ENUM_COLUMNS = [
    ("users", "role", Role),
    ("activities", "kind", ActivityKind),
    ("activities", "direction", Direction),
    ("strategies", "status", StrategyStatus),
]


@pytest.mark.parametrize(("table", "column", "kind"), ENUM_COLUMNS)
def test_the_database_itself_takes_only_an_enums_values(db, table, column, kind):
    account = make_account(db, owner=make_user(db))
    make_activity(db, account=account, occurred_at=datetime.now(UTC))
    make_strategy(db, account=account)
    db.commit()
    for member in kind:  # raw SQL, past the model's own validation
        db.execute(text(f"UPDATE {table} SET {column} = :value"), {"value": member.value})  # noqa: S608
    db.commit()
    for wrong in ("bogus", "", member.value.upper(), f"{member.value} "):
        with pytest.raises(IntegrityError):
            db.execute(text(f"UPDATE {table} SET {column} = :value"), {"value": wrong})  # noqa: S608
        db.rollback()


def test_sqlite_enum_checks_are_comparisons_not_in_lists(tmp_path):
    # SQLite builds a temporary b-tree for an IN list of constants at every statement run: a bulk
    # insert would pay for it on every row. Checked on a freshly migrated SQLite file whatever the
    # database of this run.
    url = f"sqlite:///{tmp_path / 'checks.sqlite3'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "t"})
    with app.app_context():
        upgrade()
        with extensions.db.engine.connect() as connection:
            for table in {table for table, _, _ in ENUM_COLUMNS}:
                definition = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (table,)
                ).scalar_one()
                assert "CHECK" in definition.upper()
                assert " IN (" not in definition.upper()
        extensions.db.engine.dispose()


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_utc_datetimes_are_stored_on_sqlite_as_sqlalchemy_writes_them(moment, offset_minutes):
    # The fast path must write the very text SQLAlchemy's own DATETIME does, or comparisons in SQL break.
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert ours(local) == theirs(moment.replace(tzinfo=None))
    assert ours(None) is None


def test_the_sqlite_fast_path_refuses_naive_datetimes():
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    with pytest.raises(ValueError, match="naive datetime"):
        process(datetime(2026, 10, 20, 14, 0))


def test_sqlite_connections_use_write_ahead_logging_and_wait_for_locks(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'pragmas.sqlite3'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()
