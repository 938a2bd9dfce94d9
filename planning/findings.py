"""Reading stored reviews: which findings a user may see, grouped by manager and rep."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased, joinedload

from extensions import DbSession
from planning.access import visible_owner_ids
from planning.accounts import Page, fetch_page, is_valid_id
from planning.models import Finding, Review, Role, User
from planning.review import NEW, PERSISTING, STATUSES

STATUS_ORDER = {status: index for index, status in enumerate(STATUSES)}


def latest_review(session: DbSession) -> Review | None:
    """Return the review with the latest as-of date, if any."""
    return session.scalars(select(Review).order_by(Review.as_of.desc()).limit(1)).first()


def review_as_of(session: DbSession, day: date) -> Review | None:
    """Return the review as of `day`, if one ran."""
    return session.scalars(select(Review).where(Review.as_of == day)).first()


def get_review(session: DbSession, review_id: int) -> Review | None:
    """Return the review with this id, if any."""
    return session.get(Review, review_id)


def reviews_page(session: DbSession, *, page: int, per_page: int) -> Page[Review]:
    """Return one page of the stored reviews, latest as-of date first; a page past the end is the last."""
    total = session.scalar(select(func.count()).select_from(Review)) or 0
    latest_first = select(Review).order_by(Review.as_of.desc())
    return fetch_page(session, latest_first, total=total, page=page, per_page=per_page)


def status_counts_by_review(
    session: DbSession, review_ids: Iterable[int], owner_ids: set[int] | None
) -> dict[int, dict[str, int]]:
    """Count the findings of each review on accounts of `owner_ids` (None: all) per status, in one query."""
    ids = list(review_ids)
    counts = {review_id: dict.fromkeys(STATUSES, 0) for review_id in ids}
    statement = (
        select(Finding.review_id, Finding.status, func.count())
        .where(Finding.review_id.in_(ids))
        .group_by(Finding.review_id, Finding.status)
    )
    if owner_ids is not None:
        statement = statement.where(Finding.owner_id.in_(owner_ids))
    for review_id, status, count in session.execute(statement):
        counts[review_id][status] = count
    return counts


@dataclass(frozen=True)
class Team:
    """A manager's direct reports, as the review page groups them; `manager_id` None: no manager."""

    manager_id: int | None

    @classmethod
    def from_key(cls, key: str) -> Team | None:
        """Read a team from its key in a URL ("none", or the manager's id); None if it is not one."""
        if key == "none":
            return cls(None)
        if key.isascii() and key.isdigit() and is_valid_id(int(key)):  # not "²", which isdigit() takes
            return cls(int(key))
        return None

    @property
    def key(self) -> str:
        return "none" if self.manager_id is None else str(self.manager_id)

    def owns(self) -> Any:
        """Return the condition on `Finding` for findings on accounts of this team's members."""
        # `== None` is IS NULL: the team of the owners without a manager.
        members = Finding.owner_id.in_(select(User.id).where(User.manager_id == self.manager_id))
        if self.manager_id is None:
            # As in the grouping, an account without an owner belongs to the no-manager team.
            return or_(members, Finding.owner_id.is_(None))
        return members


UNKNOWN_TEAM = "unknown"
OUTSIDE_TEAM = "outside"


def team_problem(session: DbSession, user: User, owners: set[int] | None, team: Team) -> str | None:
    """Say why `user`, who sees the accounts of `owners` (None: all), may not look at `team`; None if
    they may.

    UNKNOWN_TEAM: no user has that id, or it is a rep whom nobody reports to (a team is someone's
    direct reports). OUTSIDE_TEAM: a team they neither see (their own, or one below them) nor belong to
    (their own manager's, within which they see what is theirs).
    """
    if team.manager_id is not None:
        head = session.get(User, team.manager_id)
        if head is None or (
            head.role == Role.REP
            and session.scalar(select(User.id).where(User.manager_id == head.id).limit(1)) is None
        ):
            return UNKNOWN_TEAM
    if owners is None or team.manager_id == user.manager_id or team.manager_id in owners:
        return None
    return OUTSIDE_TEAM


@dataclass
class TeamSummary:
    """How many findings of a review one team has, by status."""

    team: Team
    manager: User | None
    counts: dict[str, int]

    @property
    def name(self) -> str:
        return self.manager.name if self.manager is not None else "No manager"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def team_summaries(
    session: DbSession, review: Review, owner_ids: set[int] | None, *, rule: str | None = None
) -> list[TeamSummary]:
    """Count the review's findings on accounts of `owner_ids` (None: all) per team and status, in SQL.

    Teams are named and sorted as `group_by_manager_and_rep` groups them.
    """
    owner = aliased(User)
    statement = (
        select(owner.manager_id, Finding.status, func.count())
        .select_from(Finding)
        .outerjoin(owner, owner.id == Finding.owner_id)
        .where(Finding.review_id == review.id)
        .group_by(owner.manager_id, Finding.status)
    )
    if owner_ids is not None:
        statement = statement.where(Finding.owner_id.in_(owner_ids))
    if rule is not None:
        statement = statement.where(Finding.rule == rule)
    counts: dict[int | None, dict[str, int]] = {}
    for manager_id, status, count in session.execute(statement):
        counts.setdefault(manager_id, dict.fromkeys(STATUSES, 0))[status] = count
    named = [manager_id for manager_id in counts if manager_id is not None]
    managers = {user.id: user for user in session.scalars(select(User).where(User.id.in_(named)))}
    summaries = [
        TeamSummary(Team(manager_id), managers.get(manager_id) if manager_id is not None else None, by_status)
        for manager_id, by_status in counts.items()
    ]
    return sorted(summaries, key=lambda summary: (summary.manager is None, summary.name.lower()))


def _findings_query(review: Review, owner_ids: set[int] | None, rule: str | None, team: Team | None) -> Any:
    """Return the SELECT of the review's findings on accounts of `owner_ids` (None: all), narrowed to
    one rule and one team when given, unordered."""
    statement = select(Finding).where(Finding.review_id == review.id)
    if owner_ids is not None:
        statement = statement.where(Finding.owner_id.in_(owner_ids))
    if rule is not None:
        statement = statement.where(Finding.rule == rule)
    if team is not None:
        statement = statement.where(team.owns())
    return statement


def _with_accounts_and_owners(statement: Any) -> Any:
    """Load each finding's account and owner (and the owner's manager) in the same query, in display order."""
    return statement.options(
        joinedload(Finding.account),
        joinedload(Finding.owner).joinedload(User.manager),
    ).order_by(*Finding.display_order())


def findings_for_owners(
    session: DbSession,
    review: Review,
    owner_ids: set[int] | None,
    *,
    rule: str | None = None,
    team: Team | None = None,
    limit: int | None = None,
) -> list[Finding]:
    """Return the review's findings on accounts of `owner_ids` (None: all), in display order.

    `rule` narrows them to one rule, `team` to the accounts of one manager's direct reports, `limit` to
    the first ones.
    """
    statement = _with_accounts_and_owners(_findings_query(review, owner_ids, rule, team))
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def findings_page(
    session: DbSession,
    review: Review,
    owner_ids: set[int] | None,
    *,
    page: int,
    per_page: int,
    rule: str | None = None,
    team: Team | None = None,
) -> Page[Finding]:
    """Return one page of what `findings_for_owners` lists, in two queries (the count, then the page).

    A page past the end is the last one, as on the account list. Display order ends with the finding's
    id, so pages neither overlap nor skip a finding while the review stays as it is; running the review
    of that day again writes new findings, and a client paging through it meanwhile should start over.
    """
    narrowed = _findings_query(review, owner_ids, rule, team)
    total = session.scalar(select(func.count()).select_from(narrowed.subquery())) or 0
    return fetch_page(session, _with_accounts_and_owners(narrowed), total=total, page=page, per_page=per_page)


def status_counts(session: DbSession, review: Review, owner_ids: set[int] | None = None) -> dict[str, int]:
    """Count the review's findings on accounts of `owner_ids` (None: all) per status, in one grouped query."""
    return status_counts_by_review(session, [review.id], owner_ids)[review.id]


def open_counts(session: DbSession, user: User, review: Review) -> tuple[int, int]:
    """Return how many open findings of `review` the user may see, and how many of those are new."""
    counts = status_counts(session, review, visible_owner_ids(session, user))
    return counts[NEW] + counts[PERSISTING], counts[NEW]


def new_first(findings: Iterable[Finding]) -> list[Finding]:
    """Order findings new, then persisting, then resolved, keeping the review's order within each."""
    return sorted(findings, key=lambda finding: STATUS_ORDER.get(finding.status, len(STATUSES)))


def count_by_status(findings: Iterable[Finding]) -> dict[str, int]:
    """Count findings per status, every status present."""
    counts = dict.fromkeys(STATUSES, 0)
    for finding in findings:
        counts[finding.status] = counts.get(finding.status, 0) + 1
    return counts


def has_open_findings(findings: Iterable[Finding]) -> bool:
    """Tell whether any finding is new or persisting (a resolved one alone is nothing to act on)."""
    return any(finding.status in (NEW, PERSISTING) for finding in findings)


@dataclass
class RepGroup:
    """The findings on one rep's accounts."""

    rep: User | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.rep.name if self.rep is not None else "No owner"


@dataclass
class ManagerGroup:
    """The findings of one manager's direct reports."""

    manager: User | None
    reps: list[RepGroup] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manager.name if self.manager is not None else "No manager"

    @property
    def findings(self) -> list[Finding]:
        return [finding for rep in self.reps for finding in rep.findings]


def group_by_manager_and_rep(findings: Iterable[Finding]) -> list[ManagerGroup]:
    """Group findings by the owner's manager, then by owner; names sorted, new findings first."""
    by_manager: dict[int | None, ManagerGroup] = {}
    by_rep: dict[tuple[int | None, int | None], RepGroup] = {}
    for finding in new_first(findings):
        owner = finding.owner
        manager = owner.manager if owner is not None else None
        manager_key = manager.id if manager is not None else None
        group = by_manager.setdefault(manager_key, ManagerGroup(manager))
        rep_key = (manager_key, owner.id if owner is not None else None)
        if rep_key not in by_rep:
            by_rep[rep_key] = RepGroup(owner)
            group.reps.append(by_rep[rep_key])
        by_rep[rep_key].findings.append(finding)
    groups = sorted(by_manager.values(), key=lambda group: (group.manager is None, group.name.lower()))
    for group in groups:
        group.reps.sort(key=lambda rep: (rep.rep is None, rep.name.lower()))
    return groups
