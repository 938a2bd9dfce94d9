"""Read the accounts a user may see: "my accounts" with figures and badges, one account in detail.

The account list puts first the accounts that need attention: most uncovered activity in the last
30 days (activity not linked to an active or achieved strategy of the account: tactics with no
strategy behind them), then the largest open pipeline. Each row carries badges saying why:

- `no_strategy`: the account has no active strategy;
- `unlinked_activity`: it has one, but activity of the last 30 days is not linked to it;
- `stale_strategy`: an active strategy's review date has passed, or no linked activity in 60 days.

Every function issues a fixed number of queries whatever the data size: the figures are correlated
subqueries evaluated by the database, never rows loaded into Python and summed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import aliased, joinedload

from extensions import DbSession
from planning.access import scope_accounts, visible_owner_ids
from planning.markdown import inline_text
from planning.models import (
    COVERING_STATUSES,
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

# The account list's "recent activity" window, the stale-strategy window, and the dialogue ratio's.
RECENT_DAYS = 30
STALE_DAYS = 60
DIALOGUE_DAYS = 90
# "priority": most uncovered activity first, then pipeline; "activity": most recent activity first.
SORTS = ("priority", "name", "pipeline", "activity")
DEFAULT_SORT = "priority"

BADGE_LABELS = {
    "no_strategy": "No strategy",
    "unlinked_activity": "Unlinked activity",
    "stale_strategy": "Stale strategy",
}
_KINDS = {kind.value for kind in ActivityKind}

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
        return _page_count(self.total, self.per_page)

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
class AccountRow:
    """One line of the account list, with its figures and badges."""

    id: int
    name: str
    industry: str | None
    owner_id: int | None
    owner_name: str | None
    open_pipeline: Decimal
    # The account's leading strategy: an active one if any, else a draft, achieved, abandoned one.
    strategy_status: StrategyStatus | None
    uncovered_recent: int
    recent_activities: int
    last_activity_at: datetime | None
    has_active_strategy: bool
    has_stale_strategy: bool

    @property
    def badges(self) -> list[str]:
        return badges(self.has_active_strategy, self.uncovered_recent, self.has_stale_strategy)


AccountPage = Page[AccountRow]


def fetch_page(session: DbSession, statement: Any, *, total: int, page: int, per_page: int) -> Page[Any]:
    """Return page `page` (clamped to the pages `total` rows make) of the rows `statement` selects."""
    page = within_pages(page, total, per_page)
    rows = list(session.scalars(statement.limit(per_page).offset((page - 1) * per_page)))
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def _page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def within_pages(page: int, total: int, per_page: int) -> int:
    """Return `page` clamped to the pages `total` rows make: a page past the end is the last one."""
    return min(max(page, 1), _page_count(total, per_page))


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
    external_id: str
    kind: ActivityKind
    direction: Direction
    occurred_at: datetime
    subject: str | None
    url: str | None
    opportunity_id: int | None
    owner_id: int | None
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


# A heading, quote or list marker: a `#`, `-`, `*`, `+` or `1.` is one only when a space follows it.
_BLOCK_MARKERS = re.compile(r"^(?:(?:#{1,6}|[-*+]|\d{1,9}[.)])\s+|>\s*)+")
# A thematic break (`---`, `* * *`, `___`): a line that holds no words.
_THEMATIC_BREAK = re.compile(r"^(?:-[ \t]*){3,}$|^(?:\*[ \t]*){3,}$|^(?:_[ \t]*){3,}$")


def headline(text: str | None, limit: int = 120) -> str:
    """Return the first non-empty line of a Markdown text as plain text, without its block marker."""
    for line in (text or "").splitlines():
        if _THEMATIC_BREAK.match(line.strip()):
            continue
        line = inline_text(_BLOCK_MARKERS.sub("", line.strip())).strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


# --- SQL pieces: each is correlated to `Account`, so one statement computes them for many accounts --


def _is_open_opportunity() -> ColumnElement[bool]:
    return and_(Opportunity.is_closed.is_(false()), Opportunity.deleted.is_(false()))


def open_pipeline() -> Any:
    """Return a subquery summing the account's open, non-deleted opportunities."""
    return (
        select(func.coalesce(func.sum(Opportunity.amount), 0))
        .where(Opportunity.account_id == Account.id, _is_open_opportunity())
        .correlate(Account)
        .scalar_subquery()
    )


def _open_opportunity_count() -> Any:
    return (
        select(func.count(Opportunity.id))
        .where(Opportunity.account_id == Account.id, _is_open_opportunity())
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


def _last_activity_at(now: datetime) -> Any:
    return (
        select(func.max(Activity.occurred_at))
        .where(Activity.account_id == Account.id, Activity.deleted.is_(false()), Activity.occurred_at <= now)
        .correlate(Account)
        .scalar_subquery()
    )


def join_covering_strategy(
    statement: Select[*tuple[Any, ...]], covering: type[Strategy]
) -> Select[*tuple[Any, ...]]:
    """Outer-join each activity of `statement` to `covering`, the strategy that covers it, if any.

    `covering.id` is NULL for an uncovered activity: one not linked, or linked to a strategy that is
    not active or achieved, or (after a CRM move) to a strategy of another account.
    """
    return statement.outerjoin(Link, Link.activity_id == Activity.id).outerjoin(
        covering,
        and_(
            covering.id == Link.strategy_id,
            covering.account_id == Activity.account_id,
            covering.status.in_(COVERING_STATUSES),
        ),
    )


def uncovered_activity_count(since: datetime, until: datetime) -> Any:
    """Return a subquery counting an account's activities in (since, until] no covering strategy serves."""
    covering = aliased(Strategy)
    return (
        join_covering_strategy(select(func.count(Activity.id)), covering)
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


def _badge_columns(now: datetime) -> tuple[Any, Any, Any]:
    """Return the labelled columns badges are made of: active strategy, uncovered count, stale strategy."""
    return (
        has_active_strategy().label("active"),
        uncovered_activity_count(now - timedelta(days=RECENT_DAYS), now).label("uncovered_recent"),
        has_stale_strategy(now).label("stale"),
    )


# --- the account list ---------------------------------------------------------------------------------


def _filtered(
    statement: Select[Any],
    session: DbSession,
    user: User,
    *,
    q: str | None,
    owner_id: int | None,
    needs_strategy: bool,
) -> Select[Any]:
    statement = scope_accounts(statement.where(Account.deleted.is_(false())), session, user)
    # PostgreSQL refuses NUL in text parameters; a stray %00 must not become an error.
    q = (q or "").replace("\x00", "").strip()
    if q:
        statement = statement.where(Account.name.icontains(q, autoescape=True))
    if owner_id is not None:
        statement = statement.where(Account.owner_id == owner_id)
    if needs_strategy:
        statement = statement.where(~has_active_strategy())
    return statement


def list_accounts(
    session: DbSession,
    user: User,
    *,
    q: str | None = None,
    owner_id: int | None = None,
    needs_strategy: bool = False,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    per_page: int = 50,
    now: datetime | None = None,
) -> AccountPage:
    """Return one page of the accounts `user` may see, with their figures and badges, filtered and sorted.

    `sort` is "priority" (most uncovered activity in the last 30 days first, then largest open
    pipeline), "name" (A to Z), "pipeline" (largest open pipeline first) or "activity" (most
    activities in the last 30 days first). A page past the end is clamped to the last page.
    Two queries (a count and the page) besides the user's scope, whatever the data size.
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
    page = within_pages(page, total, per_page)

    pipeline = open_pipeline().label("open_pipeline")
    recent = _activity_count(now - timedelta(days=RECENT_DAYS), now).label("recent_activities")
    last_activity = _last_activity_at(now).label("last_activity_at")
    active, uncovered, stale = _badge_columns(now)
    statement = select(
        Account.id,
        Account.name,
        Account.industry,
        Account.owner_id,
        User.name.label("owner_name"),
        pipeline,
        _leading_strategy_status().label("strategy_status"),
        uncovered,
        recent,
        last_activity,
        active,
        stale,
    ).outerjoin(User, User.id == Account.owner_id)
    statement = narrowed(statement)
    order: list[Any] = {
        "priority": [uncovered.desc(), pipeline.desc()],
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
            uncovered_recent=row.uncovered_recent or 0,
            recent_activities=row.recent_activities or 0,
            last_activity_at=row.last_activity_at,
            has_active_strategy=bool(row.active),
            has_stale_strategy=bool(row.stale),
        )
        for row in session.execute(statement)
    ]
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def badges_for_accounts(
    session: DbSession, account_ids: list[int], *, now: datetime | None = None
) -> dict[int, list[str]]:
    """Return the badges of each given account, in one query."""
    if not account_ids:
        return {}
    now = now or datetime.now(UTC)
    statement = select(Account.id, *_badge_columns(now)).where(Account.id.in_(account_ids))
    return {
        row.id: badges(bool(row.active), row.uncovered_recent or 0, bool(row.stale))
        for row in session.execute(statement)
    }


def owner_choices(session: DbSession, user: User) -> list[OwnerChoice]:
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


def get_account(session: DbSession, account_id: int) -> Account | None:
    """Return the account with its owner, or None when there is no such account."""
    if not is_valid_id(account_id):
        return None
    return session.scalar(select(Account).options(joinedload(Account.owner)).where(Account.id == account_id))


def get_account_detail(session: DbSession, account: Account, *, now: datetime | None = None) -> AccountDetail:
    """Return the account's figures, open opportunities and strategies for its page."""
    now = now or datetime.now(UTC)
    return AccountDetail(
        account=account,
        owner_name=account.owner.name if account.owner else None,
        figures=account_figures(session, account.id, now=now),
        opportunities=open_opportunities(session, account.id),
        strategies=account_strategies(session, account.id),
    )


def account_figures(session: DbSession, account_id: int, *, now: datetime | None = None) -> AccountFigures:
    """Return the account's open pipeline, recent activity and dialogue ratio in one query."""
    now = now or datetime.now(UTC)
    dialogue_since = now - timedelta(days=DIALOGUE_DAYS)
    row = session.execute(
        select(
            open_pipeline().label("open_pipeline"),
            _open_opportunity_count().label("open_opportunities"),
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


def open_opportunities(session: DbSession, account_id: int) -> list[OpportunityRow]:
    """Return the account's open opportunities, soonest close date first."""
    statement = (
        select(Opportunity)
        .where(Opportunity.account_id == account_id, _is_open_opportunity())
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


def account_opportunities(session: DbSession, account_id: int) -> list[Opportunity]:
    """Return every non-deleted opportunity of the account, open ones first, then by close date."""
    return list(
        session.scalars(
            select(Opportunity)
            .where(Opportunity.account_id == account_id, Opportunity.deleted.is_(false()))
            .order_by(Opportunity.is_closed, Opportunity.close_date, Opportunity.id)
        )
    )


def account_strategies(session: DbSession, account_id: int) -> list[StrategySummary]:
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
    session: DbSession,
    account_id: int,
    *,
    kinds: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    linked: bool | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[TimelineEntry]:
    """Return one page of the account's activity timeline, newest first, deleted activities left out.

    `kinds` keeps those kinds (unknown ones match nothing); `start` (inclusive) and `end` (exclusive)
    bound the time; `linked` True keeps linked activities, False unlinked ones. Two queries whatever
    the data size. A page past the end is clamped to the last page.
    """
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    conditions: list[ColumnElement[bool]] = [Activity.account_id == account_id, Activity.deleted.is_(false())]
    requested = list(kinds or [])
    if requested:
        conditions.append(Activity.kind.in_([kind for kind in requested if kind in _KINDS]))
    if start is not None:
        conditions.append(Activity.occurred_at >= start)
    if end is not None:
        conditions.append(Activity.occurred_at < end)
    if linked is True:
        conditions.append(Link.id.is_not(None))
    elif linked is False:
        conditions.append(Link.id.is_(None))
    total = (
        session.scalar(
            select(func.count(Activity.id))
            .outerjoin(Link, Link.activity_id == Activity.id)
            .where(*conditions)
        )
        or 0
    )
    page = within_pages(page, total, per_page)
    statement = (
        select(
            Activity.id,
            Activity.external_id,
            Activity.kind,
            Activity.direction,
            Activity.occurred_at,
            Activity.subject,
            Activity.url,
            Activity.opportunity_id,
            Activity.owner_id,
            User.name.label("owner_name"),
            Link.strategy_id,
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
            external_id=row.external_id,
            kind=row.kind,
            direction=row.direction,
            occurred_at=row.occurred_at,
            subject=row.subject,
            url=row.url,
            opportunity_id=row.opportunity_id,
            owner_id=row.owner_id,
            owner_name=row.owner_name,
            strategy_id=row.strategy_id,
            strategy_headline=(
                (headline(row.strategy_objective) or f"Strategy {row.strategy_id}")
                if row.strategy_id is not None
                else None
            ),
        )
        for row in session.execute(statement)
    ]
    return Page(rows=rows, total=total, page=page, per_page=per_page)
