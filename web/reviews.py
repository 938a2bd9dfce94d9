"""The review pages: the latest review or one by id, findings grouped by manager and rep."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from extensions import db
from planning.access import sees_everything, visible_owner_ids
from planning.accounts import is_valid_id
from planning.describe import REASON_TITLES, RULE_TITLES, describe_finding
from planning.findings import (
    OUTSIDE_TEAM,
    UNKNOWN_TEAM,
    Team,
    findings_for_owners,
    get_review,
    group_by_manager_and_rep,
    latest_review,
    open_counts,
    team_problem,
    team_summaries,
)
from planning.models import Finding, Review, Role, User
from planning.review import (
    RULES,
    STATUSES,
    ReviewParameterError,
    run_review_from_config,
    today_in,
    zone_for,
)
from web.accounts import long_date

bp = Blueprint("reviews", __name__, url_prefix="/reviews")

RECENT_REVIEWS = 12


def _user() -> User:
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    return user


def may_run_reviews(user: User) -> bool:
    """Tell whether `user` may start a review (it covers the whole org: managers and admins)."""
    return user.role in (Role.MANAGER, Role.ADMIN)


@bp.get("")
@login_required
def latest() -> ResponseReturnValue:
    """Show the latest review."""
    return _render(latest_review(db.session))


@bp.get("/<int:review_id>")
@login_required
def review(review_id: int) -> ResponseReturnValue:
    """Show one review."""
    found = get_review(db.session, review_id) if is_valid_id(review_id) else None
    if found is None:
        abort(404)
    return _render(found)


@bp.post("/run")
@login_required
def run() -> ResponseReturnValue:
    """Run the review now (or as of a chosen day) and show it."""
    if not may_run_reviews(_user()):
        abort(403, "Only managers and admins may run the review.")
    raw = request.form.get("as_of", "").strip()
    try:
        as_of = date.fromisoformat(raw) if raw else None
    except ValueError:
        flash(
            f"No review ran: “{raw[:20]}” is not a day the review can use (write it as YYYY-MM-DD).", "error"
        )
        return redirect(url_for("reviews.latest"))
    try:
        done = run_review_from_config(db.session, current_app.config, as_of=as_of)
    except ReviewParameterError as error:
        db.session.rollback()
        flash(f"No review ran: “{raw[:20]}” is not a day the review can use ({error}).", "error")
        return redirect(url_for("reviews.latest"))
    db.session.commit()
    # Counted over what this user may see, like the page it leads to.
    shown, new = open_counts(db.session, _user(), done)
    flash(
        f"Review as of {done.as_of.isoformat()} done. Open findings on the accounts you see: "
        f"{shown} ({new} new).",
        "success",
    )
    return redirect(url_for("reviews.review", review_id=done.id))


def _today() -> date | None:
    """Today in REVIEW_TIMEZONE, the last day a review may be run for; None if the zone is unknown."""
    try:
        return today_in(current_app.config.get("REVIEW_TIMEZONE") or "UTC")
    except ReviewParameterError:
        return None  # running a review says what is wrong with the setting


def _team_name(team: Team | None) -> str | None:
    """Name the chosen team's head (checked to be one the user may look at); None for no team or "none"."""
    if team is None or team.manager_id is None:
        return None
    head = db.session.get(User, team.manager_id)
    return head.name if head is not None else None


def _render(shown: Review | None) -> ResponseReturnValue:
    """Render a review: every finding the user may see, or, past REVIEW_PAGE_FINDINGS, their teams to pick
    from (`?team=` then lists one team's findings). Counted in SQL first, so a VP's view of a large org
    neither loads nor sends tens of thousands of findings.
    """
    user = _user()
    rule = request.args.get("rule", "")
    if rule not in RULES:
        rule = ""
    team_key = request.args.get("team", "")
    team = Team.from_key(team_key) if team_key else None
    if team_key and team is None:
        abort(404)
    # Whose accounts the user sees, resolved once for the team, the counts and the findings.
    owners = visible_owner_ids(db.session, user)
    if team is not None:
        problem = team_problem(db.session, user, owners, team)
        if problem == UNKNOWN_TEAM:
            abort(404)
        if problem == OUTSIDE_TEAM:
            abort(403, "That team is outside the accounts you may see.")
    teams = team_summaries(db.session, shown, owners, rule=rule or None) if shown is not None else []
    counts = dict.fromkeys(STATUSES, 0)
    for summary in teams if team is None else [s for s in teams if s.team == team]:
        for status, count in summary.counts.items():
            counts[status] += count
    total = sum(counts.values())
    # A choice of one team would be no choice: past the limit, someone who sees a single team gets it.
    choose_team = (
        team is None and len(teams) > 1 and total > int(current_app.config.get("REVIEW_PAGE_FINDINGS", 500))
    )
    findings = []
    if shown is not None and not choose_team and total:
        findings = findings_for_owners(db.session, shown, owners, rule=rule or None, team=team)
    recent = db.session.execute(
        select(Review.id, Review.as_of).order_by(Review.as_of.desc()).limit(RECENT_REVIEWS)
    ).all()
    return render_template(
        "reviews/show.html",
        review=shown,
        groups=group_by_manager_and_rep(findings),
        counts=counts,
        total=total,
        teams=teams if choose_team else [],
        team=team,
        team_name=_team_name(team),
        rule=rule,
        rule_titles=RULE_TITLES,
        reason_titles=REASON_TITLES,
        recent=recent,
        may_run=may_run_reviews(user),
        today=_today(),
        scope="everyone" if sees_everything(user) else ("team" if user.role == Role.MANAGER else "own"),
    )


def finding_words(finding: Finding, review: Review) -> str:
    """Say what a finding of `review` found, with that review's thresholds."""
    return describe_finding(finding, window_days=review.window_days, stale_days=review.stale_days)


def review_day(moment: datetime, review: Review) -> str:
    """Name the day of `moment` in the review's time zone (the zone its window was counted in).

    A date, not "29 days ago": the page shows past reviews too, and their findings' ages grow with
    every day since.
    """
    try:
        zone = zone_for(review.timezone)
    except ReviewParameterError:  # a zone the stored review names that this machine no longer knows
        zone = ZoneInfo("UTC")
    return long_date(moment.astimezone(zone).date())


def init_app(app: Flask) -> None:
    """Register the review pages."""
    app.add_template_filter(finding_words, "finding_words")
    app.add_template_filter(review_day, "review_day")
    app.register_blueprint(bp)
