"""Small functions that build rows for tests; each takes only what the test cares about."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

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

_ids = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def make_user(
    db: Session, *, role: Role | str = Role.REP, manager: User | None = None, **fields: Any
) -> User:
    key = _next("u")
    user = User(
        email=fields.pop("email", f"{key}@example.com"),
        name=fields.pop("name", f"User {key}"),
        role=Role(role),
        manager=manager,
        **fields,
    )
    db.add(user)
    db.flush()
    return user


def make_account(db: Session, *, owner: User | None = None, **fields: Any) -> Account:
    key = _next("A")
    account = Account(
        source=fields.pop("source", "file"),
        external_id=fields.pop("external_id", key),
        name=fields.pop("name", f"Account {key}"),
        owner=owner,
        **fields,
    )
    db.add(account)
    db.flush()
    return account


def make_activity(
    db: Session,
    *,
    account: Account,
    occurred_at: datetime,
    kind: ActivityKind | str = ActivityKind.CALL,
    direction: Direction | str = Direction.OUTBOUND,
    **fields: Any,
) -> Activity:
    key = _next("T")
    activity = Activity(
        source=fields.pop("source", account.source),
        external_id=fields.pop("external_id", key),
        account=account,
        owner=fields.pop("owner", account.owner),
        kind=ActivityKind(kind),
        direction=Direction(direction),
        occurred_at=occurred_at,
        subject=fields.pop("subject", f"Activity {key}"),
        **fields,
    )
    db.add(activity)
    db.flush()
    return activity


def make_opportunity(
    db: Session, *, account: Account, amount: int | Decimal = 10000, **fields: Any
) -> Opportunity:
    key = _next("O")
    opportunity = Opportunity(
        source=fields.pop("source", account.source),
        external_id=fields.pop("external_id", key),
        account=account,
        owner=fields.pop("owner", account.owner),
        name=fields.pop("name", f"Opportunity {key}"),
        amount=Decimal(amount),
        close_date=fields.pop("close_date", date(2027, 1, 31)),
        **fields,
    )
    db.add(opportunity)
    db.flush()
    return opportunity


def make_strategy(
    db: Session,
    *,
    account: Account,
    status: StrategyStatus | str = StrategyStatus.ACTIVE,
    **fields: Any,
) -> Strategy:
    strategy = Strategy(
        account=account,
        author=fields.pop("author", account.owner),
        objective=fields.pop("objective", "Make Acme's plant run a second shift without new hires"),
        approach=fields.pop("approach", "Prove the pilot on line 2, then take it to the COO"),
        status=StrategyStatus(status),
        **fields,
    )
    db.add(strategy)
    db.flush()
    return strategy


def link(db: Session, strategy: Strategy, *activities: Activity) -> None:
    for activity in activities:
        db.add(Link(activity=activity, strategy=strategy))
    db.flush()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
