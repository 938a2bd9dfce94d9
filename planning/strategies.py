"""Write strategies: create, update with optimistic versions, revisions, and compare two versions.

Every save stores a `StrategyRevision` (who, when, which fields changed, a snapshot of every field).
A save carries the version it started from; the check and the bump are one SQL statement
(`UPDATE ... SET version = version + 1 WHERE id = :id AND version = :v`), so of several concurrent
saves from the same version exactly one wins and the others get `StaleVersion` — no lost update.
The caller (view, API, CLI) owns the transaction and commits.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update

from extensions import DbSession
from planning.access import can_edit_account, can_view_account
from planning.accounts import is_valid_id
from planning.models import (
    COVERING_STATUSES,
    STRATEGY_FIELDS,
    Account,
    Opportunity,
    Strategy,
    StrategyRevision,
    StrategyStatus,
    User,
    utcnow,
)
from planning.tactics import TacticsCheck, check_tactics

TEXT_FIELDS = ("objective", "customer_view", "approach", "success_measure")
DATE_FIELDS = ("target_date", "review_date")
MAX_TEXT_LENGTH = 20_000
# Dates outside this range are typos ("0226-10-01"), never plans.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)

FIELD_LABELS = {
    "objective": "Objective",
    "customer_view": "Customer's point of view",
    "approach": "Approach",
    "success_measure": "Success measure",
    "target_date": "Target date",
    "review_date": "Review date",
    "status": "Status",
    "opportunity_id": "Opportunity",
}


class NotFound(LookupError):
    """The record does not exist."""


class NotAllowed(PermissionError):
    """The user may not do this on this account."""


class StrategyInvalid(ValueError):
    """The fields given do not make a valid strategy; `errors` maps each field to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = dict(errors)


class StaleVersion(Exception):
    """The save started from an older version than the stored one; `strategy` is the current one."""

    def __init__(self, strategy: Strategy, given_version: int) -> None:
        super().__init__(
            f"strategy {strategy.id} is at version {strategy.version}, the save started from {given_version}"
        )
        self.strategy = strategy
        self.given_version = given_version
        self.current_version = strategy.version


class ReadsLikeTactics(Exception):
    """Activating this strategy needs confirmation: its objective and approach read like tactics."""

    def __init__(self, check: TacticsCheck) -> None:
        super().__init__(
            "the objective and approach read like a list of tactics: " + ", ".join(check.quoted())
        )
        self.check = check


# --- lookups with access checks -------------------------------------------------------------------


def account_for_viewer(session: DbSession, user: User, account_id: int) -> Account:
    """Return the account `user` may see, or raise NotFound / NotAllowed.

    An account deleted in the CRM still opens: its strategies and history survive.
    """
    account = session.get(Account, account_id) if is_valid_id(account_id) else None
    if account is None:
        raise NotFound(f"no account {account_id}")
    if not can_view_account(session, user, account):
        raise NotAllowed("this account belongs to someone outside your team")
    return account


def strategy_for_viewer(session: DbSession, user: User, strategy_id: int) -> Strategy:
    """Return the strategy `user` may see, or raise NotFound / NotAllowed."""
    strategy = session.get(Strategy, strategy_id) if is_valid_id(strategy_id) else None
    if strategy is None:
        raise NotFound(f"no strategy {strategy_id}")
    if not can_view_account(session, user, strategy.account):
        raise NotAllowed("this strategy is on an account outside your team")
    return strategy


def require_editor(user: User, account: Account) -> None:
    """Raise NotAllowed unless `user` may write strategies and links on `account`."""
    if not can_edit_account(user, account):
        raise NotAllowed("only the account's owner (or an admin) may change its strategies and links")


# --- fields -----------------------------------------------------------------------------------------


def _clean_text(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    if "\x00" in value:
        errors[name] = "must not contain NUL characters"
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        errors[name] = "must be valid Unicode text"
        return None
    # A browser sends a textarea's line breaks as CRLF, and counts each as one character against its
    # maxlength: stored as LF, the text the editor let through fits.
    value = value.replace("\r\n", "\n").strip()
    if len(value) > MAX_TEXT_LENGTH:
        errors[name] = f"must be at most {MAX_TEXT_LENGTH:,} characters"
        return None
    return value


def _clean_date(name: str, value: Any, errors: dict[str, str]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime) or not isinstance(value, date | str):
        errors[name] = "must be a date (YYYY-MM-DD)"
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            errors[name] = f"{value!r} is not a date (YYYY-MM-DD)"
            return None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        errors[name] = f"must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"
        return None
    return value


def _clean_status(value: Any, errors: dict[str, str]) -> StrategyStatus | None:
    try:
        return StrategyStatus(value)
    except ValueError:
        allowed = ", ".join(status.value for status in StrategyStatus)
        errors["status"] = f"must be one of {allowed}"
        return None


def _clean_opportunity(
    session: DbSession, account: Account, value: Any, errors: dict[str, str]
) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errors["opportunity_id"] = "must be an opportunity id"
        return None
    opportunity = session.get(Opportunity, value) if is_valid_id(value) else None
    if opportunity is None or opportunity.deleted or opportunity.account_id != account.id:
        errors["opportunity_id"] = "must be an opportunity of this account"
        return None
    return value


def clean_fields(session: DbSession, account: Account, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return `fields` parsed and checked one by one, or raise StrategyInvalid naming each bad field."""
    cleaned, errors = _parse_fields(session, account, fields)
    if errors:
        raise StrategyInvalid(errors)
    return cleaned


def _parse_fields(
    session: DbSession, account: Account, fields: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the fields that parse, and a message for each one that does not."""
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name in TEXT_FIELDS:
            cleaned[name] = _clean_text(name, value, errors)
        elif name in DATE_FIELDS:
            cleaned[name] = _clean_date(name, value, errors)
        elif name == "status":
            cleaned[name] = _clean_status(value, errors)
        elif name == "opportunity_id":
            cleaned[name] = _clean_opportunity(session, account, value, errors)
        else:
            errors[name] = "is not a strategy field"
    return {name: value for name, value in cleaned.items() if name not in errors}, errors


def _checked(
    session: DbSession, account: Account, fields: Mapping[str, Any], before: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the parsed fields and the values they lead to; raise StrategyInvalid with every problem."""
    cleaned, errors = _parse_fields(session, account, fields)
    after = {**before, **cleaned}
    for name, message in activation_errors(after).items():
        # A field that failed to parse already has its message; fields left out keep their stored value.
        if name not in errors and not (name in fields and name not in cleaned):
            errors[name] = message
    if errors:
        raise StrategyInvalid(errors)
    return cleaned, after


def activation_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Return what an active or achieved strategy with these values lacks, field by field.

    Both statuses cover the activities linked to them in the review, so both need the substance of a
    strategy: an empty "achieved" one would otherwise take an account off the review.
    """
    status = values.get("status")
    if status not in COVERING_STATUSES:
        return {}
    a = "An active" if status == StrategyStatus.ACTIVE else "An achieved"
    errors = {}
    if not values.get("objective"):
        errors["objective"] = f"{a} strategy needs an objective: the outcome you want for the customer."
    if not values.get("approach"):
        errors["approach"] = f"{a} strategy needs an approach: how you will spend your time and energy."
    if status == StrategyStatus.ACTIVE and not values.get("review_date"):
        errors["review_date"] = "An active strategy needs a review date, so that it gets looked at again."
    return errors


def current_values(strategy: Strategy) -> dict[str, Any]:
    """Return the strategy's fields as Python values."""
    return {name: getattr(strategy, name) for name in STRATEGY_FIELDS}


def strategy_snapshot(values: Mapping[str, Any] | Strategy) -> dict[str, Any]:
    """Return the JSON snapshot a revision stores: every strategy field, dates as ISO strings."""
    if isinstance(values, Strategy):
        values = current_values(values)
    snapshot: dict[str, Any] = {}
    for name in STRATEGY_FIELDS:
        value = values.get(name)
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, StrategyStatus):
            value = value.value
        snapshot[name] = value
    return snapshot


def _comparable(name: str, value: Any) -> Any:
    """Return the value as saves compare it: a browser sends a textarea's lines back ending in CRLF
    whatever was stored, which is no change."""
    if name in TEXT_FIELDS:
        return (value or "").replace("\r\n", "\n").strip()
    return value


def _check_tactics(before: Mapping[str, Any] | None, after: Mapping[str, Any], activate_anyway: bool) -> None:
    activating = after.get("status") == StrategyStatus.ACTIVE and (
        before is None or before.get("status") != StrategyStatus.ACTIVE
    )
    if activating and not activate_anyway:
        check = check_tactics(after.get("objective") or "", after.get("approach") or "")
        if check.reads_like_tactics:
            raise ReadsLikeTactics(check)


# --- saves ------------------------------------------------------------------------------------------


def create_strategy(
    session: DbSession,
    user: User,
    account: Account,
    fields: Mapping[str, Any],
    *,
    activate_anyway: bool = False,
) -> Strategy:
    """Create a strategy for `account` as version 1 with its first revision."""
    require_editor(user, account)
    defaults: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    defaults.update(target_date=None, review_date=None, opportunity_id=None, status=StrategyStatus.DRAFT)
    cleaned, values = _checked(session, account, fields, defaults)
    _check_tactics(None, values, activate_anyway)

    now = utcnow()
    strategy = Strategy(account=account, author=user, version=1, created_at=now, updated_at=now, **values)
    session.add(strategy)
    changed = [name for name in STRATEGY_FIELDS if name in cleaned and values[name] not in (None, "")]
    if "status" not in changed:
        changed.append("status")
    session.add(
        StrategyRevision(
            strategy=strategy,
            version=1,
            author=user,
            created_at=now,
            changed_fields=[name for name in STRATEGY_FIELDS if name in changed],
            snapshot=strategy_snapshot(values),
        )
    )
    session.flush()
    return strategy


def update_strategy(
    session: DbSession,
    user: User,
    strategy: Strategy,
    fields: Mapping[str, Any],
    *,
    version: int,
    activate_anyway: bool = False,
) -> Strategy:
    """Apply `fields` to `strategy` if it is still at `version`; store the new revision.

    Raises StaleVersion when another save got there first, StrategyInvalid for bad fields,
    ReadsLikeTactics when activating a tactics list without `activate_anyway`. A save that changes
    nothing returns the strategy as it was, without a new version.
    """
    require_editor(user, strategy.account)
    _checked(session, strategy.account, fields, current_values(strategy))
    if strategy.version != version:
        # The object in this session may be older than the database; only the stored version counts.
        session.refresh(strategy)
        if strategy.version != version:
            raise StaleVersion(strategy, version)

    before = current_values(strategy)
    _, after = _checked(session, strategy.account, fields, before)
    changed = [
        name for name in STRATEGY_FIELDS if _comparable(name, after[name]) != _comparable(name, before[name])
    ]
    if not changed:
        return strategy
    after = {name: after[name] if name in changed else before[name] for name in STRATEGY_FIELDS}
    _check_tactics(before, after, activate_anyway)

    now = utcnow()
    result = session.execute(
        update(Strategy)
        .where(Strategy.id == strategy.id, Strategy.version == version)
        .values(
            {**{name: after[name] for name in changed}, "version": Strategy.version + 1, "updated_at": now}
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(strategy)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleVersion(strategy, version)
    session.add(
        StrategyRevision(
            strategy=strategy,
            version=strategy.version,
            author=user,
            created_at=now,
            changed_fields=changed,
            snapshot=strategy_snapshot(after),
        )
    )
    session.flush()
    return strategy


# --- merging a stale edit ---------------------------------------------------------------------------

# What a three-way merge does with one field, comparing the version an edit started from (base), the
# stored version (theirs) and the edit (mine).
UNCHANGED = "unchanged"  # neither side changed it
THEIRS = "theirs"  # only the stored version changed it: the merge keeps their value
MINE = "mine"  # only the edit changed it: the merge keeps the edit's value
SAME = "same"  # both changed it to the same value
CONFLICT = "conflict"  # both changed it, differently: the person merging chooses


@dataclass(frozen=True)
class FieldMerge:
    """One field of a three-way merge, its three values as revision snapshots hold them."""

    name: str
    base: Any
    theirs: Any
    mine: Any
    outcome: str


def merge_fields(
    base: Mapping[str, Any] | None, theirs: Mapping[str, Any], mine: Mapping[str, Any]
) -> list[FieldMerge]:
    """Merge an edit (`mine`) made from `base` with the stored version (`theirs`), field by field.

    A field only one side changed takes that side's value; a field both changed differently is a
    conflict. Without a base (its revision is missing), every field where the two differ is a conflict.
    """
    merged = []
    for name in STRATEGY_FIELDS:
        old, their, my = (
            None if base is None else _comparable(name, base.get(name)),
            _comparable(name, theirs.get(name)),
            _comparable(name, mine.get(name)),
        )
        if their == my:
            outcome = SAME if base is not None and my != old else UNCHANGED
        elif base is None:
            outcome = CONFLICT
        elif my == old:
            outcome = THEIRS
        elif their == old:
            outcome = MINE
        else:
            outcome = CONFLICT
        before = None if base is None else base.get(name)
        merged.append(FieldMerge(name, before, theirs.get(name), mine.get(name), outcome))
    return merged


@dataclass(frozen=True)
class StaleEditMerge:
    """A stale edit merged with the stored version; `base_found` is False when the edit's starting
    version has no revision, and then every difference is a conflict."""

    fields: list[FieldMerge]
    base_found: bool

    @property
    def conflicts(self) -> list[str]:
        return [item.name for item in self.fields if item.outcome == CONFLICT]


def merge_stale_edit(
    session: DbSession, strategy: Strategy, base_version: int, fields: Mapping[str, Any]
) -> StaleEditMerge:
    """Merge `fields`, an edit started from `base_version`, with the strategy as stored now.

    The base is that version's revision snapshot; fields left out of the edit count as unchanged.
    """
    base = session.scalars(
        select(StrategyRevision.snapshot).where(
            StrategyRevision.strategy_id == strategy.id, StrategyRevision.version == base_version
        )
    ).first()
    cleaned, errors = _parse_fields(session, strategy.account, fields)
    mine = strategy_snapshot({**current_values(strategy), **cleaned})
    for name in STRATEGY_FIELDS:
        if name in errors:  # A value that does not parse is still a change to show.
            mine[name] = fields[name]
        elif name not in fields and base is not None:
            mine[name] = base.get(name)
    return StaleEditMerge(merge_fields(base, strategy_snapshot(strategy), mine), base is not None)


# --- history ----------------------------------------------------------------------------------------


def revisions_of(session: DbSession, strategy: Strategy) -> list[StrategyRevision]:
    """Return the strategy's revisions, newest first."""
    return list(
        session.scalars(
            select(StrategyRevision)
            .where(StrategyRevision.strategy_id == strategy.id)
            .order_by(StrategyRevision.version.desc())
        )
    )


@dataclass(frozen=True)
class DiffChunk:
    """A run of words that is the same in both versions, or only in the old one, or only in the new."""

    op: str  # "equal", "delete" or "insert"
    text: str


@dataclass(frozen=True)
class FieldComparison:
    """One field in two versions: both values, whether it changed, and a word diff for text."""

    name: str
    label: str
    old: Any
    new: Any
    changed: bool
    diff: list[DiffChunk] = field(default_factory=list)

    @property
    def old_chunks(self) -> list[DiffChunk]:
        return [chunk for chunk in self.diff if chunk.op != "insert"]

    @property
    def new_chunks(self) -> list[DiffChunk]:
        return [chunk for chunk in self.diff if chunk.op != "delete"]


@dataclass(frozen=True)
class VersionComparison:
    strategy_id: int
    old_version: int
    new_version: int
    old_revision: StrategyRevision
    new_revision: StrategyRevision
    fields: list[FieldComparison]

    @property
    def changed_fields(self) -> list[str]:
        return [comparison.name for comparison in self.fields if comparison.changed]


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def word_diff(old: str, new: str) -> list[DiffChunk]:
    """Return a word-level diff of two texts as chunks that rebuild both."""
    old_tokens = _TOKEN.findall(old or "")
    new_tokens = _TOKEN.findall(new or "")
    matcher = difflib.SequenceMatcher(a=old_tokens, b=new_tokens, autojunk=False)
    chunks: list[DiffChunk] = []
    for op, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if op == "equal":
            chunks.append(DiffChunk("equal", "".join(old_tokens[a_start:a_end])))
            continue
        if a_end > a_start:
            chunks.append(DiffChunk("delete", "".join(old_tokens[a_start:a_end])))
        if b_end > b_start:
            chunks.append(DiffChunk("insert", "".join(new_tokens[b_start:b_end])))
    return chunks


def compare_versions(strategy: Strategy, a: int, b: int) -> VersionComparison:
    """Compare version `a` (old side) with version `b` (new side), field by field."""
    by_version = {revision.version: revision for revision in strategy.revisions}
    missing = [version for version in (a, b) if version not in by_version]
    if missing:
        raise NotFound(f"strategy {strategy.id} has no version {missing[0]}")
    old, new = by_version[a].snapshot or {}, by_version[b].snapshot or {}
    comparisons = []
    for name in STRATEGY_FIELDS:
        old_value, new_value = old.get(name), new.get(name)
        diff = word_diff(old_value or "", new_value or "") if name in TEXT_FIELDS else []
        comparisons.append(
            FieldComparison(
                name=name,
                label=FIELD_LABELS[name],
                old=old_value,
                new=new_value,
                changed=old_value != new_value,
                diff=diff,
            )
        )
    return VersionComparison(strategy.id, a, b, by_version[a], by_version[b], comparisons)
