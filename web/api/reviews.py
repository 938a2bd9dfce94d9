"""API: list the reviews that have run, run the tactics review now, read the latest review, read one
review (its findings a page at a time).

Who may do what: managers and admins may run a review (it covers the whole org, so a rep may not
start one: 403); everyone reads reviews, and sees only the findings on accounts they may see — a rep
their own, a manager their team's, the VP and admins everyone's.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from apiflask import Schema
from apiflask.fields import Date, Dict, Float, Integer, List, Nested, String
from apiflask.validators import OneOf, Range
from flask import current_app
from flask_login import current_user
from marshmallow import EXCLUDE, ValidationError

from extensions import db
from planning.access import visible_owner_ids
from planning.accounts import is_valid_id
from planning.findings import (
    OUTSIDE_TEAM,
    UNKNOWN_TEAM,
    Team,
    findings_page,
    get_review,
    latest_review,
    reviews_page,
    status_counts_by_review,
    team_problem,
)
from planning.models import Review, Role, User
from planning.review import (
    EARLIEST_AS_OF,
    KINDS,
    LATEST_AS_OF,
    REASONS,
    RULES,
    STATUSES,
    ReviewParameterError,
    review_parameters,
    review_to_dict,
    run_review_from_config,
)
from web.api import abort_api, bp
from web.api.accounts import MAX_PAGE, PageQuery, PaginationOut, pagination_dict

# A review's findings come a page at a time: the VP of a 50,000-account org may see 17,000 of them.
FINDINGS_PER_PAGE = 200
MAX_FINDINGS_PER_PAGE = 1000

PAGED = (
    "With the findings you may see, a page at a time in the review page's order (open before resolved, "
    "then the most uncovered activity and the largest open pipeline first): `findings_pagination` says "
    "how many there are, and `findings_page` asks for the next."
)

RESPONSES = {401: "Not signed in", 404: "No such review"}
TEAM_RESPONSES = {
    403: "The team asked for is outside what you may see",
    404: "No such review, or no such team",
}


class ReviewAccountOut(Schema):
    id = Integer()
    external_id = String(metadata={"description": "The account's id in the CRM"})
    name = String()


class ReviewOwnerOut(Schema):
    id = Integer()
    email = String()
    name = String()


class FindingOut(Schema):
    rule = String(metadata={"enum": list(RULES)})
    reason = String(metadata={"enum": list(REASONS)})
    status = String(metadata={"enum": list(STATUSES)})
    account = Nested(ReviewAccountOut)
    owner = Nested(ReviewOwnerOut, allow_none=True, metadata={"description": "The account's owner"})
    strategy_id = Integer(
        allow_none=True, metadata={"description": "The stale strategy (stale_strategy only)"}
    )
    uncovered = Dict(
        keys=String(validate=OneOf(KINDS)),
        values=Integer(),
        metadata={"description": "Uncovered activities in the window, by kind (kinds with none left out)"},
    )
    oldest_uncovered_at = String(allow_none=True, metadata={"format": "date-time"})
    strategy_review_date = String(
        allow_none=True,
        metadata={
            "format": "date",
            "description": "The stale strategy's review date when the review ran (stale_strategy only)",
        },
    )
    open_pipeline = Float(metadata={"description": "Amount of the account's open opportunities"})


class ReviewParametersOut(Schema):
    window_days = Integer()
    min_activities = Integer()
    stale_days = Integer()
    timezone = String()


class ReviewHeadOut(Schema):
    id = Integer()
    as_of = String(metadata={"format": "date"})
    created_at = String(metadata={"format": "date-time"})
    parameters = Nested(ReviewParametersOut)


class ReviewOut(ReviewHeadOut):
    findings = List(Nested(FindingOut), metadata={"description": "One page of the findings you may see"})
    findings_pagination = Nested(
        PaginationOut, metadata={"description": "Which page of the findings this is, and how many there are"}
    )


class FindingCountsOut(Schema):
    new = Integer()
    persisting = Integer()
    resolved = Integer()


class ReviewSummaryOut(ReviewHeadOut):
    findings = Nested(
        FindingCountsOut, metadata={"description": "How many of its findings you may see, by status"}
    )


class ReviewListOut(Schema):
    items = List(Nested(ReviewSummaryOut))
    pagination = Nested(PaginationOut)


class RunReviewIn(Schema):
    as_of = Date(
        validate=Range(min=EARLIEST_AS_OF, max=LATEST_AS_OF),
        metadata={"description": "Review as of this day (default: today in REVIEW_TIMEZONE)"},
    )


def _is_team_key(value: str) -> None:
    if Team.from_key(value) is None:
        raise ValidationError("must be a manager's user id or 'none'")


class FindingsPageQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    findings_page = Integer(
        load_default=1,
        validate=Range(min=1, max=MAX_PAGE),
        metadata={"description": "Which page of the findings (a page past the last gives the last)"},
    )
    findings_per_page = Integer(
        load_default=FINDINGS_PER_PAGE,
        validate=Range(min=1, max=MAX_FINDINGS_PER_PAGE),
        metadata={"description": f"Findings per page (default {FINDINGS_PER_PAGE})"},
    )


class RuleQuery(FindingsPageQuery):
    rule = String(validate=OneOf(RULES), metadata={"description": "Only findings of this rule"})
    team = String(
        validate=_is_team_key,
        metadata={
            "description": "Only one team's findings, as the review page groups them: the manager's user id "
            "(their direct reports' accounts), or `none` (people without a manager, and accounts without "
            "an owner)"
        },
    )


def _caller() -> User:
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    return user


def _shown(review: Review, query: dict[str, Any]) -> dict[str, Any]:
    user = _caller()
    owners = visible_owner_ids(db.session, user)
    team = Team.from_key(query["team"]) if "team" in query else None
    if team is not None:
        problem = team_problem(db.session, user, owners, team)
        if problem == UNKNOWN_TEAM:
            abort_api(404, f"No team {team.key}: it is not the id of anyone with direct reports.")
        if problem == OUTSIDE_TEAM:
            abort_api(403, f"Team {team.key} is outside what you may see.")
    page = findings_page(
        db.session,
        review,
        owners,
        page=query["findings_page"],
        per_page=query["findings_per_page"],
        rule=query.get("rule"),
        team=team,
    )
    return {**review_to_dict(review, page.rows), "findings_pagination": pagination_dict(page)}


@bp.get("/reviews")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(ReviewListOut)
@bp.doc(
    summary="The reviews that have run",
    description="The latest as-of date first, each with how many of its findings you may see by status; "
    "GET /api/reviews/{id} gives one with its findings.",
    tags=["Reviews"],
    responses={401: RESPONSES[401]},
)
def list_reviews(query: dict[str, Any]) -> dict[str, Any]:
    """List the stored reviews, a page at a time, with the caller's finding counts."""
    page = reviews_page(db.session, page=query["page"], per_page=query["per_page"])
    owners = visible_owner_ids(db.session, _caller())
    counts = status_counts_by_review(db.session, (review.id for review in page.rows), owners)
    return {
        "items": [
            {
                "id": review.id,
                "as_of": review.as_of.isoformat(),
                "created_at": review.created_at.isoformat(),
                "parameters": review_parameters(review),
                "findings": counts[review.id],
            }
            for review in page.rows
        ],
        "pagination": pagination_dict(page),
    }


@bp.post("/reviews")
@bp.input(RunReviewIn, location="json", arg_name="body")
@bp.input(FindingsPageQuery, location="query", arg_name="query")
@bp.output(ReviewOut, status_code=201)
@bp.doc(
    summary="Run the tactics review now",
    description="Runs and stores the review as of the given day (replacing one for that day; a run for "
    "the same day under way meanwhile is waited for, then replaced). "
    "Managers and admins only; the answer holds the first page of the findings you may see "
    "(`findings_per_page` sets its size; GET /api/reviews/{id} gives the other pages).",
    tags=["Reviews"],
    responses={
        401: RESPONSES[401],
        403: "Reps may not run the review, or CSRF check failed",
    },
)
def run_review_now(body: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    """Run the review and return it."""
    user = _caller()
    if user.role not in (Role.MANAGER, Role.ADMIN):
        abort_api(403, "Only managers and admins may run the review.")
    as_of: date | None = body.get("as_of")
    try:
        review = run_review_from_config(db.session, current_app.config, as_of=as_of)
        db.session.commit()
    except ReviewParameterError as error:
        db.session.rollback()
        abort_api(422, f"Cannot run the review: {error}.")
    return _shown(review, query)


@bp.get("/reviews/latest")
@bp.input(RuleQuery, location="query", arg_name="query")
@bp.output(ReviewOut)
@bp.doc(
    summary="The latest review",
    description=PAGED,
    tags=["Reviews"],
    responses={**RESPONSES, **TEAM_RESPONSES, 404: "No review has run yet, or no such team"},
)
def get_latest_review(query: dict[str, Any]) -> dict[str, Any]:
    """Return the review with the latest as-of date, with the findings you may see."""
    review = latest_review(db.session)
    if review is None:
        abort_api(404, "No review has run yet.")
    return _shown(review, query)


@bp.get("/reviews/<int:review_id>")
@bp.input(RuleQuery, location="query", arg_name="query")
@bp.output(ReviewOut)
@bp.doc(summary="One review", description=PAGED, tags=["Reviews"], responses={**RESPONSES, **TEAM_RESPONSES})
def get_one_review(review_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """Return one review with the findings you may see."""
    review = get_review(db.session, review_id) if is_valid_id(review_id) else None
    if review is None:
        abort_api(404, f"No review {review_id}.")
    return _shown(review, query)
