"""Words for findings: "7 calls, 2 emails and a contract in 30 days — no strategy"."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from planning.models import Finding
from planning.review import (
    KINDS,
    NO_RECENT_ACTIVITY,
    NO_STRATEGY,
    REVIEW_OVERDUE,
    STALE_STRATEGY,
    UNLINKED,
)

_PLURALS = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
    "note": "notes",
    "contract": "contracts",
}
_ONE = {kind: ("an " if kind[0] in "aeiou" else "a ") + kind for kind in _PLURALS}

_REASON_WORDS = {
    NO_STRATEGY: "no strategy",
    UNLINKED: "not linked to the active strategy",
    REVIEW_OVERDUE: "strategy review overdue",
    NO_RECENT_ACTIVITY: "no activity linked to the strategy",
}

RULE_TITLES = {
    "tactics_without_strategy": "Tactics without a strategy",
    STALE_STRATEGY: "Stale strategy",
}

REASON_TITLES = {
    NO_STRATEGY: "No strategy",
    UNLINKED: "Unlinked activity",
    REVIEW_OVERDUE: "Review overdue",
    NO_RECENT_ACTIVITY: "No recent activity",
}


def count_words(kind: str, count: int) -> str:
    """Say how many of one kind: "a call", "an email", "7 calls"."""
    if count == 1:
        return _ONE.get(kind, f"1 {kind}")
    return f"{count} {_PLURALS.get(kind, kind + 's')}"


def counted(count: int, noun: str) -> str:
    """Say a count with its noun: "1 finding", "3 findings", "2 activities"."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def join_words(parts: list[str]) -> str:
    """Join phrases the way people write lists: "a, b and c"."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def uncovered_words(uncovered: Mapping[str, int]) -> str:
    """Say what piled up: "7 calls, 2 emails and a contract"."""
    ordered = [kind for kind in KINDS if uncovered.get(kind)] + sorted(
        kind for kind in uncovered if kind not in KINDS and uncovered[kind]
    )
    return join_words([count_words(kind, int(uncovered[kind])) for kind in ordered]) or "no activity"


def describe(
    rule: str,
    reason: str,
    uncovered: Mapping[str, int],
    *,
    window_days: int,
    stale_days: int,
    review_date: date | None = None,
) -> str:
    """Say in one line what a finding found."""
    if rule == STALE_STRATEGY:
        if reason == REVIEW_OVERDUE:
            due = f" (due {review_date.isoformat()})" if review_date else ""
            return f"Strategy review overdue{due}"
        return f"No activity linked to the strategy in {stale_days} days"
    words = uncovered_words(uncovered)
    return f"{words[0].upper()}{words[1:]} in {window_days} days — {_REASON_WORDS.get(reason, reason)}"


def describe_finding(finding: Finding, *, window_days: int, stale_days: int) -> str:
    """Say in one line what a stored finding found (an overdue strategy's due date as it was then)."""
    return describe(
        finding.rule,
        finding.reason,
        finding.uncovered or {},
        window_days=window_days,
        stale_days=stale_days,
        review_date=finding.strategy_review_date,
    )


def money(amount: Decimal | float | int | None) -> str:
    """Format an amount the short way: $1.2M, $45,000, $0."""
    value = Decimal(str(amount or 0))
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    return f"${value:,.0f}"
