"""The `Source` protocol and the normalized records every source yields.

A source turns CRM payloads (SOQL rows, HubSpot objects, import files, the demo generator) into these
plain dataclasses and knows nothing about the database. The sync engine (`integrations.sync`) takes
them from there and knows nothing about any CRM.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

KINDS = ("call", "email", "meeting", "task", "note", "contract")
DIRECTIONS = ("inbound", "outbound", "unknown")
ROLES = ("rep", "manager", "admin")
STRATEGY_STATUSES = ("draft", "active", "achieved", "abandoned")

# Streams in the order a sync pulls them: parents before the records that refer to them.
STREAMS = ("users", "accounts", "opportunities", "activities", "strategies")


class SourceError(Exception):
    """A source could not be read at all (as opposed to one bad record)."""


class SourceAuthError(SourceError):
    """The CRM refused our credentials."""


class SourceRateLimited(SourceError):
    """The CRM's API budget ran out and retries did not help."""


class SourceUnavailable(SourceError):
    """The CRM kept failing (5xx, network) after our retries."""


class RecordInvalid(ValueError):
    """One record cannot be used; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class UserRecord:
    external_id: str
    email: str
    name: str
    role: str | None = None  # None: keep the local role (or "rep" for a new user)
    manager_external_id: str | None = None
    active: bool = True
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountRecord:
    external_id: str
    name: str
    owner_external_id: str | None = None
    industry: str | None = None
    annual_revenue: Decimal | None = None
    url: str | None = None
    deleted: bool = False
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OpportunityRecord:
    external_id: str
    account_external_id: str
    name: str
    owner_external_id: str | None = None
    stage: str | None = None
    amount: Decimal | None = None
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    url: str | None = None
    deleted: bool = False
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    external_id: str
    account_external_id: str
    kind: str
    occurred_at: datetime
    owner_external_id: str | None = None
    direction: str = "unknown"
    subject: str | None = None
    opportunity_external_id: str | None = None
    url: str | None = None
    deleted: bool = False
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    """A strategy carried by an import file (CRMs do not hold strategies)."""

    external_id: str
    account_external_id: str
    author_external_id: str | None = None
    objective: str = ""
    customer_view: str = ""
    approach: str = ""
    success_measure: str = ""
    target_date: date | None = None
    review_date: date | None = None
    status: str = "draft"
    activity_external_ids: tuple[str, ...] = ()


Record = UserRecord | AccountRecord | OpportunityRecord | ActivityRecord | StrategyRecord


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record a source or the engine could not use: reported on the sync run, then skipped."""

    stream: str
    external_id: str | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "stream": self.stream,
            "external_id": self.external_id,
            "field": self.field,
            "message": self.message,
        }


@dataclass(slots=True)
class Batch:
    """Records of one stream, plus the cursor to store once they are committed.

    `cursor` is None when the source keeps no cursor for the stream (imports, the demo).
    """

    stream: str
    records: Sequence[Record]
    errors: Sequence[RecordError] = ()
    cursor: str | None = None


@dataclass(slots=True)
class SourceReport:
    """What a source learned while reading that belongs on the sync run (e.g. API usage)."""

    api_usage: str | None = None
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    """A place records come from: salesforce, hubspot, file, demo."""

    name: str
    report: SourceReport

    def streams(self) -> Sequence[str]:
        """The streams this source yields, in the order they must be synced."""
        ...

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        """Yield batches of `stream` changed since `cursor` (everything when `full`)."""
        ...


def validate(record: Record) -> None:
    """Raise `RecordInvalid` when a normalized record breaks the contract in DESIGN.md."""
    if not record.external_id or not str(record.external_id).strip():
        raise RecordInvalid("id", "is required")
    if isinstance(record, UserRecord):
        if "@" not in record.email:
            raise RecordInvalid("email", f"{record.email!r} is not an email address")
        if not record.name.strip():
            raise RecordInvalid("name", "is required")
        if record.role is not None and record.role not in ROLES:
            raise RecordInvalid("role", f"must be one of {', '.join(ROLES)}, got {record.role!r}")
    elif isinstance(record, AccountRecord):
        if not record.name.strip():
            raise RecordInvalid("name", "is required")
    elif isinstance(record, OpportunityRecord):
        if not record.name.strip():
            raise RecordInvalid("name", "is required")
        if record.amount is not None and not record.amount.is_finite():
            raise RecordInvalid("amount", "must be a finite number")
    elif isinstance(record, ActivityRecord):
        if record.kind not in KINDS:
            raise RecordInvalid("kind", f"must be one of {', '.join(KINDS)}, got {record.kind!r}")
        if record.direction not in DIRECTIONS:
            raise RecordInvalid(
                "direction", f"must be one of {', '.join(DIRECTIONS)}, got {record.direction!r}"
            )
        if record.occurred_at.tzinfo is None:
            raise RecordInvalid("occurred_at", "must carry a time zone")
    elif isinstance(record, StrategyRecord) and record.status not in STRATEGY_STATUSES:
        raise RecordInvalid("status", f"must be one of {', '.join(STRATEGY_STATUSES)}, got {record.status!r}")
