"""Dashboard figures for the accounts a user may see: strategy coverage, pipeline, dialogue ratio.

- coverage: the share of accounts with an active strategy, and the share of the last 30 days'
  activities that an active or achieved strategy of their account covers;
- pipeline: open pipeline on accounts with and without an active strategy;
- dialogue ratio: inbound to outbound activities over the last 90 days (a customer-focused team
  listens and responds at least as often as it pushes).

Three grouped queries whatever the data size, broken down by account owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, case, false, func, select
from sqlalchemy.orm import aliased

from extensions import DbSession
from planning.access import scope_accounts
from planning.accounts import (
    DIALOGUE_DAYS,
    RECENT_DAYS,
    has_active_strategy,
    join_covering_strategy,
    open_pipeline,
)
from planning.models import Account, Activity, Direction, Strategy, User, utcnow


@dataclass
class Figures:
    """The figures for one owner, or for everyone in scope."""

    accounts: int = 0
    accounts_with_active_strategy: int = 0
    pipeline_with_active_strategy: Decimal = Decimal(0)
    pipeline_without_active_strategy: Decimal = Decimal(0)
    recent_activities: int = 0
    covered_recent_activities: int = 0
    inbound: int = 0
    outbound: int = 0

    @property
    def strategy_coverage(self) -> float | None:
        return self.accounts_with_active_strategy / self.accounts if self.accounts else None

    @property
    def activity_coverage(self) -> float | None:
        return self.covered_recent_activities / self.recent_activities if self.recent_activities else None

    @property
    def dialogue_ratio(self) -> float | None:
        return self.inbound / self.outbound if self.outbound else None

    def add(self, other: Figures) -> None:
        for name in (
            "accounts",
            "accounts_with_active_strategy",
            "pipeline_with_active_strategy",
            "pipeline_without_active_strategy",
            "recent_activities",
            "covered_recent_activities",
            "inbound",
            "outbound",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class OwnerFigures:
    owner_id: int | None
    owner_name: str | None
    figures: Figures


@dataclass
class Dashboard:
    as_of: datetime
    recent_days: int
    dialogue_days: int
    totals: Figures
    by_owner: list[OwnerFigures] = field(default_factory=list)


def dashboard_figures(session: DbSession, user: User, *, now: datetime | None = None) -> Dashboard:
    """Return the dashboard figures over the accounts `user` may see, in total and by owner."""
    now = now or utcnow()
    by_owner: dict[int | None, Figures] = {}

    per_account = scope_accounts(
        select(
            Account.owner_id.label("owner_id"),
            has_active_strategy().label("active"),
            open_pipeline().label("pipeline"),
        ).where(Account.deleted.is_(false())),
        session,
        user,
    ).subquery()
    active = per_account.c.active
    for row in session.execute(
        select(
            per_account.c.owner_id,
            func.count(),
            func.sum(case((active, 1), else_=0)),
            func.sum(case((active, per_account.c.pipeline), else_=0)),
            func.sum(case((active, 0), else_=per_account.c.pipeline)),
        ).group_by(per_account.c.owner_id)
    ):
        figures = by_owner.setdefault(row[0], Figures())
        figures.accounts = row[1] or 0
        figures.accounts_with_active_strategy = int(row[2] or 0)
        figures.pipeline_with_active_strategy = Decimal(row[3] or 0)
        figures.pipeline_without_active_strategy = Decimal(row[4] or 0)

    scoped_ids = scope_accounts(select(Account.id).where(Account.deleted.is_(false())), session, user)
    recent_since, dialogue_since = now - timedelta(days=RECENT_DAYS), now - timedelta(days=DIALOGUE_DAYS)
    in_recent = and_(Activity.occurred_at > recent_since, Activity.occurred_at <= now)
    covering = aliased(Strategy)
    activities = select(
        Account.owner_id,
        func.sum(case((in_recent, 1), else_=0)),
        func.sum(case((and_(in_recent, covering.id.is_not(None)), 1), else_=0)),
        func.sum(case((Activity.direction == Direction.INBOUND, 1), else_=0)),
        func.sum(case((Activity.direction == Direction.OUTBOUND, 1), else_=0)),
    ).select_from(Activity)
    for row in session.execute(
        join_covering_strategy(activities.join(Account, Account.id == Activity.account_id), covering)
        .where(
            Activity.account_id.in_(scoped_ids),
            Activity.deleted.is_(false()),
            Activity.occurred_at > dialogue_since,
            Activity.occurred_at <= now,
        )
        .group_by(Account.owner_id)
    ):
        figures = by_owner.setdefault(row[0], Figures())
        figures.recent_activities = int(row[1] or 0)
        figures.covered_recent_activities = int(row[2] or 0)
        figures.inbound = int(row[3] or 0)
        figures.outbound = int(row[4] or 0)

    owner_ids = [key for key in by_owner if key is not None]
    names = {
        row.id: row.name for row in session.execute(select(User.id, User.name).where(User.id.in_(owner_ids)))
    }
    totals = Figures()
    owners = []
    for owner_id, figures in by_owner.items():
        totals.add(figures)
        owners.append(OwnerFigures(owner_id, names.get(owner_id) if owner_id else None, figures))
    owners.sort(key=lambda item: ((item.owner_name or "~").lower(), item.owner_id or 0))
    return Dashboard(now, RECENT_DAYS, DIALOGUE_DAYS, totals, owners)
