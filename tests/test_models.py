from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from planning.models import Activity, Link
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
