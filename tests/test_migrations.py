"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, text

from extensions import db as _db
from planning.models import Finding, Review
from tests.factories import make_account, make_strategy, make_user


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


def test_0012_gives_past_stale_findings_the_review_date_that_still_fits_their_reason(app, db):
    db.commit()
    downgrade(revision="0011")
    try:
        owner = make_user(db)
        kept = make_strategy(db, account=make_account(db, owner=owner), review_date=date(2026, 9, 1))
        moved_on = make_strategy(db, account=make_account(db, owner=owner), review_date=date(2026, 12, 15))
        review = Review(as_of=date(2026, 10, 31), window_days=30, min_activities=5, stale_days=60)
        db.add(review)
        db.flush()

        def finding(strategy, rule, reason):
            return {
                "review_id": review.id,
                "rule": rule,
                "reason": reason,
                "account_id": strategy.account_id,
                "strategy_id": strategy.id if rule == "stale_strategy" else None,
            }

        db.execute(
            insert(Finding.__table__),
            [
                finding(kept, "stale_strategy", "review_overdue"),
                finding(moved_on, "stale_strategy", "review_overdue"),
                finding(kept, "stale_strategy", "no_recent_activity"),
                finding(moved_on, "stale_strategy", "no_recent_activity"),
                finding(kept, "tactics_without_strategy", "unlinked"),
            ],
        )
        db.commit()
        upgrade(revision="0012")
        stored = db.execute(text("SELECT strategy_review_date FROM findings ORDER BY id")).scalars().all()
        db.commit()
    finally:
        upgrade()

    # A date that no longer fits the finding's reason cannot be the one it was judged by: better none.
    assert [None if day is None else str(day) for day in stored] == [
        "2026-09-01",
        None,
        None,
        "2026-12-15",
        None,
    ]


def test_0013_takes_the_digest_deliveries_made_before_it_as_accepted(app, db):
    db.commit()
    downgrade(revision="0012")
    try:
        review = Review(as_of=date(2026, 10, 31), window_days=30, min_activities=5, stale_days=60)
        db.add(review)
        db.flush()
        user = make_user(db)
        db.execute(
            text("INSERT INTO digest_deliveries (review_id, user_id, sent_at) VALUES (:review, :user, :at)"),
            {"review": review.id, "user": user.id, "at": "2026-11-02 07:00:05.000000+00:00"},
        )
        db.commit()
        upgrade(revision="0013")
        delivered = db.execute(text("SELECT sent_at, accepted_at FROM digest_deliveries")).one()
        db.commit()
    finally:
        upgrade()

    # A refused email's claim was always dropped: what is left went out.
    assert delivered.accepted_at == delivered.sent_at


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
