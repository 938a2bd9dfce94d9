"""Link activities to the strategy they serve, unlink them, and suggest links.

An activity serves at most one strategy (a unique index on links.activity_id). Linking an activity
that already serves another strategy of the account is refused with a message naming that strategy,
unless the caller passes `move=True`, which moves the link: a rep re-files a tactic on purpose, never
by accident. Only non-deleted activities of the strategy's own account can be linked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from extensions import DbSession
from planning.accounts import is_valid_id
from planning.models import Activity, Link, Opportunity, Strategy, User, utcnow
from planning.strategies import require_editor

# Why an activity cannot be linked, as a code callers act on (the words for people come with it).
NO_SUCH_ACTIVITY = "no_such_activity"
OTHER_ACCOUNT = "other_account"
DELETED_IN_CRM = "deleted_in_crm"
SERVES_ANOTHER = "serves_another"


class LinkRefused(ValueError):
    """Some activities cannot be linked: `reasons` maps each activity id to a code, `problems` to words."""

    def __init__(self, refusals: dict[int, tuple[str, str]]) -> None:
        self.reasons = {key: code for key, (code, _) in refusals.items()}
        self.problems = {key: message for key, (_, message) in refusals.items()}
        super().__init__("; ".join(f"activity {key}: {message}" for key, message in self.problems.items()))


@dataclass
class LinkResult:
    """What a link or unlink call did, by activity id."""

    linked: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    unlinked: list[int] = field(default_factory=list)


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def link_activities(
    session: DbSession, user: User, strategy: Strategy, activity_ids: Iterable[int], *, move: bool = False
) -> LinkResult:
    """Link the activities to `strategy`; raise LinkRefused (and change nothing) if any cannot be."""
    require_editor(user, strategy.account)
    ids = _unique(activity_ids)
    wanted = [key for key in ids if is_valid_id(key)]
    found = (
        {
            activity.id: activity
            for activity in session.scalars(select(Activity).where(Activity.id.in_(wanted)))
        }
        if wanted
        else {}
    )
    existing = (
        {
            link.activity_id: link
            for link in session.scalars(select(Link).where(Link.activity_id.in_(list(found))))
        }
        if found
        else {}
    )

    refusals: dict[int, tuple[str, str]] = {}
    for key in ids:
        activity = found.get(key)
        if activity is None:
            refusals[key] = (NO_SUCH_ACTIVITY, "no such activity")
        elif activity.account_id != strategy.account_id:
            refusals[key] = (OTHER_ACCOUNT, "belongs to another account")
        elif activity.deleted:
            refusals[key] = (DELETED_IN_CRM, "was deleted in the CRM")
        elif key in existing and existing[key].strategy_id != strategy.id and not move:
            serving = existing[key].strategy_id
            refusals[key] = (SERVES_ANOTHER, f"already serves strategy {serving}; move it on purpose")
    if refusals:
        raise LinkRefused(refusals)

    result = LinkResult()
    now = utcnow()
    for key in ids:
        current = existing.get(key)
        if current is None:
            session.add(Link(activity_id=key, strategy_id=strategy.id, created_by_id=user.id, created_at=now))
            result.linked.append(key)
        elif current.strategy_id == strategy.id:
            result.unchanged.append(key)
        else:
            current.strategy_id = strategy.id
            current.created_by_id = user.id
            current.created_at = now
            result.moved.append(key)
    session.flush()
    session.expire(strategy, ["links"])
    return result


def unlink_activities(
    session: DbSession, user: User, strategy: Strategy, activity_ids: Iterable[int]
) -> LinkResult:
    """Remove the links from these activities to `strategy`; ids not linked to it are left alone."""
    require_editor(user, strategy.account)
    ids = [key for key in _unique(activity_ids) if is_valid_id(key)]
    linked = (
        set(
            session.scalars(
                select(Link.activity_id).where(Link.strategy_id == strategy.id, Link.activity_id.in_(ids))
            )
        )
        if ids
        else set()
    )
    if linked:
        session.execute(
            delete(Link)
            .where(Link.strategy_id == strategy.id, Link.activity_id.in_(linked))
            .execution_options(synchronize_session="fetch")
        )
        session.expire(strategy, ["links"])
    result = LinkResult()
    result.unlinked = [key for key in ids if key in linked]
    result.unchanged = [key for key in _unique(activity_ids) if key not in linked]
    return result


# --- suggestions ------------------------------------------------------------------------------------

# Words too common, or too much about selling, to tell what an activity is about.
_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just let me more most my no
    nor not now of off on once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too under until up very was
    we were what when where which while who whom why will with would you your yours get make take use
    new first next last week month year day today q1 q2 q3 q4 via per re fw fwd customer customers
    client account team people time way work help need plan strategy approach objective outcome call
    calls email emails meeting meetings follow followup task note sent send
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*[a-z0-9]|[a-z0-9]", re.IGNORECASE)
SUGGESTION_WINDOW_DAYS = 90
_CANDIDATE_LIMIT = 500


def key_terms(*texts: str) -> set[str]:
    """Return the words of the texts worth matching: lower-cased, no stop-words, simple singulars."""
    terms = set()
    for text in texts:
        for word in _WORD.findall((text or "").lower()):
            word = word.removesuffix("'s")
            if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
                word = word[:-1]
            if len(word) >= 3 and word not in STOP_WORDS and not word.isdigit():
                terms.add(word)
    return terms


@dataclass(frozen=True)
class Suggestion:
    """An unlinked activity that probably serves the strategy, and why."""

    activity: Activity
    score: int
    on_opportunity: bool
    shared_terms: tuple[str, ...]

    @property
    def reason(self) -> str:
        parts = []
        if self.on_opportunity:
            parts.append("on the opportunity this strategy targets")
        if self.shared_terms:
            parts.append("mentions " + ", ".join(f"“{term}”" for term in self.shared_terms))
        return "; ".join(parts)


def suggest_links(
    session: DbSession, strategy: Strategy, limit: int = 10, *, now: datetime | None = None
) -> list[Suggestion]:
    """Suggest recent unlinked activities of the account on the strategy's opportunity or sharing its terms.

    Score: 3 for being on the targeted opportunity, plus 1 per shared key term; ties go to the newest.
    """
    since = (now or utcnow()) - timedelta(days=SUGGESTION_WINDOW_DAYS)
    terms = key_terms(strategy.objective, strategy.customer_view, strategy.approach, strategy.success_measure)
    if strategy.opportunity_id is not None:
        opportunity = session.get(Opportunity, strategy.opportunity_id)
        if opportunity is not None:
            terms |= key_terms(opportunity.name)
    candidates = session.scalars(
        select(Activity)
        .outerjoin(Link, Link.activity_id == Activity.id)
        .where(
            Activity.account_id == strategy.account_id,
            Activity.deleted.is_(False),
            Activity.occurred_at > since,
            Link.id.is_(None),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(_CANDIDATE_LIMIT)
    )
    suggestions = []
    for activity in candidates:
        on_opportunity = (
            strategy.opportunity_id is not None and activity.opportunity_id == strategy.opportunity_id
        )
        shared = tuple(sorted(terms & key_terms(activity.subject or "")))
        score = (3 if on_opportunity else 0) + len(shared)
        if score:
            suggestions.append(Suggestion(activity, score, on_opportunity, shared))
    suggestions.sort(
        key=lambda item: (-item.score, -item.activity.occurred_at.timestamp(), -item.activity.id)
    )
    return suggestions[:limit]
