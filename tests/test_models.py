from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, create_engine, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

import extensions  # noqa: F401  (registers the SQLite connection settings)
from planning.models import Activity, Link, UTCDateTime
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
