"""Which of "my accounts" need attention first, with badges saying why.

Accounts are ordered by uncovered activity in the last 30 days (activity not linked to an active or
achieved strategy of the account: tactics with no strategy behind them), then by open pipeline. Badges:

- `no_strategy`: the account has no active strategy;
- `unlinked_activity`: it has one, but activity of the last 30 days is not linked to it;
- `stale_strategy`: an active strategy's review date has passed, or no linked activity in 60 days.

One query for the page and one count, whatever the data size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, exists, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from planning.access import scope_accounts
from planning.accounts import Page
from planning.models import (
    COVERING_STATUSES,
    Account,
    Activity,
    Link,
    Opportunity,
    Strategy,
    StrategyStatus,
    User,
    utcnow,
)

RECENT_DAYS = 30
STALE_DAYS = 60
SORTS = ("priority", "name", "pipeline")

BADGE_LABELS = {
    "no_strategy": "No strategy",
    "unlinked_activity": "Unlinked activity",
    "stale_strategy": "Stale strategy",
}


def badges(has_active_strategy: bool, uncovered_recent: int, has_stale_strategy: bool) -> list[str]:
    """Return the badges an account earns, in a fixed order."""
    earned = []
    if not has_active_strategy:
        earned.append("no_strategy")
    elif uncovered_recent:
        earned.append("unlinked_activity")
    if has_stale_strategy:
        earned.append("stale_strategy")
    return earned


@dataclass(frozen=True, slots=True)
class PriorityRow:
    """One account in priority order, with its figures and badges (a superset of the account list's row)."""

    id: int
    name: str
    industry: str | None
    owner_id: int | None
    owner_name: str | None
    open_pipeline: Decimal
    strategy_status: StrategyStatus | None
    uncovered_recent: int
    recent_activities: int
    last_activity_at: datetime | None
    has_active_strategy: bool
    has_stale_strategy: bool

    @property
    def badges(self) -> list[str]:
        return badges(self.has_active_strategy, self.uncovered_recent, self.has_stale_strategy)


def uncovered_activity_count(since: datetime, until: datetime) -> Any:
    """Return a subquery counting an account's activities in (since, until] no covering strategy serves."""
    covering = aliased(Strategy)
    return (
        select(func.count(Activity.id))
        .outerjoin(Link, Link.activity_id == Activity.id)
        .outerjoin(
            covering,
            and_(
                covering.id == Link.strategy_id,
                covering.account_id == Activity.account_id,
                covering.status.in_(COVERING_STATUSES),
            ),
        )
        .where(
            Activity.account_id == Account.id,
            Activity.deleted.is_(false()),
            Activity.occurred_at > since,
            Activity.occurred_at <= until,
            covering.id.is_(None),
        )
        .correlate(Account)
        .scalar_subquery()
    )


def open_pipeline() -> Any:
    """Return a subquery summing the account's open, non-deleted opportunities."""
    return (
        select(func.coalesce(func.sum(Opportunity.amount), 0))
        .where(
            Opportunity.account_id == Account.id,
            Opportunity.is_closed.is_(false()),
            Opportunity.deleted.is_(false()),
        )
        .correlate(Account)
        .scalar_subquery()
    )


def has_active_strategy() -> Any:
    """Return a condition: the account has an active strategy."""
    return exists().where(Strategy.account_id == Account.id, Strategy.status == StrategyStatus.ACTIVE)


def has_stale_strategy(now: datetime) -> Any:
    """Return a condition: an active strategy of the account is overdue for review or has gone silent."""
    linked = aliased(Activity)
    recent_link = (
        exists()
        .where(
            Link.strategy_id == Strategy.id,
            linked.id == Link.activity_id,
            linked.deleted.is_(false()),
            linked.occurred_at > now - timedelta(days=STALE_DAYS),
            linked.occurred_at <= now,
        )
        .correlate(Strategy)
    )
    return exists().where(
        Strategy.account_id == Account.id,
        Strategy.status == StrategyStatus.ACTIVE,
        or_(Strategy.review_date < now.date(), ~recent_link),
    )


# The strategy that speaks for the account: an active one first, then a draft, achieved, abandoned one.
_STATUS_ORDER = case(
    (Strategy.status == StrategyStatus.ACTIVE, 0),
    (Strategy.status == StrategyStatus.DRAFT, 1),
    (Strategy.status == StrategyStatus.ACHIEVED, 2),
    else_=3,
)


def leading_strategy_status() -> Any:
    """Return a subquery: the status of the strategy that speaks for the account, if any."""
    return (
        select(Strategy.status)
        .where(Strategy.account_id == Account.id)
        .order_by(_STATUS_ORDER, Strategy.updated_at.desc(), Strategy.id.desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )


def badges_for_accounts(
    session: Session, account_ids: list[int], *, now: datetime | None = None
) -> dict[int, list[str]]:
    """Return the badges of each given account, in one query."""
    if not account_ids:
        return {}
    now = now or utcnow()
    statement = select(
        Account.id,
        has_active_strategy().label("active"),
        uncovered_activity_count(now - timedelta(days=RECENT_DAYS), now).label("uncovered"),
        has_stale_strategy(now).label("stale"),
    ).where(Account.id.in_(account_ids))
    return {
        row.id: badges(bool(row.active), row.uncovered or 0, bool(row.stale))
        for row in session.execute(statement)
    }


def prioritized_accounts(
    session: Session,
    user: User,
    *,
    q: str | None = None,
    owner_id: int | None = None,
    needs_strategy: bool = False,
    sort: str = "priority",
    page: int = 1,
    per_page: int = 50,
    now: datetime | None = None,
) -> Page[PriorityRow]:
    """Return one page of the accounts `user` may see, most uncovered activity first, then pipeline.

    `sort` "name" (A to Z) and "pipeline" (largest first) order the same rows differently.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    now = now or utcnow()
    since = now - timedelta(days=RECENT_DAYS)

    def narrowed(statement: Any) -> Any:
        statement = scope_accounts(statement.where(Account.deleted.is_(false())), session, user)
        if q and q.strip():
            statement = statement.where(
                Account.name.icontains(q.strip().replace("\x00", ""), autoescape=True)
            )
        if owner_id is not None:
            statement = statement.where(Account.owner_id == owner_id)
        if needs_strategy:
            statement = statement.where(~has_active_strategy())
        return statement

    total = session.scalar(narrowed(select(func.count(Account.id)))) or 0
    page = min(max(page, 1), max(1, math.ceil(total / per_page)))

    uncovered = uncovered_activity_count(since, now).label("uncovered_recent")
    pipeline = open_pipeline().label("open_pipeline")
    recent = (
        select(func.count(Activity.id))
        .where(
            Activity.account_id == Account.id,
            Activity.deleted.is_(false()),
            Activity.occurred_at > since,
            Activity.occurred_at <= now,
        )
        .correlate(Account)
        .scalar_subquery()
        .label("recent_activities")
    )
    last_activity = (
        select(func.max(Activity.occurred_at))
        .where(Activity.account_id == Account.id, Activity.deleted.is_(false()), Activity.occurred_at <= now)
        .correlate(Account)
        .scalar_subquery()
        .label("last_activity_at")
    )
    statement = narrowed(
        select(
            Account.id,
            Account.name,
            Account.industry,
            Account.owner_id,
            User.name.label("owner_name"),
            pipeline,
            leading_strategy_status().label("strategy_status"),
            uncovered,
            recent,
            last_activity,
            has_active_strategy().label("active"),
            has_stale_strategy(now).label("stale"),
        ).outerjoin(User, User.id == Account.owner_id)
    )
    order = {"priority": [uncovered.desc(), pipeline.desc()], "name": [], "pipeline": [pipeline.desc()]}[sort]
    statement = (
        statement.order_by(*order, Account.name, Account.id).limit(per_page).offset((page - 1) * per_page)
    )
    rows = [
        PriorityRow(
            id=row.id,
            name=row.name,
            industry=row.industry,
            owner_id=row.owner_id,
            owner_name=row.owner_name,
            open_pipeline=Decimal(row.open_pipeline or 0),
            strategy_status=StrategyStatus(row.strategy_status) if row.strategy_status else None,
            uncovered_recent=row.uncovered_recent or 0,
            recent_activities=row.recent_activities or 0,
            last_activity_at=row.last_activity_at,
            has_active_strategy=bool(row.active),
            has_stale_strategy=bool(row.stale),
        )
        for row in session.execute(statement)
    ]
    return Page(rows=rows, total=total, page=page, per_page=per_page)
