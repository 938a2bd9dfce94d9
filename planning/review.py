"""The tactics review: which accounts pile up activity with no strategy behind it, and which strategies
have gone stale.

The rule (DESIGN.md, "The tactics review"), as of a date D with a window of W days and a threshold N:

- an activity **counts** if it occurred in the window (D − W, D] and is not deleted. The window is made
  of whole days in the review's time zone: it starts at 00:00 on day D − W + 1 and ends before 00:00 on
  day D + 1, local time. With D = 2026-10-31, W = 30 in UTC, 2026-10-02T00:00Z through
  2026-10-31T23:59:59Z count.
- it is **covered** if it is linked to a strategy of the same account whose status is active or achieved.
- an account gets a `tactics_without_strategy` finding when it has at least N uncovered counted
  activities, or any uncovered counted contract. Reason `no_strategy` when the account has no *active*
  strategy at all (an achieved or draft one does not count as having one), otherwise `unlinked`.
- an active strategy gets a `stale_strategy` finding with reason `review_overdue` when its review date is
  before D, otherwise `no_recent_activity` when no non-deleted activity of its account linked to it
  occurred in the `stale_days` days up to D (the same whole-day window, 60 days by default).
- each finding is `new`, `persisting` or `resolved` against the previous review — the latest review
  with an earlier as-of date. A finding is the same one when it has the same rule, account and strategy
  (a change of reason keeps it persisting). An open (new or persisting) finding of the previous review
  that no longer fires is stored on this review with status `resolved`, keeping the figures it had.
- running the review again for the same D replaces that review in place (same id, fresh parameters and
  findings); as the previous review is the one before D, the findings and statuses come out the same.

Choices where DESIGN.md is silent, made here on purpose:
- accounts marked deleted (removed in the CRM) are never flagged, by either rule;
- the owner of a finding is the account's owner (not the activities' owners);
- a link from an activity of another account never covers it, and never counts as recent activity for
  a stale strategy;
- `open_pipeline` is the sum of the amounts of the account's open, non-deleted opportunities (no amount
  counts as zero);
- `uncovered` holds only the kinds that occurred, in the order call, email, meeting, task, note,
  contract; stale-strategy findings carry no uncovered figures;
- running a review for a date before an existing review does not recompute the later review's statuses.

Everything happens in a fixed number of SQL statements whatever the data size, and no finding travels
through Python: one INSERT ... SELECT writes them all. Its rules that fire (the tactics rule over one
grouped query of the activities in the window, the stale rule probing each active strategy) are joined
once to the previous review's open findings, which gives each its status and leaves the resolved ones.
The findings are written in no particular order: sorting them all into display order cost the review
a sixth of its time on PostgreSQL, so readers sort what they show (`Finding.display_order`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    JSON,
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import aliased

from extensions import DbSession, upsert_insert
from planning.models import (
    COVERING_STATUSES,
    Account,
    Activity,
    ActivityKind,
    DigestDelivery,
    Finding,
    Link,
    Opportunity,
    Review,
    Strategy,
    StrategyStatus,
    UTCDateTime,
    utcnow,
)

TACTICS_WITHOUT_STRATEGY = "tactics_without_strategy"
STALE_STRATEGY = "stale_strategy"
RULES = (TACTICS_WITHOUT_STRATEGY, STALE_STRATEGY)

NO_STRATEGY = "no_strategy"
UNLINKED = "unlinked"
REVIEW_OVERDUE = "review_overdue"
NO_RECENT_ACTIVITY = "no_recent_activity"
REASONS = (NO_STRATEGY, UNLINKED, REVIEW_OVERDUE, NO_RECENT_ACTIVITY)

NEW = "new"
PERSISTING = "persisting"
RESOLVED = "resolved"
STATUSES = (NEW, PERSISTING, RESOLVED)

KINDS = tuple(kind.value for kind in ActivityKind)
# Bounds that keep every window a representable date range.
EARLIEST_AS_OF = date(1900, 1, 1)
LATEST_AS_OF = date(9000, 12, 31)
LONGEST_WINDOW_DAYS = 36_600


class ReviewParameterError(ValueError):
    """A review parameter is out of range (a window of no days, an unknown time zone...)."""


@dataclass(frozen=True)
class ReviewParameters:
    """What a review runs with: the as-of date and the thresholds."""

    as_of: date
    window_days: int = 30
    min_activities: int = 5
    stale_days: int = 60
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not EARLIEST_AS_OF <= self.as_of <= LATEST_AS_OF:
            raise ReviewParameterError(
                f"as_of must be between {EARLIEST_AS_OF.isoformat()} and {LATEST_AS_OF.isoformat()}"
            )
        for name in ("window_days", "min_activities", "stale_days"):
            value = getattr(self, name)
            if not 1 <= value <= LONGEST_WINDOW_DAYS:
                raise ReviewParameterError(f"{name} must be between 1 and {LONGEST_WINDOW_DAYS}, got {value}")
        zone_for(self.timezone)

    def window(self) -> tuple[datetime, datetime]:
        """Return the UTC bounds [start, end) of the counting window."""
        return day_window(self.as_of, self.window_days, self.timezone)

    def stale_window(self) -> tuple[datetime, datetime]:
        """Return the UTC bounds [start, end) in which a linked activity keeps a strategy fresh."""
        return day_window(self.as_of, self.stale_days, self.timezone)


def zone_for(name: str) -> ZoneInfo:
    """Return the time zone called `name`, or raise ReviewParameterError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ReviewParameterError(f"unknown time zone {name!r}") from error


def day_window(as_of: date, days: int, timezone: str) -> tuple[datetime, datetime]:
    """Return the UTC bounds [start, end) of the `days` whole local days ending with day `as_of`."""
    zone = zone_for(timezone)
    start = datetime.combine(as_of - timedelta(days=days - 1), time.min, tzinfo=zone)
    end = datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def today_in(timezone: str) -> date:
    """Return today's date in `timezone`."""
    return datetime.now(zone_for(timezone)).date()


def run_review(
    session: DbSession,
    as_of: date,
    *,
    window_days: int = 30,
    min_activities: int = 5,
    stale_days: int = 60,
    timezone: str = "UTC",
) -> Review:
    """Run the tactics review as of `as_of`, store it (replacing one for the same date) and return it.

    The caller owns the transaction: the review is flushed, not committed.
    """
    parameters = ReviewParameters(as_of, window_days, min_activities, stale_days, timezone)
    review = _fresh_review(session, parameters)
    previous_id = session.scalar(
        select(Review.id).where(Review.as_of < as_of).order_by(Review.as_of.desc()).limit(1)
    )
    tune_transaction(session)
    as_json = _json_text_caster(session)
    # The findings never travel through Python: one INSERT ... SELECT writes them all.
    session.execute(_insert_findings(parameters, review.id, previous_id, as_json))
    session.expire(review, ["findings"])
    return review


def tune_transaction(session: DbSession) -> None:
    """Set the database up for the review's statements, for the current transaction only.

    On PostgreSQL: the statements are costed high enough to trigger JIT compilation, which then takes
    longer than running them; and at a million activities the grouped counts outgrow the default 4 MB of
    work memory and spill to disk. SQLite needs nothing.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)"))


def run_review_from_config(
    session: DbSession, config: Mapping[str, Any], as_of: date | None = None
) -> Review:
    """Run the review with the thresholds of the app config; `as_of` defaults to today in REVIEW_TIMEZONE.

    This is how people and the scheduler run it, so it refuses a day after today: such a review would
    judge activity that has not happened, call every strategy overdue, and become the latest review
    that everyone is shown.
    """
    timezone = config.get("REVIEW_TIMEZONE") or "UTC"
    today = today_in(timezone)
    if as_of is not None and as_of > today:
        raise ReviewParameterError(
            f"as_of {as_of.isoformat()} is after today ({today.isoformat()} in {timezone}); "
            "a review can only judge what has happened"
        )
    return run_review(
        session,
        as_of or today,
        window_days=int(config.get("REVIEW_WINDOW_DAYS", 30)),
        min_activities=int(config.get("REVIEW_MIN_ACTIVITIES", 5)),
        stale_days=int(config.get("REVIEW_STALE_DAYS", 60)),
        timezone=timezone,
    )


FINDING_COLUMNS = (
    "review_id",
    "rule",
    "reason",
    "status",
    "account_id",
    "owner_id",
    "strategy_id",
    "uncovered",
    "uncovered_total",
    "oldest_uncovered_at",
    "strategy_review_date",
    "open_pipeline",
)


def _json_text_caster(session: DbSession) -> Callable[[Any], Any]:
    """Return how to store JSON text built in SQL: PostgreSQL needs a cast, SQLite keeps text as is."""
    if session.get_bind().dialect.name == "postgresql":
        return lambda text_value: cast(text_value, JSON)
    return lambda text_value: type_coerce(text_value, JSON)


def _uncovered_json(counts: Any) -> Any:
    """Build `{"call": 7, "contract": 1}` in SQL from per-kind counts, leaving out the kinds at zero.

    Plain string concatenation, so it reads the same on SQLite and PostgreSQL, and matches what
    json.dumps writes.
    """
    pieces = [
        case(
            (counts[kind] > 0, literal(f'"{kind}": ') + cast(counts[kind], String) + literal(", ")),
            else_=literal(""),
        )
        for kind in KINDS
    ]
    members: Any = pieces[0]
    for piece in pieces[1:]:
        members = members + piece
    return literal("{") + func.rtrim(members, literal(", ")) + literal("}")


def _open_pipeline(account_id: Any) -> Any:
    """Build a scalar subquery summing the open, non-deleted opportunities of one account."""
    return (
        select(func.coalesce(func.sum(Opportunity.amount), 0))
        .where(
            Opportunity.account_id == account_id,
            Opportunity.is_closed.is_(false()),
            Opportunity.deleted.is_(false()),
        )
        .scalar_subquery()
    )


def _tactics_fired(parameters: ReviewParameters, as_json: Callable[[Any], Any]) -> Any:
    """Select the accounts whose uncovered activities in the window reach the threshold or hold a contract."""
    start, end = parameters.window()
    covering = and_(
        Strategy.id == Link.strategy_id,
        Strategy.account_id == Activity.account_id,
        Strategy.status.in_(COVERING_STATUSES),
    )
    # count(*) FILTER (WHERE ...): standard SQL, on SQLite and PostgreSQL a little cheaper than SUM(CASE).
    contracts = func.count().filter(Activity.kind == ActivityKind.CONTRACT)
    uncovered = (
        select(
            Activity.account_id.label("account_id"),
            func.count().label("total"),
            func.min(Activity.occurred_at).label("oldest"),
            *(func.count().filter(Activity.kind == kind).label(kind.value) for kind in ActivityKind),
        )
        .outerjoin(Link, Link.activity_id == Activity.id)
        .outerjoin(Strategy, covering)
        .where(
            Activity.deleted.is_(false()),
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
            Strategy.id.is_(None),
        )
        .group_by(Activity.account_id)
        .having(or_(func.count() >= parameters.min_activities, contracts > 0))
        .subquery("uncovered")
    )
    has_active_strategy = exists().where(
        Strategy.account_id == uncovered.c.account_id, Strategy.status == StrategyStatus.ACTIVE
    )
    return (
        select(
            cast(literal(TACTICS_WITHOUT_STRATEGY), String).label("rule"),  # typed: see _insert_findings
            case((has_active_strategy, literal(UNLINKED)), else_=literal(NO_STRATEGY)).label("reason"),
            uncovered.c.account_id.label("account_id"),
            Account.owner_id.label("owner_id"),
            cast(null(), Integer).label("strategy_id"),
            uncovered.c.account_id.label("key"),
            as_json(_uncovered_json(uncovered.c)).label("uncovered"),
            uncovered.c.total.label("uncovered_total"),
            uncovered.c.oldest.label("oldest_uncovered_at"),
            cast(null(), Date).label("strategy_review_date"),
        )
        .select_from(uncovered)
        .join(Account, Account.id == uncovered.c.account_id)
        .where(Account.deleted.is_(false()))
    )


def _stale_fired(parameters: ReviewParameters, as_json: Callable[[Any], Any]) -> Any:
    """Select the active strategies past their review date or with no linked activity lately."""
    start, end = parameters.stale_window()
    # Probed per strategy: walk the account's activities in the window (index on account, time), look
    # each one's link up by activity (unique index), stop at the first linked to this strategy. Written
    # as a plain EXISTS or join, PostgreSQL may hash every recent link of every strategy instead.
    linked_strategy = select(Link.strategy_id).where(Link.activity_id == Activity.id).scalar_subquery()
    recent_linked_activity = (
        select(literal(1))
        .select_from(Activity)
        .where(
            Activity.account_id == Strategy.account_id,
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
            Activity.deleted.is_(false()),
            linked_strategy == Strategy.id,
        )
        .limit(1)
        .correlate(Strategy)
        .scalar_subquery()
    )
    overdue = and_(Strategy.review_date.is_not(None), Strategy.review_date < parameters.as_of)
    return (
        select(
            cast(literal(STALE_STRATEGY), String).label("rule"),  # typed: see _insert_findings
            case((overdue, literal(REVIEW_OVERDUE)), else_=literal(NO_RECENT_ACTIVITY)).label("reason"),
            Strategy.account_id.label("account_id"),
            Account.owner_id.label("owner_id"),
            Strategy.id.label("strategy_id"),
            Strategy.id.label("key"),
            as_json(literal_column("'{}'")).label("uncovered"),
            literal(0).label("uncovered_total"),
            cast(null(), UTCDateTime).label("oldest_uncovered_at"),
            Strategy.review_date.label("strategy_review_date"),
        )
        .join(Account, Account.id == Strategy.account_id)
        .where(
            Strategy.status == StrategyStatus.ACTIVE,
            Account.deleted.is_(false()),
            or_(overdue, recent_linked_activity.is_(None)),
        )
    )


def _insert_findings(
    parameters: ReviewParameters, review_id: int, previous_id: int | None, as_json: Callable[[Any], Any]
) -> Any:
    """Insert every finding of the review in one statement.

    Each rule yields the finding's columns plus `key`, what makes it the same finding from one review
    to the next: the account for the tactics rule, the strategy for the stale rule. What fires is joined
    once to the previous review's open findings: a match is persisting, no match is new, and a previous
    open finding left without a match is copied as resolved, with the figures it had. The rule names
    written as literals and the previous review's computed key are cast to their types: untyped, they
    were left out of the automatic indexes SQLite builds for these joins, and each finding scanned half
    the previous review (measured at a million activities: 6 s instead of 0.4 s).
    """
    fired = union_all(_tactics_fired(parameters, as_json), _stale_fired(parameters, as_json)).cte("fired")
    review = literal(review_id).label("review_id")
    figures = ("uncovered", "uncovered_total", "oldest_uncovered_at", "strategy_review_date")

    def open_findings(status: Any) -> Any:
        return select(
            review,
            fired.c.rule,
            fired.c.reason,
            status.label("status"),
            fired.c.account_id,
            fired.c.owner_id,
            fired.c.strategy_id,
            *(fired.c[name] for name in figures),
            _open_pipeline(fired.c.account_id).label("open_pipeline"),
        )

    if previous_id is None:
        found: Any = open_findings(literal(NEW))
    else:
        before = aliased(Finding, name="before")
        previous = (
            select(
                before.rule,
                before.reason,
                before.account_id,
                before.owner_id,
                before.strategy_id,
                cast(
                    case(
                        (before.rule == TACTICS_WITHOUT_STRATEGY, before.account_id), else_=before.strategy_id
                    ),
                    Integer,
                ).label("key"),
                *(getattr(before, name) for name in figures),
                before.open_pipeline,
            )
            .where(before.review_id == previous_id, before.status != RESOLVED)
            .cte("previous")
        )
        same = and_(previous.c.rule == fired.c.rule, previous.c.key == fired.c.key)
        persisting = case((previous.c.key.is_(None), literal(NEW)), else_=literal(PERSISTING))
        resolved = select(
            review,
            previous.c.rule,
            previous.c.reason,
            literal(RESOLVED).label("status"),
            previous.c.account_id,
            previous.c.owner_id,
            previous.c.strategy_id,
            *(previous.c[name] for name in figures),
            previous.c.open_pipeline,
        ).where(~exists().where(same))
        found = union_all(open_findings(persisting).select_from(fired.outerjoin(previous, same)), resolved)
    return insert(Finding.__table__).from_select(FINDING_COLUMNS, found)


def _fresh_review(session: DbSession, parameters: ReviewParameters) -> Review:
    """Return the review row for the as-of date, emptied of findings, with these parameters.

    The row is written first, by one upsert on the unique as-of date, and that is where two runs for
    the same day queue up (the scheduler's and someone's "Run the review", or a double click): the second
    waits for the first's transaction to end (a row or unique-index lock on PostgreSQL, the write lock
    on SQLite), then replaces what it wrote. Looking the row up before writing it let both go ahead,
    and on PostgreSQL each then added its own copy of every finding.
    """
    values = {
        "as_of": parameters.as_of,
        "window_days": parameters.window_days,
        "min_activities": parameters.min_activities,
        "stale_days": parameters.stale_days,
        "timezone": parameters.timezone,
        "created_at": utcnow(),
    }
    upsert = upsert_insert(session.get_bind().dialect.name, Review.__table__).values(values)
    upsert = upsert.on_conflict_do_update(
        index_elements=[Review.__table__.c.as_of],
        set_={name: upsert.excluded[name] for name in values if name != "as_of"},
    )
    review_id = session.execute(upsert.returning(Review.__table__.c.id)).scalar_one()
    session.execute(delete(Finding).where(Finding.review_id == review_id))
    review = session.get(Review, review_id, populate_existing=True)
    assert review is not None  # written by this transaction just above
    return review


def delete_review(session: DbSession, review: Review) -> None:
    """Delete `review` with its findings and its digest's delivery records. The caller owns the
    transaction.

    Reviews after it keep the statuses they were given against it; running them again recomputes
    those against the review before them.
    """
    # Explicitly, not by the keys' ON DELETE CASCADE: SQLite applies that only with foreign keys on.
    session.execute(delete(Finding).where(Finding.review_id == review.id))
    session.execute(delete(DigestDelivery).where(DigestDelivery.review_id == review.id))
    session.execute(delete(Review).where(Review.id == review.id))


def review_parameters(review: Review) -> dict[str, Any]:
    """Return the parameters a review ran with."""
    return {
        "window_days": review.window_days,
        "min_activities": review.min_activities,
        "stale_days": review.stale_days,
        "timezone": review.timezone,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """Return one finding in the JSON shape of the API."""
    account = finding.account
    owner = finding.owner
    return {
        "rule": finding.rule,
        "reason": finding.reason,
        "status": finding.status,
        "account": {"id": account.id, "external_id": account.external_id, "name": account.name},
        "owner": None if owner is None else {"id": owner.id, "email": owner.email, "name": owner.name},
        "strategy_id": finding.strategy_id,
        "uncovered": {kind: int(count) for kind, count in (finding.uncovered or {}).items()},
        "oldest_uncovered_at": (
            finding.oldest_uncovered_at.isoformat() if finding.oldest_uncovered_at is not None else None
        ),
        "strategy_review_date": (
            finding.strategy_review_date.isoformat() if finding.strategy_review_date is not None else None
        ),
        "open_pipeline": float(finding.open_pipeline),
    }


def review_to_dict(review: Review, findings: list[Finding] | None = None) -> dict[str, Any]:
    """Return a review in the JSON shape of the API; `findings` narrows it to what a caller may see."""
    shown = review.findings if findings is None else findings
    return {
        "id": review.id,
        "as_of": review.as_of.isoformat(),
        "created_at": review.created_at.isoformat(),
        "parameters": review_parameters(review),
        "findings": [finding_to_dict(finding) for finding in shown],
    }
