"""The database: synced CRM tables, local planning tables, and bookkeeping.

Synced tables (accounts, activities, opportunities, and the users' CRM identities) are written only by
the sync engine and carry `(source, external_id)`. Local tables (strategies, revisions, links, reviews,
findings) are written only by StratLink itself; a sync never touches them. A record deleted in the CRM
keeps its row with `deleted = true`, so links and history survive.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    case,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and always hand back aware UTC datetimes.

    SQLite has no time zones; without this, values read back are naive on SQLite and aware on
    PostgreSQL, and comparisons between them fail.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # One C call per value instead of this class's conversion followed by SQLite's formatting: a big
        # sync binds millions of these. The text is exactly what SQLAlchemy's SQLite DATETIME stores.
        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"

        return to_text

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(enum.StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


class ActivityKind(enum.StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    TASK = "task"
    NOTE = "note"
    CONTRACT = "contract"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    UNKNOWN = "unknown"


class StrategyStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ACHIEVED = "achieved"
    ABANDONED = "abandoned"


# Statuses under which a strategy covers the activities linked to it.
COVERING_STATUSES = (StrategyStatus.ACTIVE, StrategyStatus.ACHIEVED)


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK (see `_one_of`), so adding a value is a simple migration on
    # both databases.
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def _one_of(column: str, kind: type[enum.Enum], name: str) -> CheckConstraint:
    """CHECK that `column` holds one of the enum's values, written `c = 'a' OR c = 'b' OR ...`.

    Not `c IN ('a', 'b', ...)`, as SQLAlchemy's Enum writes it: SQLite builds a temporary b-tree for an
    IN list of more than two constants each time a statement runs, so a bulk insert pays for two of
    them on every row (half the cost of writing an activity). The comparisons cost next to nothing.
    """
    allowed = " OR ".join(f"{column} = '{member.value}'" for member in kind)
    return CheckConstraint(allowed, name=name)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    __table_args__ = (_one_of("role", Role, "user_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.REP)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    manager: Mapped[User | None] = relationship(remote_side=[id], back_populates="reports")
    reports: Mapped[list[User]] = relationship(back_populates="manager")
    identities: Mapped[list[UserIdentity]] = relationship(back_populates="user", cascade="all, delete-orphan")

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


class UserIdentity(db.Model):  # type: ignore[name-defined,misc]
    """A user's id in one CRM (a Salesforce User Id, a HubSpot owner id, an import's user id)."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_user_identities_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    manager_external_id: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(32))
    crm_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="identities")


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class SyncedMixin:
    """Columns every table written by the sync engine carries."""

    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(500))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A digest of the normalized record, so an unchanged record costs no write.
    content_hash: Mapped[str | None] = mapped_column(String(32))
    crm_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Account(SyncedMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_accounts_source"),
        Index("ix_accounts_owner_name", "owner_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    industry: Mapped[str | None] = mapped_column(String(100))
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))

    owner: Mapped[User | None] = relationship()


class Opportunity(SyncedMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "opportunities"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_opportunities_source"),
        Index("ix_opportunities_account_open", "account_id", "is_closed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    stage: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    close_date: Mapped[date | None] = mapped_column(Date)
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)

    account: Mapped[Account] = relationship()
    owner: Mapped[User | None] = relationship()


class Activity(SyncedMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "activities"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_activities_source"),
        # The review and the timelines read activities by account and time; the review's window scan by
        # time alone. Every index costs each synced row a b-tree insert, so none is kept for a read
        # that no query makes (0004 dropped one on owner and time). `deleted` rides along so that the
        # stale-strategy probe answers from the index without reading the rows (0005).
        Index("ix_activities_account_time", "account_id", "occurred_at", "deleted"),
        Index("ix_activities_time", "occurred_at"),
        _one_of("kind", ActivityKind, "activity_kind"),
        _one_of("direction", Direction, "activity_direction"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"), index=True)
    kind: Mapped[ActivityKind] = mapped_column(_enum(ActivityKind, "activity_kind"))
    direction: Mapped[Direction] = mapped_column(
        _enum(Direction, "activity_direction"), default=Direction.UNKNOWN
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(String(500))

    account: Mapped[Account] = relationship()
    owner: Mapped[User | None] = relationship()
    link: Mapped[Link | None] = relationship(back_populates="activity", uselist=False)


class Strategy(db.Model):  # type: ignore[name-defined,misc]
    """A rep's strategy for one account; `version` counts its saves."""

    __tablename__ = "strategies"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_strategies_source"),
        Index("ix_strategies_account_status", "account_id", "status"),
        _one_of("status", StrategyStatus, "strategy_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"))
    objective: Mapped[str] = mapped_column(Text, default="")
    customer_view: Mapped[str] = mapped_column(Text, default="")
    approach: Mapped[str] = mapped_column(Text, default="")
    success_measure: Mapped[str] = mapped_column(Text, default="")
    target_date: Mapped[date | None] = mapped_column(Date)
    review_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[StrategyStatus] = mapped_column(
        _enum(StrategyStatus, "strategy_status"), default=StrategyStatus.DRAFT
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set only for strategies that came from an import file, so a re-import updates in place.
    source: Mapped[str | None] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(64))
    # The record as the import last brought it (its fields, account and author ids, activity_ids), so
    # that a re-import applies only what changed in the import since and leaves people's edits alone
    # (migration 0009). None for strategies written in StratLink, and for those imported before 0009
    # until their next re-import.
    last_import: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    account: Mapped[Account] = relationship()
    author: Mapped[User | None] = relationship()
    opportunity: Mapped[Opportunity | None] = relationship()
    revisions: Mapped[list[StrategyRevision]] = relationship(
        back_populates="strategy", order_by="StrategyRevision.version"
    )
    links: Mapped[list[Link]] = relationship(back_populates="strategy")


# The fields a revision snapshots and compares.
STRATEGY_FIELDS = (
    "objective",
    "customer_view",
    "approach",
    "success_measure",
    "target_date",
    "review_date",
    "status",
    "opportunity_id",
)


class StrategyRevision(db.Model):  # type: ignore[name-defined,misc]
    """The strategy as one save left it: who, when, what changed, and the full text."""

    __tablename__ = "strategy_revisions"
    __table_args__ = (UniqueConstraint("strategy_id", "version", name="uq_strategy_revisions_v"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    strategy: Mapped[Strategy] = relationship(back_populates="revisions")
    author: Mapped[User | None] = relationship()


class Link(db.Model):  # type: ignore[name-defined,misc]
    """An activity attached to the strategy it serves; an activity serves at most one."""

    __tablename__ = "links"
    __table_args__ = (Index("ix_links_strategy", "strategy_id", "activity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), unique=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    activity: Mapped[Activity] = relationship(back_populates="link")
    strategy: Mapped[Strategy] = relationship(back_populates="links")


class SyncRun(db.Model):  # type: ignore[name-defined,misc]
    """One pull from one source: when, cursors before and after, counts and errors."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # At most a few hundred entries: {"stream", "external_id", "field", "message"}.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cursor_before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cursor_after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    api_usage: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)


class SyncCursor(db.Model):  # type: ignore[name-defined,misc]
    """Where the next incremental pull of one stream of one source starts."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Review(db.Model):  # type: ignore[name-defined,misc]
    """One run of the tactics review as of a date, with its parameters."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, unique=True)
    window_days: Mapped[int] = mapped_column(Integer)
    min_activities: Mapped[int] = mapped_column(Integer)
    stale_days: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When its digest went out to everyone: a review's digest is sent once, even if it is run again for
    # its day (who got it so far is in digest_deliveries).
    digest_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    findings: Mapped[list[Finding]] = relationship(
        back_populates="review", cascade="all, delete-orphan", order_by=lambda: Finding.display_order()
    )


class DigestDelivery(db.Model):  # type: ignore[name-defined,misc]
    """One recipient's digest of one review, recorded (claimed) just before it is handed to the SMTP server.

    Unique per review and recipient, so two senders never both email someone, and a send cut off by the
    SMTP server can be run again for the recipients it did not reach. `accepted_at` is set once the
    server has taken the email: a claim without it belongs to a sender that stopped in between (killed,
    crashed), and whether that email went out is unknown.
    """

    __tablename__ = "digest_deliveries"
    __table_args__ = (UniqueConstraint("review_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Finding(db.Model):  # type: ignore[name-defined,misc]
    """One account (or strategy) flagged by a review, with the rule that fired and its figures."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_review_owner", "review_id", "owner_id"),
        # The write-back looks findings up by account within one review (migration 0008).
        Index("ix_findings_review_account", "review_id", "account_id"),
        CheckConstraint("rule IN ('tactics_without_strategy', 'stale_strategy')", name="finding_rule"),
        CheckConstraint("status IN ('new', 'persisting', 'resolved')", name="finding_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="new")
    # No foreign keys on the account, owner and strategy (migration 0007): a finding is a snapshot
    # written by the review from those very rows in its own transaction, and nothing deletes accounts,
    # users or strategies (a record removed in the CRM is marked deleted). On PostgreSQL each key check
    # locked the referenced row and cost the review as much as the rule itself.
    account_id: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    strategy_id: Mapped[int | None] = mapped_column(Integer)
    uncovered: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    uncovered_total: Mapped[int] = mapped_column(Integer, default=0)
    oldest_uncovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_pipeline: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal(0))
    # A stale strategy's review date when the review ran (migration 0012): what "overdue (due ...)" names,
    # whatever the rep has moved it to since.
    strategy_review_date: Mapped[date | None] = mapped_column(Date)

    review: Mapped[Review] = relationship(back_populates="findings")
    account: Mapped[Account] = relationship(primaryjoin="foreign(Finding.account_id) == Account.id")
    owner: Mapped[User | None] = relationship(primaryjoin="foreign(Finding.owner_id) == User.id")

    @classmethod
    def display_order(cls) -> list[Any]:
        """Return the ORDER BY that shows a review's findings: open ones before resolved ones, the tactics
        rule before the stale one, then the most uncovered activities, the most open pipeline, and the
        account. The review writes its findings in no particular order; readers sort what they show.
        """
        return [
            case((cls.status == "resolved", 1), else_=0),
            case((cls.rule == "tactics_without_strategy", 0), else_=1),
            cls.uncovered_total.desc(),
            cls.open_pipeline.desc(),
            cls.account_id,
            cls.strategy_id,
            cls.id,
        ]


class StrategyComment(db.Model):  # type: ignore[name-defined,misc]
    """A remark on a strategy by its owner, a manager above them, or an admin."""

    __tablename__ = "strategy_comments"
    __table_args__ = (Index("ix_strategy_comments_strategy_time", "strategy_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    strategy: Mapped[Strategy] = relationship()
    author: Mapped[User | None] = relationship()
