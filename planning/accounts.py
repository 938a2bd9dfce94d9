"""Read the accounts a user may see: the account list with its figures, and one account in detail.

Every function issues a fixed number of queries whatever the data size: the figures are correlated
subqueries evaluated by the database, never rows loaded into Python and summed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, case, exists, false, func, select
from sqlalchemy.orm import Session, joinedload

from planning.access import scope_accounts, visible_owner_ids
from planning.models import (
    Account,
    Activity,
    ActivityKind,
    Direction,
    Link,
    Opportunity,
    Role,
    Strategy,
    StrategyStatus,
    User,
)

# The account list's "recent activity" window, and the dialogue ratio's.
RECENT_DAYS = 30
DIALOGUE_DAYS = 90
SORTS = ("name", "pipeline", "activity")

RowT = TypeVar("RowT")

# Ids are 32-bit integers in the database; a larger number from a URL must read as "no such row",
# not reach PostgreSQL and fail there.
MAX_ID = 2**31 - 1


def is_valid_id(value: int | None) -> bool:
    """Tell whether `value` could be a row id."""
    return value is not None and 0 < value <= MAX_ID


@dataclass(frozen=True, slots=True)
class Page(Generic[RowT]):
    """One page of rows with what a pager needs."""

    rows: list[RowT]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """Return the 1-based position of the first row shown (0 when there is none)."""
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.per_page + len(self.rows)


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One line of the account list."""

    id: int
    name: str
    industry: str | None
    owner_id: int | None
    owner_name: str | None
    open_pipeline: Decimal
    # The account's leading strategy: an active one if any, else a draft, achieved, abandoned one.
    strategy_status: StrategyStatus | None
    recent_activities: int
    last_activity_at: datetime | None

    @property
    def has_active_strategy(self) -> bool:
        return self.strategy_status == StrategyStatus.ACTIVE


AccountPage = Page[AccountRow]


@dataclass(frozen=True, slots=True)
class OwnerChoice:
    """A user the account list can be filtered by."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class DialogueRatio:
    """Inbound against outbound activities over the last `days` days."""

    inbound: int
    outbound: int
    days: int

    @property
    def ratio(self) -> float | None:
        """Return inbound per outbound activity, or None when nothing went out."""
        return self.inbound / self.outbound if self.outbound else None


@dataclass(frozen=True, slots=True)
class AccountFigures:
    open_pipeline: Decimal
    open_opportunities: int
    recent_activities: int
    dialogue: DialogueRatio


@dataclass(frozen=True, slots=True)
class OpportunityRow:
    id: int
    name: str
    stage: str | None
    amount: Decimal | None
    close_date: date | None
    url: str | None


@dataclass(frozen=True, slots=True)
class StrategySummary:
    id: int
    status: StrategyStatus
    headline: str
    version: int
    author_name: str | None
    updated_at: datetime
    review_date: date | None
    linked_activities: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One activity on an account's timeline, with the strategy it serves, if any."""

    id: int
    kind: ActivityKind
    direction: Direction
    occurred_at: datetime
    subject: str | None
    url: str | None
    owner_name: str | None
    strategy_id: int | None
    strategy_headline: str | None


@dataclass(frozen=True, slots=True)
class AccountDetail:
    account: Account
    owner_name: str | None
    figures: AccountFigures
    opportunities: list[OpportunityRow]
    strategies: list[StrategySummary]


def headline(text: str | None, limit: int = 120) -> str:
    """Return the first non-empty line of a Markdown text, without its list or heading marker."""
    for line in (text or "").splitlines():
        line = line.strip().lstrip("#>*-+ ").strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def _open_pipeline() -> Any:
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


def _activity_count(since: datetime, until: datetime, direction: Direction | None = None) -> Any:
    conditions: list[ColumnElement[bool]] = [
        Activity.account_id == Account.id,
        Activity.deleted.is_(false()),
        Activity.occurred_at > since,
        Activity.occurred_at <= until,
    ]
    if direction is not None:
        conditions.append(Activity.direction == direction)
    return select(func.count(Activity.id)).where(*conditions).correlate(Account).scalar_subquery()


def _has_active_strategy() -> Any:
    return exists().where(Strategy.account_id == Account.id, Strategy.status == StrategyStatus.ACTIVE)


# Which strategy speaks for the account in the list: the active one first, then work in progress.
_STATUS_PRIORITY = case(
    (Strategy.status == StrategyStatus.ACTIVE, 0),
    (Strategy.status == StrategyStatus.DRAFT, 1),
    (Strategy.status == StrategyStatus.ACHIEVED, 2),
    else_=3,
)


def _leading_strategy_status() -> Any:
    return (
        select(Strategy.status)
        .where(Strategy.account_id == Account.id)
        .order_by(_STATUS_PRIORITY, Strategy.updated_at.desc(), Strategy.id.desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )


def _filtered(
    statement: Select[Any],
    session: Session,
    user: User,
    *,
    q: str | None,
    owner_id: int | None,
    needs_strategy: bool,
) -> Select[Any]:
    statement = scope_accounts(statement.where(Account.deleted.is_(false())), session, user)
    if q and q.strip():
        statement = statement.where(Account.name.icontains(q.strip(), autoescape=True))
    if owner_id is not None:
        statement = statement.where(Account.owner_id == owner_id)
    if needs_strategy:
        statement = statement.where(~_has_active_strategy())
    return statement


def list_accounts(
    session: Session,
    user: User,
    *,
    q: str | None = None,
    owner_id: int | None = None,
    needs_strategy: bool = False,
    sort: str = "name",
    page: int = 1,
    per_page: int = 50,
    now: datetime | None = None,
) -> AccountPage:
    """Return one page of the accounts `user` may see, with their figures, filtered and sorted.

    `sort` is "name" (A to Z), "pipeline" (largest open pipeline first) or "activity" (most activities
    in the last 30 days first). A page past the end is clamped to the last page.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    if owner_id is not None and not is_valid_id(owner_id):
        return Page(rows=[], total=0, page=1, per_page=per_page)
    now = now or datetime.now(UTC)

    def narrowed(statement: Select[Any]) -> Select[Any]:
        return _filtered(statement, session, user, q=q, owner_id=owner_id, needs_strategy=needs_strategy)

    total = session.scalar(narrowed(select(func.count(Account.id)))) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(page, 1), pages)

    pipeline = _open_pipeline().label("open_pipeline")
    recent = _activity_count(now - timedelta(days=RECENT_DAYS), now).label("recent_activities")
    last_activity = (
        select(func.max(Activity.occurred_at))
        .where(Activity.account_id == Account.id, Activity.deleted.is_(false()), Activity.occurred_at <= now)
        .correlate(Account)
        .scalar_subquery()
        .label("last_activity_at")
    )
    statement = select(
        Account.id,
        Account.name,
        Account.industry,
        Account.owner_id,
        User.name.label("owner_name"),
        pipeline,
        _leading_strategy_status().label("strategy_status"),
        recent,
        last_activity,
    ).outerjoin(User, User.id == Account.owner_id)
    statement = narrowed(statement)
    order: list[Any] = {
        "name": [],
        "pipeline": [pipeline.desc()],
        "activity": [recent.desc(), last_activity.desc()],
    }[sort]
    # Name then id last, so pages never overlap or skip rows when figures tie.
    statement = statement.order_by(*order, Account.name, Account.id)
    statement = statement.limit(per_page).offset((page - 1) * per_page)

    rows = [
        AccountRow(
            id=row.id,
            name=row.name,
            industry=row.industry,
            owner_id=row.owner_id,
            owner_name=row.owner_name,
            open_pipeline=Decimal(row.open_pipeline or 0),
            strategy_status=StrategyStatus(row.strategy_status) if row.strategy_status else None,
            recent_activities=row.recent_activities or 0,
            last_activity_at=row.last_activity_at,
        )
        for row in session.execute(statement)
    ]
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def owner_choices(session: Session, user: User) -> list[OwnerChoice]:
    """Return the people whose accounts `user` may filter the list by (none for a rep)."""
    if user.role == Role.REP:
        return []
    owners = visible_owner_ids(session, user)
    statement = select(User.id, User.name).order_by(User.name, User.id)
    if owners is None:
        owns_an_account = exists().where(Account.owner_id == User.id, Account.deleted.is_(false()))
        statement = statement.where(owns_an_account)
    else:
        statement = statement.where(User.id.in_(owners))
    return [OwnerChoice(id=row.id, name=row.name) for row in session.execute(statement)]


def get_account(session: Session, account_id: int) -> Account | None:
    """Return the account with its owner, or None when there is no such account."""
    if not is_valid_id(account_id):
        return None
    return session.scalar(select(Account).options(joinedload(Account.owner)).where(Account.id == account_id))


def get_account_detail(session: Session, account: Account, *, now: datetime | None = None) -> AccountDetail:
    """Return the account's figures, open opportunities and strategies for its page."""
    now = now or datetime.now(UTC)
    return AccountDetail(
        account=account,
        owner_name=account.owner.name if account.owner else None,
        figures=account_figures(session, account.id, now=now),
        opportunities=open_opportunities(session, account.id),
        strategies=account_strategies(session, account.id),
    )


def account_figures(session: Session, account_id: int, *, now: datetime | None = None) -> AccountFigures:
    """Return the account's open pipeline, recent activity and dialogue ratio in one query."""
    now = now or datetime.now(UTC)
    dialogue_since = now - timedelta(days=DIALOGUE_DAYS)
    open_count = (
        select(func.count(Opportunity.id))
        .where(
            Opportunity.account_id == Account.id,
            Opportunity.is_closed.is_(false()),
            Opportunity.deleted.is_(false()),
        )
        .correlate(Account)
        .scalar_subquery()
    )
    row = session.execute(
        select(
            _open_pipeline().label("open_pipeline"),
            open_count.label("open_opportunities"),
            _activity_count(now - timedelta(days=RECENT_DAYS), now).label("recent"),
            _activity_count(dialogue_since, now, Direction.INBOUND).label("inbound"),
            _activity_count(dialogue_since, now, Direction.OUTBOUND).label("outbound"),
        ).where(Account.id == account_id)
    ).one()
    return AccountFigures(
        open_pipeline=Decimal(row.open_pipeline or 0),
        open_opportunities=row.open_opportunities or 0,
        recent_activities=row.recent or 0,
        dialogue=DialogueRatio(inbound=row.inbound or 0, outbound=row.outbound or 0, days=DIALOGUE_DAYS),
    )


def open_opportunities(session: Session, account_id: int) -> list[OpportunityRow]:
    """Return the account's open opportunities, soonest close date first."""
    statement = (
        select(Opportunity)
        .where(
            Opportunity.account_id == account_id,
            Opportunity.is_closed.is_(false()),
            Opportunity.deleted.is_(false()),
        )
        .order_by(Opportunity.close_date.is_(None), Opportunity.close_date, Opportunity.id)
    )
    return [
        OpportunityRow(
            id=opportunity.id,
            name=opportunity.name,
            stage=opportunity.stage,
            amount=opportunity.amount,
            close_date=opportunity.close_date,
            url=opportunity.url,
        )
        for opportunity in session.scalars(statement)
    ]


def account_strategies(session: Session, account_id: int) -> list[StrategySummary]:
    """Return the account's strategies, the active one first, with their linked activity counts."""
    linked = (
        select(func.count(Link.id))
        .join(Activity, Activity.id == Link.activity_id)
        .where(Link.strategy_id == Strategy.id, Activity.deleted.is_(false()))
        .correlate(Strategy)
        .scalar_subquery()
    )
    statement = (
        select(Strategy, User.name, linked)
        .outerjoin(User, User.id == Strategy.author_id)
        .where(Strategy.account_id == account_id)
        .order_by(_STATUS_PRIORITY, Strategy.updated_at.desc(), Strategy.id.desc())
    )
    return [
        StrategySummary(
            id=strategy.id,
            status=strategy.status,
            headline=headline(strategy.objective),
            version=strategy.version,
            author_name=author_name,
            updated_at=strategy.updated_at,
            review_date=strategy.review_date,
            linked_activities=linked_count or 0,
        )
        for strategy, author_name, linked_count in session.execute(statement)
    ]


def list_account_activities(
    session: Session,
    account_id: int,
    *,
    page: int = 1,
    per_page: int = 50,
    kinds: Sequence[ActivityKind] | None = None,
) -> Page[TimelineEntry]:
    """Return one page of the account's activity timeline, newest first, deleted activities left out."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    conditions: list[ColumnElement[bool]] = [Activity.account_id == account_id, Activity.deleted.is_(false())]
    if kinds:
        conditions.append(Activity.kind.in_(list(kinds)))
    total = session.scalar(select(func.count(Activity.id)).where(*conditions)) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(page, 1), pages)
    statement = (
        select(
            Activity.id,
            Activity.kind,
            Activity.direction,
            Activity.occurred_at,
            Activity.subject,
            Activity.url,
            User.name.label("owner_name"),
            Strategy.id.label("strategy_id"),
            Strategy.objective.label("strategy_objective"),
        )
        .outerjoin(User, User.id == Activity.owner_id)
        .outerjoin(Link, Link.activity_id == Activity.id)
        .outerjoin(Strategy, Strategy.id == Link.strategy_id)
        .where(*conditions)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = [
        TimelineEntry(
            id=row.id,
            kind=row.kind,
            direction=row.direction,
            occurred_at=row.occurred_at,
            subject=row.subject,
            url=row.url,
            owner_name=row.owner_name,
            strategy_id=row.strategy_id,
            strategy_headline=headline(row.strategy_objective) if row.strategy_id else None,
        )
        for row in session.execute(statement)
    ]
    return Page(rows=rows, total=total, page=page, per_page=per_page)
