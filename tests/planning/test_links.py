"""Linking activities to strategies, suggestions, the account list's priorities and dashboard figures."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from planning.accounts import badges_for_accounts, list_accounts
from planning.comments import add_comment, comments_on
from planning.links import (
    DELETED_IN_CRM,
    NO_SUCH_ACTIVITY,
    OTHER_ACCOUNT,
    SERVES_ANOTHER,
    LinkRefused,
    key_terms,
    link_activities,
    suggest_links,
    unlink_activities,
)
from planning.metrics import dashboard_figures
from planning.models import Direction, Link, Role, StrategyStatus
from planning.strategies import NotAllowed, StrategyInvalid
from tests.factories import make_account, make_activity, make_opportunity, make_strategy, make_user, utc

NOW = utc(2026, 11, 20, 12)


@pytest.fixture
def rep(db: Session):
    return make_user(db, role=Role.REP)


@pytest.fixture
def account(db: Session, rep):
    return make_account(db, owner=rep)


def _linked_strategy_id(db: Session, activity_id: int) -> int | None:
    link = db.query(Link).filter_by(activity_id=activity_id).one_or_none()
    return link.strategy_id if link else None


def test_linking_attaches_activities_and_is_idempotent(db: Session, rep, account) -> None:
    strategy = make_strategy(db, account=account)
    calls = [make_activity(db, account=account, occurred_at=NOW - timedelta(days=day)) for day in (1, 2, 3)]

    first = link_activities(db, rep, strategy, [call.id for call in calls])
    again = link_activities(db, rep, strategy, [calls[0].id, calls[0].id])

    assert first.linked == [call.id for call in calls]
    assert again.linked == [] and again.unchanged == [calls[0].id]
    assert {link.activity_id for link in strategy.links} == {call.id for call in calls}


def test_activities_of_another_account_deleted_or_unknown_are_refused_and_nothing_links(
    db: Session, rep, account
) -> None:
    strategy = make_strategy(db, account=account)
    good = make_activity(db, account=account, occurred_at=NOW)
    foreign = make_activity(db, account=make_account(db, owner=rep), occurred_at=NOW)
    deleted = make_activity(db, account=account, occurred_at=NOW, deleted=True)

    with pytest.raises(LinkRefused) as raised:
        link_activities(db, rep, strategy, [good.id, foreign.id, deleted.id, 999_999])

    assert raised.value.problems == {
        foreign.id: "belongs to another account",
        deleted.id: "was deleted in the CRM",
        999_999: "no such activity",
    }
    assert raised.value.reasons == {
        foreign.id: OTHER_ACCOUNT,
        deleted.id: DELETED_IN_CRM,
        999_999: NO_SUCH_ACTIVITY,
    }
    assert _linked_strategy_id(db, good.id) is None


def test_an_activity_serving_another_strategy_moves_only_on_purpose(db: Session, rep, account) -> None:
    old = make_strategy(db, account=account, status=StrategyStatus.ABANDONED)
    new = make_strategy(db, account=account)
    call = make_activity(db, account=account, occurred_at=NOW)
    link_activities(db, rep, old, [call.id])

    with pytest.raises(LinkRefused) as raised:
        link_activities(db, rep, new, [call.id])
    assert f"already serves strategy {old.id}" in raised.value.problems[call.id]
    assert raised.value.reasons[call.id] == SERVES_ANOTHER

    result = link_activities(db, rep, new, [call.id], move=True)
    assert result.moved == [call.id]
    assert _linked_strategy_id(db, call.id) == new.id


def test_unlinking_removes_only_this_strategys_links(db: Session, rep, account) -> None:
    strategy = make_strategy(db, account=account)
    other = make_strategy(db, account=account, status=StrategyStatus.DRAFT)
    mine, theirs = (make_activity(db, account=account, occurred_at=NOW) for _ in range(2))
    link_activities(db, rep, strategy, [mine.id])
    link_activities(db, rep, other, [theirs.id])

    result = unlink_activities(db, rep, strategy, [mine.id, theirs.id])

    assert result.unlinked == [mine.id] and result.unchanged == [theirs.id]
    assert _linked_strategy_id(db, mine.id) is None
    assert _linked_strategy_id(db, theirs.id) == other.id


def test_a_manager_may_not_link_on_a_reps_account(db: Session, rep, account) -> None:
    manager = make_user(db, role=Role.MANAGER)
    rep.manager = manager
    strategy = make_strategy(db, account=account)
    call = make_activity(db, account=account, occurred_at=NOW)

    with pytest.raises(NotAllowed):
        link_activities(db, manager, strategy, [call.id])


def test_key_terms_drop_stop_words_and_plurals() -> None:
    assert key_terms("The Pilots on Line 2 for the COO's planners") == {"pilot", "line", "coo", "planner"}


def test_suggestions_favour_the_targeted_opportunity_then_shared_terms(db: Session, rep, account) -> None:
    opportunity = make_opportunity(db, account=account, name="Scheduling rollout")
    strategy = make_strategy(
        db,
        account=account,
        objective="Their planners schedule line 2 in an hour instead of a day",
        approach="Run the scheduling pilot with the planning team",
        opportunity_id=opportunity.id,
    )
    on_deal = make_activity(
        db,
        account=account,
        occurred_at=NOW - timedelta(days=5),
        subject="Pricing questions",
        opportunity_id=opportunity.id,
    )
    shared = make_activity(
        db, account=account, occurred_at=NOW - timedelta(days=1), subject="Pilot kickoff with the planners"
    )
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=2), subject="Birthday card")
    old = make_activity(db, account=account, occurred_at=NOW - timedelta(days=200), subject="Pilot planners")
    already = make_activity(db, account=account, occurred_at=NOW, subject="Pilot planners review")
    link_activities(db, rep, strategy, [already.id])

    suggestions = suggest_links(db, strategy, limit=5, now=NOW)

    assert [item.activity.id for item in suggestions] == [on_deal.id, shared.id]
    assert suggestions[0].on_opportunity and "opportunity" in suggestions[0].reason
    assert suggestions[1].shared_terms == ("pilot", "planner")
    assert old.id not in [item.activity.id for item in suggestions]


def test_priorities_put_uncovered_activity_first_with_badges(db: Session, rep) -> None:
    quiet = make_account(db, owner=rep, name="Quiet Co")
    make_opportunity(db, account=quiet, amount=900_000)
    busy = make_account(db, owner=rep, name="Busy Co")
    for day in range(6):
        make_activity(db, account=busy, occurred_at=NOW - timedelta(days=day + 1))
    covered = make_account(db, owner=rep, name="Covered Co")
    strategy = make_strategy(db, account=covered, review_date=date(2026, 10, 1))
    calls = [
        make_activity(db, account=covered, occurred_at=NOW - timedelta(days=day + 1)) for day in range(3)
    ]
    link_activities(db, rep, strategy, [call.id for call in calls[:2]])
    other_rep_account = make_account(db, owner=make_user(db), name="Not mine")
    make_activity(db, account=other_rep_account, occurred_at=NOW)

    page = list_accounts(db, rep, now=NOW)

    assert [row.name for row in page.rows] == ["Busy Co", "Covered Co", "Quiet Co"]
    badges = {row.name: row.badges for row in page.rows}
    assert badges == {
        "Busy Co": ["no_strategy"],
        "Covered Co": ["unlinked_activity", "stale_strategy"],
        "Quiet Co": ["no_strategy"],
    }
    assert [row.uncovered_recent for row in page.rows] == [6, 1, 0]
    # The badges of a given set of accounts, asked for on their own, are the list's.
    assert badges_for_accounts(db, [row.id for row in page.rows], now=NOW) == {
        row.id: row.badges for row in page.rows
    }
    needing = list_accounts(db, rep, needs_strategy=True, now=NOW)
    assert [row.name for row in needing.rows] == ["Busy Co", "Quiet Co"]


def test_a_strategy_with_no_linked_activity_in_sixty_days_is_stale(db: Session, rep, account) -> None:
    strategy = make_strategy(db, account=account, review_date=date(2027, 1, 1))
    call = make_activity(db, account=account, occurred_at=NOW - timedelta(days=61))
    link_activities(db, rep, strategy, [call.id])

    assert list_accounts(db, rep, now=NOW).rows[0].badges == ["stale_strategy"]
    fresh = make_activity(db, account=account, occurred_at=NOW - timedelta(days=59))
    link_activities(db, rep, strategy, [fresh.id])
    assert list_accounts(db, rep, now=NOW).rows[0].badges == []


def test_dashboard_figures_cover_the_callers_scope(db: Session) -> None:
    manager = make_user(db, role=Role.MANAGER, manager=make_user(db, role=Role.MANAGER))
    ana = make_user(db, role=Role.REP, manager=manager, name="Ana")
    ben = make_user(db, role=Role.REP, manager=manager, name="Ben")
    outsider = make_user(db, role=Role.REP, name="Zed")
    with_strategy = make_account(db, owner=ana)
    make_opportunity(db, account=with_strategy, amount=100_000)
    strategy = make_strategy(db, account=with_strategy)
    inbound = make_activity(
        db, account=with_strategy, occurred_at=NOW - timedelta(days=3), direction=Direction.INBOUND
    )
    make_activity(
        db, account=with_strategy, occurred_at=NOW - timedelta(days=40), direction=Direction.OUTBOUND
    )
    link_activities(db, ana, strategy, [inbound.id])
    without = make_account(db, owner=ben)
    make_opportunity(db, account=without, amount=25_000)
    make_opportunity(db, account=without, amount=5_000, is_closed=True)
    make_activity(db, account=without, occurred_at=NOW - timedelta(days=2), direction=Direction.OUTBOUND)
    make_activity(db, account=without, occurred_at=NOW - timedelta(days=100), direction=Direction.INBOUND)
    make_opportunity(db, account=make_account(db, owner=outsider), amount=1_000_000)

    dashboard = dashboard_figures(db, manager, now=NOW)

    totals = dashboard.totals
    assert (totals.accounts, totals.accounts_with_active_strategy) == (2, 1)
    assert totals.strategy_coverage == 0.5
    assert totals.pipeline_with_active_strategy == Decimal(100_000)
    assert totals.pipeline_without_active_strategy == Decimal(25_000)
    assert (totals.recent_activities, totals.covered_recent_activities) == (2, 1)
    assert (totals.inbound, totals.outbound, totals.dialogue_ratio) == (1, 2, 0.5)
    assert [owner.owner_name for owner in dashboard.by_owner] == ["Ana", "Ben"]
    assert dashboard_figures(db, ana, now=NOW).totals.accounts == 1


def test_managers_comment_and_outsiders_cannot(db: Session, rep, account) -> None:
    manager = make_user(db, role=Role.MANAGER)
    rep.manager = manager
    outsider = make_user(db, role=Role.REP)
    strategy = make_strategy(db, account=account)

    add_comment(db, manager, strategy, "  Which line goes first?  ")
    with pytest.raises(NotAllowed):
        add_comment(db, outsider, strategy, "Hi")
    with pytest.raises(StrategyInvalid):
        add_comment(db, rep, strategy, "   ")

    [comment] = comments_on(db, strategy)
    assert (comment.author_id, comment.body) == (manager.id, "Which line goes first?")
