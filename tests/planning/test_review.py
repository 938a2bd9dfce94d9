"""The tactics review, clause by clause: each test builds a small scenario and states the findings."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from planning.findings import findings_for_owners
from planning.models import Finding, Review
from planning.review import (
    NO_RECENT_ACTIVITY,
    NO_STRATEGY,
    REVIEW_OVERDUE,
    STALE_STRATEGY,
    TACTICS_WITHOUT_STRATEGY,
    UNLINKED,
    ReviewParameterError,
    day_window,
    run_review,
    run_review_from_config,
)
from tests.factories import (
    link,
    make_account,
    make_activity,
    make_opportunity,
    make_strategy,
    make_user,
    utc,
)

D = date(2026, 10, 31)
MID_WINDOW = utc(2026, 10, 20, 14)


def review(db, as_of=D, **parameters):
    """Run the review with the default thresholds unless told otherwise, and commit it."""
    parameters.setdefault("window_days", 30)
    parameters.setdefault("min_activities", 5)
    parameters.setdefault("stale_days", 60)
    result = run_review(db, as_of, **parameters)
    db.commit()
    return result


def found(result):
    """Return the findings as (rule, reason, status, account name) tuples, in stored order."""
    return [(f.rule, f.reason, f.status, f.account.name) for f in result.findings]


def calls(db, account, count, at=MID_WINDOW, **fields):
    return [make_activity(db, account=account, occurred_at=at, **fields) for _ in range(count)]


def test_the_window_holds_the_whole_day_d_and_excludes_day_d_minus_w(db):
    account = make_account(db, name="Boundary", owner=make_user(db))
    for moment in (utc(2026, 10, 2), utc(2026, 10, 15, 9), utc(2026, 10, 31, 23, 59, 59)):
        make_activity(db, account=account, occurred_at=moment)
    for moment in (utc(2026, 10, 1, 23, 59, 59), utc(2026, 11, 1)):
        make_activity(db, account=account, occurred_at=moment)

    flagged = review(db, min_activities=3).findings
    assert [(f.account.name, f.uncovered_total, f.uncovered) for f in flagged] == [
        ("Boundary", 3, {"call": 3})
    ]
    assert flagged[0].oldest_uncovered_at == utc(2026, 10, 2)
    # Four would need one of the two outside the window.
    assert review(db, min_activities=4).findings == []


def test_the_window_follows_the_review_timezone(db):
    account = make_account(db, name="Tokyo", owner=make_user(db))
    # Tokyo is UTC+9: its days D-29..D run from 2026-10-01T15:00Z to 2026-10-31T15:00Z.
    make_activity(db, account=account, occurred_at=utc(2026, 10, 1, 15))  # counts in Tokyo only
    make_activity(db, account=account, occurred_at=utc(2026, 10, 20))  # counts in both
    make_activity(db, account=account, occurred_at=utc(2026, 10, 31, 15))  # counts in UTC only
    make_activity(db, account=account, occurred_at=utc(2026, 10, 31, 14, 59, 59))  # counts in both

    in_utc = review(db, min_activities=1).findings
    assert (in_utc[0].uncovered_total, in_utc[0].oldest_uncovered_at) == (3, utc(2026, 10, 20))

    in_tokyo = review(db, min_activities=1, timezone="Asia/Tokyo").findings
    assert (in_tokyo[0].uncovered_total, in_tokyo[0].oldest_uncovered_at) == (3, utc(2026, 10, 1, 15))
    assert day_window(D, 30, "Asia/Tokyo") == (utc(2026, 10, 1, 15), utc(2026, 10, 31, 15))


def test_deleted_activities_do_not_count(db):
    owner = make_user(db)
    four_and_a_deleted_one = make_account(db, name="Four live", owner=owner)
    calls(db, four_and_a_deleted_one, 4)
    calls(db, four_and_a_deleted_one, 1, deleted=True)
    make_activity(
        db, account=four_and_a_deleted_one, kind="contract", occurred_at=utc(2026, 10, 5), deleted=True
    )
    five = make_account(db, name="Five live", owner=owner)
    calls(db, five, 5)

    assert found(review(db)) == [(TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Five live")]


def test_draft_and_abandoned_strategies_cover_nothing(db):
    owner = make_user(db)
    for status in ("draft", "abandoned"):
        account = make_account(db, name=status.title(), owner=owner)
        link(db, make_strategy(db, account=account, status=status), *calls(db, account, 5))

    assert sorted(found(review(db))) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Abandoned"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Draft"),
    ]


def test_an_achieved_strategy_covers_its_linked_activities_and_is_never_stale(db):
    owner = make_user(db)
    covered = make_account(db, name="Covered by achieved", owner=owner)
    link(
        db,
        make_strategy(db, account=covered, status="achieved", review_date=date(2026, 1, 1)),
        *calls(db, covered, 5),
    )
    # Achieved is not active: an account with only an achieved strategy has no strategy for new work.
    unlinked = make_account(db, name="Achieved, new work unlinked", owner=owner)
    make_strategy(db, account=unlinked, status="achieved")
    calls(db, unlinked, 5)

    assert found(review(db)) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Achieved, new work unlinked")
    ]


def test_a_lone_uncovered_contract_is_flagged_and_a_covered_one_is_not(db):
    owner = make_user(db)
    lone = make_account(db, name="Lone contract", owner=owner)
    make_activity(db, account=lone, kind="contract", occurred_at=utc(2026, 10, 30))
    covered = make_account(db, name="Covered contract", owner=owner)
    strategy = make_strategy(db, account=covered)
    link(db, strategy, make_activity(db, account=covered, kind="contract", occurred_at=utc(2026, 10, 30)))

    flagged = review(db).findings
    assert found(review(db)) == [(TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Lone contract")]
    assert (flagged[0].uncovered, flagged[0].uncovered_total) == ({"contract": 1}, 1)
    assert flagged[0].oldest_uncovered_at == utc(2026, 10, 30)


def test_an_activity_linked_to_another_accounts_strategy_is_not_covered(db):
    owner = make_user(db)
    planned = make_account(db, name="Has the strategy", owner=owner)
    strategy = make_strategy(db, account=planned)
    borrowed = make_account(db, name="Borrows it", owner=owner)
    link(db, strategy, *calls(db, borrowed, 5))

    assert sorted(found(review(db))) == [
        # The strategy's only linked activity belongs to another account, so it has none of its own.
        (STALE_STRATEGY, NO_RECENT_ACTIVITY, "new", "Has the strategy"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Borrows it"),
    ]


def test_the_threshold_flags_n_uncovered_activities_and_not_n_minus_one(db):
    owner = make_user(db)
    calls(db, make_account(db, name="Four", owner=owner), 4)
    calls(db, make_account(db, name="Five", owner=owner), 5)
    six = make_account(db, name="Six with one covered", owner=owner)
    activities = calls(db, six, 6)
    link(db, make_strategy(db, account=six), activities[0])

    assert found(review(db)) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Five"),
        (TACTICS_WITHOUT_STRATEGY, UNLINKED, "new", "Six with one covered"),
    ]


def test_reasons_say_whether_the_account_has_an_active_strategy(db):
    owner = make_user(db)
    calls(db, make_account(db, name="No strategy", owner=owner), 5)
    with_active = make_account(db, name="Active strategy", owner=owner)
    strategy = make_strategy(db, account=with_active)
    link(db, strategy, make_activity(db, account=with_active, occurred_at=utc(2026, 10, 1)))
    calls(db, with_active, 5)
    with_draft = make_account(db, name="Draft only", owner=owner)
    make_strategy(db, account=with_draft, status="draft")
    calls(db, with_draft, 5)

    reasons = {name: reason for _, reason, _, name in found(review(db))}
    assert reasons == {"No strategy": NO_STRATEGY, "Active strategy": UNLINKED, "Draft only": NO_STRATEGY}


def test_a_strategy_past_its_review_date_is_stale(db):
    owner = make_user(db)
    names = {}
    for name, review_date in (("Due yesterday", date(2026, 10, 30)), ("Due today", D), ("No date", None)):
        account = make_account(db, name=name, owner=owner)
        strategy = make_strategy(db, account=account, review_date=review_date)
        link(db, strategy, make_activity(db, account=account, occurred_at=utc(2026, 10, 20)))
        names[strategy.id] = name

    flagged = review(db).findings
    assert found(review(db)) == [(STALE_STRATEGY, REVIEW_OVERDUE, "new", "Due yesterday")]
    assert names[flagged[0].strategy_id] == "Due yesterday"


def test_a_strategy_with_no_linked_activity_in_sixty_days_is_stale(db):
    owner = make_user(db)
    # (D - 60, D] starts on 2026-09-02.
    cases = {
        "Linked at the window's first instant": utc(2026, 9, 2),
        "Linked a second before the window": utc(2026, 9, 1, 23, 59, 59),
        "Linked after D": utc(2026, 11, 1),
    }
    for name, moment in cases.items():
        account = make_account(db, name=name, owner=owner)
        strategy = make_strategy(db, account=account, review_date=date(2026, 12, 1))
        link(db, strategy, make_activity(db, account=account, occurred_at=moment))
    only_deleted = make_account(db, name="Only a deleted one recently", owner=owner)
    strategy = make_strategy(db, account=only_deleted)
    link(db, strategy, make_activity(db, account=only_deleted, occurred_at=utc(2026, 10, 20), deleted=True))
    make_strategy(db, account=make_account(db, name="Empty draft", owner=owner), status="draft")
    make_strategy(db, account=make_account(db, name="Empty active", owner=owner))

    assert sorted(found(review(db))) == [
        (STALE_STRATEGY, NO_RECENT_ACTIVITY, "new", "Empty active"),
        (STALE_STRATEGY, NO_RECENT_ACTIVITY, "new", "Linked a second before the window"),
        (STALE_STRATEGY, NO_RECENT_ACTIVITY, "new", "Linked after D"),
        (STALE_STRATEGY, NO_RECENT_ACTIVITY, "new", "Only a deleted one recently"),
    ]


def test_each_stale_strategy_is_its_own_finding(db):
    account = make_account(db, name="Two plans", owner=make_user(db))
    first = make_strategy(db, account=account, review_date=date(2026, 10, 1))
    second = make_strategy(db, account=account)

    flagged = review(db).findings
    assert sorted((f.strategy_id, f.reason) for f in flagged) == [
        (first.id, REVIEW_OVERDUE),
        (second.id, NO_RECENT_ACTIVITY),
    ]


def test_findings_carry_the_account_owner_and_the_open_pipeline(db):
    owner = make_user(db, name="Rita Rep")
    colleague = make_user(db, name="Colin Colleague")
    account = make_account(db, name="Pipeline", owner=owner)
    calls(db, account, 5, owner=colleague)
    make_opportunity(db, account=account, amount=50000)
    make_opportunity(db, account=account, amount=Decimal("12500.50"))
    make_opportunity(db, account=account, amount=900000, is_closed=True, is_won=True)
    make_opportunity(db, account=account, amount=70000, deleted=True)
    make_opportunity(db, account=account, amount=0, name="No amount yet").amount = None
    db.flush()

    [finding] = review(db).findings
    assert finding.owner.name == "Rita Rep"
    assert finding.open_pipeline == Decimal("62500.50")


def test_deleted_accounts_are_never_flagged(db):
    owner = make_user(db)
    gone = make_account(db, name="Deleted in the CRM", owner=owner, deleted=True)
    calls(db, gone, 5)
    make_strategy(db, account=gone)

    assert review(db).findings == []


def test_uncovered_counts_are_given_by_kind(db):
    account = make_account(db, name="Mixed", owner=make_user(db))
    calls(db, account, 7)
    calls(db, account, 2, kind="email")
    calls(db, account, 1, kind="contract", at=utc(2026, 10, 3, 8))

    [finding] = review(db).findings
    assert finding.uncovered == {"call": 7, "email": 2, "contract": 1}
    assert finding.uncovered_total == 10
    assert finding.oldest_uncovered_at == utc(2026, 10, 3, 8)


def test_findings_are_new_then_persisting_then_resolved_across_three_reviews(db):
    owner = make_user(db)
    always = make_account(db, name="Always", owner=owner)
    fixed = make_account(db, name="Fixed before the third", owner=owner)
    late = make_account(db, name="Late", owner=owner)
    calls(db, always, 5, at=utc(2026, 10, 1))
    fixed_calls = calls(db, fixed, 5, at=utc(2026, 10, 1))
    first = review(db, as_of=date(2026, 10, 3))

    calls(db, late, 5, at=utc(2026, 10, 8))
    second = review(db, as_of=date(2026, 10, 10))

    link(db, make_strategy(db, account=fixed), *fixed_calls)
    db.commit()
    third = review(db, as_of=date(2026, 10, 17))
    fourth = review(db, as_of=date(2026, 10, 24))

    assert sorted(found(first)) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Always"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Fixed before the third"),
    ]
    assert sorted(found(second)) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Late"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "persisting", "Always"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "persisting", "Fixed before the third"),
    ]
    assert found(third) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "persisting", "Always"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "persisting", "Late"),
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "resolved", "Fixed before the third"),
    ]
    # A resolved finding keeps the figures it had when it last fired.
    assert third.findings[-1].uncovered == {"call": 5}
    # Once reported resolved it is not carried on.
    assert [name for *_, name in found(fourth)] == ["Always", "Late"]


def test_a_finding_that_fires_again_after_resolving_is_new(db):
    account = make_account(db, name="Back again", owner=make_user(db))
    calls(db, account, 5, at=utc(2026, 10, 1))
    review(db, as_of=date(2026, 10, 3))
    review(db, as_of=date(2026, 11, 20))
    calls(db, account, 5, at=utc(2026, 11, 25))

    assert found(review(db, as_of=date(2026, 11, 27))) == [
        (TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Back again")
    ]


def test_running_again_for_the_same_date_replaces_the_review_with_identical_findings(db):
    owner = make_user(db)
    calls(db, make_account(db, name="Busy", owner=owner), 6)
    make_strategy(db, account=make_account(db, name="Quiet", owner=owner), review_date=date(2026, 10, 1))
    review(db, as_of=date(2026, 10, 24))

    def snapshot(result):
        return [
            (f.rule, f.reason, f.status, f.account_id, f.owner_id, f.strategy_id, f.uncovered)
            + (f.uncovered_total, f.oldest_uncovered_at, f.open_pipeline)
            for f in result.findings
        ]

    once = review(db)
    first_snapshot, first_id = snapshot(once), once.id
    db.expire_all()
    twice = review(db)

    assert twice.id == first_id
    assert snapshot(twice) == first_snapshot
    assert [status for _, _, status, *_ in first_snapshot] == ["persisting", "persisting"]
    assert db.scalar(select(func.count()).select_from(Review).where(Review.as_of == D)) == 1
    assert db.scalar(select(func.count()).select_from(Finding)) == 4


def test_a_rerun_with_other_thresholds_replaces_the_stored_parameters(db):
    calls(db, make_account(db, name="Three", owner=make_user(db)), 3)
    assert review(db).findings == []

    again = review(db, min_activities=3, window_days=14, timezone="Europe/Paris")
    assert (again.min_activities, again.window_days, again.stale_days, again.timezone) == (
        3,
        14,
        60,
        "Europe/Paris",
    )
    assert found(again) == [(TACTICS_WITHOUT_STRATEGY, NO_STRATEGY, "new", "Three")]


def test_stale_findings_keep_the_review_date_they_were_judged_by(db):
    owner = make_user(db)
    calls(db, make_account(db, name="Busy", owner=owner), 5)
    quiet = make_strategy(
        db, account=make_account(db, name="Quiet", owner=owner), review_date=date(2026, 10, 1)
    )
    last_week = review(db, as_of=date(2026, 10, 24))
    quiet.review_date = date(2026, 10, 15)  # moved on, and overdue again by D
    db.commit()
    this_week = review(db)
    quiet.status = "abandoned"
    db.commit()
    two_weeks_on = review(db, as_of=date(2026, 11, 21))

    db.expire_all()

    def dates(result):
        return [(f.rule, f.status, f.strategy_review_date) for f in result.findings]

    assert dates(last_week) == [
        (TACTICS_WITHOUT_STRATEGY, "new", None),
        (STALE_STRATEGY, "new", date(2026, 10, 1)),
    ]
    assert dates(this_week) == [
        (TACTICS_WITHOUT_STRATEGY, "persisting", None),
        (STALE_STRATEGY, "persisting", date(2026, 10, 15)),
    ]
    # Busy's calls of 20 October are out of the window by 21 November: both findings resolve as they were.
    assert dates(two_weeks_on) == [
        (TACTICS_WITHOUT_STRATEGY, "resolved", None),
        (STALE_STRATEGY, "resolved", date(2026, 10, 15)),
    ]


def test_findings_are_ordered_by_rule_then_the_most_uncovered_then_pipeline(db):
    owner = make_user(db)
    accounts = {name: make_account(db, name=name, owner=owner) for name in ("A", "B", "C", "D")}
    calls(db, accounts["A"], 5)
    calls(db, accounts["B"], 8)
    calls(db, accounts["C"], 5)
    make_opportunity(db, account=accounts["C"], amount=1000)
    make_strategy(db, account=accounts["D"])

    assert [name for *_, name in found(review(db))] == ["B", "C", "A", "D"]


def test_readers_sort_findings_into_display_order_whatever_order_they_were_written_in(db):
    owner = make_user(db)
    accounts = {name: make_account(db, name=name, owner=owner) for name in ("Gone", "Stale", "A", "B", "C")}
    strategy = make_strategy(db, account=accounts["Stale"])
    stored = Review(as_of=D, window_days=30, min_activities=5, stale_days=60, timezone="UTC")
    db.add(stored)

    def finding(name, total=5, pipeline=0, rule=TACTICS_WITHOUT_STRATEGY, status="new", strategy=None):
        return Finding(
            review=stored,
            rule=rule,
            reason=NO_STRATEGY if strategy is None else NO_RECENT_ACTIVITY,
            status=status,
            account_id=accounts[name].id,
            owner_id=owner.id,
            strategy_id=None if strategy is None else strategy.id,
            uncovered={"call": total},
            uncovered_total=total,
            open_pipeline=Decimal(pipeline),
        )

    # Written in the reverse of the order people are shown: ids alone would show them backwards.
    db.add_all(
        [
            finding("Gone", total=9, status="resolved"),
            finding("Stale", total=0, rule=STALE_STRATEGY, strategy=strategy),
            finding("C"),
            finding("B", pipeline=1000),
            finding("A", total=8),
        ]
    )
    db.commit()
    db.expire_all()

    shown = ["A", "B", "C", "Stale", "Gone"]
    assert [f.account.name for f in db.get(Review, stored.id).findings] == shown
    assert [f.account.name for f in findings_for_owners(db, stored, None)] == shown
    assert [f.account.name for f in findings_for_owners(db, stored, {owner.id})] == shown


def test_the_review_uses_a_fixed_number_of_statements_whatever_the_data_size(db, app):
    from extensions import db as extension

    def statements_for(accounts):
        owner = make_user(db)
        for index in range(accounts):
            account = make_account(db, owner=owner)
            activities = calls(db, account, 5)
            make_opportunity(db, account=account)
            if index % 2:
                link(db, make_strategy(db, account=account), activities[0])
        db.commit()
        count = 0

        def count_statement(*_):
            nonlocal count
            count += 1

        event.listen(extension.engine, "before_cursor_execute", count_statement)
        try:
            result = review(db, as_of=date(2026, 10, 31) if accounts == 2 else date(2026, 11, 1))
        finally:
            event.remove(extension.engine, "before_cursor_execute", count_statement)
        return count, len(result.findings)

    review(db, as_of=date(2026, 10, 1))  # both runs below then have a previous review to compare with
    small = statements_for(2)
    large = statements_for(20)
    assert large[1] > small[1]
    assert large[0] == small[0]


@pytest.mark.postgres
def test_a_review_in_progress_locks_no_account_owner_or_strategy(db, postgres):
    # Findings name their account, owner and strategy without foreign keys: a key check would lock each
    # referenced row until the review commits (and write the lock into the row).
    owner = make_user(db)
    busy = make_account(db, name="Busy", owner=owner)
    calls(db, busy, 5)
    strategy = make_strategy(
        db, account=make_account(db, name="Quiet", owner=owner), review_date=date(2026, 10, 1)
    )
    db.commit()

    assert len(run_review(db, D).findings) == 2  # flushed, not committed
    other = create_engine(postgres, poolclass=NullPool)
    try:
        with other.connect() as connection:
            for table, row_id in (("accounts", busy.id), ("users", owner.id), ("strategies", strategy.id)):
                locked = connection.execute(
                    text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE NOWAIT"), {"id": row_id}
                )
                assert locked.scalar() == row_id
            connection.rollback()
    finally:
        other.dispose()
        db.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("day_reviewed_before", [False, True], ids=["first-run", "rerun"])
def test_two_runs_for_the_same_day_at_once_leave_one_copy_of_each_finding(db, postgres, day_reviewed_before):
    # The scheduler's run and someone's "Run the review" (or a double click) at the same moment: the second
    # must wait for the first, then replace its findings, not add a second copy or fail.
    owner = make_user(db)
    calls(db, make_account(db, name="Busy", owner=owner), 6)
    make_strategy(db, account=make_account(db, name="Quiet", owner=owner), review_date=date(2026, 10, 1))
    db.commit()
    if day_reviewed_before:
        review(db)

    run_review(db, D)  # flushed, not committed
    other = create_engine(postgres, poolclass=NullPool)
    outcome: list[object] = []

    def second_run():
        try:
            with Session(other) as session:
                outcome.append(len(run_review(session, D).findings))
                session.commit()
        except Exception as error:  # reported below, in the test's thread
            outcome.append(error)

    second = threading.Thread(target=second_run)
    second.start()
    try:
        # Let the first commit only once the second is queued behind it.
        deadline = time.monotonic() + 30
        while second.is_alive() and not db.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
            assert time.monotonic() < deadline, "the second run neither waited for the first nor ended"
            second.join(0.01)
        db.commit()
        second.join(30)
    finally:
        db.rollback()
        other.dispose()

    assert outcome == [2]
    assert db.scalar(select(func.count()).select_from(Review).where(Review.as_of == D)) == 1
    stored = db.scalars(select(Finding).join(Review).where(Review.as_of == D)).all()
    assert sorted((f.rule, f.account.name) for f in stored) == [
        (STALE_STRATEGY, "Quiet"),
        (TACTICS_WITHOUT_STRATEGY, "Busy"),
    ]


@pytest.mark.postgres
def test_the_review_tunes_postgresql_for_its_own_transaction_only(db, postgres):
    def settings():
        return tuple(db.scalar(text(f"SELECT current_setting('{name}')")) for name in ("jit", "work_mem"))

    before = settings()
    run_review(db, D)
    assert settings() == ("off", "64MB")
    db.commit()
    # A pooled connection goes back to the server's settings for whatever runs on it next.
    assert settings() == before


def test_parameters_come_from_the_config(db):
    calls(db, make_account(db, name="Two", owner=make_user(db)), 2)
    config = {
        "REVIEW_WINDOW_DAYS": 10,
        "REVIEW_MIN_ACTIVITIES": 2,
        "REVIEW_STALE_DAYS": 20,
        "REVIEW_TIMEZONE": "Europe/Paris",
    }

    result = run_review_from_config(db, config, as_of=date(2026, 10, 25))
    assert (result.window_days, result.min_activities, result.stale_days, result.timezone) == (
        10,
        2,
        20,
        "Europe/Paris",
    )
    assert [f.account.name for f in result.findings] == ["Two"]


def test_people_and_the_scheduler_may_not_review_a_day_after_today(db):
    from planning.review import today_in

    config = {"REVIEW_TIMEZONE": "Pacific/Kiritimati"}  # UTC+14: its today is often UTC's tomorrow
    today = today_in("Pacific/Kiritimati")

    with pytest.raises(
        ReviewParameterError, match=f"after today \\({today.isoformat()} in Pacific/Kiritimati\\)"
    ):
        run_review_from_config(db, config, as_of=today + timedelta(days=1))
    assert db.scalars(select(Review)).all() == []
    assert run_review_from_config(db, config, as_of=today).as_of == today


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"window_days": 0}, "window_days"),
        ({"stale_days": 10**9}, "stale_days"),
        ({"as_of": date(1, 1, 1)}, "as_of"),
        ({"as_of": date(9999, 12, 31)}, "as_of"),
        ({"min_activities": 0}, "min_activities"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_impossible_parameters_are_refused(db, parameters, message):
    as_of = parameters.pop("as_of", D)
    with pytest.raises(ReviewParameterError, match=message):
        run_review(db, as_of, **parameters)
