"""API: one strategy, its update with `version` (409 when stale), revisions, comments, suggestions.

Access rule for every API route: an unknown id is 404; a record outside the caller's scope is 403,
and so is a write by someone who may only read (a manager on a rep's account). Ids are sequential,
so hiding existence behind 404 would protect nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from apiflask import Schema
from apiflask.fields import Boolean, Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import EXCLUDE

from extensions import db
from planning.accounts import MAX_ID
from planning.comments import MAX_COMMENT_LENGTH, add_comment, comments_on
from planning.links import LinkRefused, suggest_links
from planning.models import Strategy, StrategyStatus, User
from planning.strategies import (
    MAX_TEXT_LENGTH,
    NotAllowed,
    NotFound,
    ReadsLikeTactics,
    StaleVersion,
    StrategyInvalid,
    revisions_of,
    strategy_for_viewer,
    update_strategy,
)
from planning.tactics import check_tactics
from web.api import ApiError, abort_api, bp, json_boolean
from web.auth import signed_in_user

STATUSES = [status.value for status in StrategyStatus]

# Statuses every authenticated route may answer with besides its success, for the OpenAPI document.
READ_RESPONSES = {401: "Not signed in", 403: "Outside your scope", 404: "No such record"}
WRITE_RESPONSES = {**READ_RESPONSES, 403: "Outside your scope, read-only access, or CSRF check failed"}


# --- schemas ----------------------------------------------------------------------------------------


class PersonOut(Schema):
    id = Integer()
    name = String()
    email = String()


class TacticsOut(Schema):
    reads_like_tactics = Boolean()
    tactic_phrases = List(String())
    outcome_phrases = List(String())
    reasons = List(String())


class StrategyOut(Schema):
    id = Integer()
    account_id = Integer()
    author = Nested(PersonOut, allow_none=True)
    opportunity_id = Integer(allow_none=True)
    objective = String()
    customer_view = String()
    approach = String()
    success_measure = String()
    target_date = Date(allow_none=True)
    review_date = Date(allow_none=True)
    status = String()
    version = Integer()
    created_at = DateTime()
    updated_at = DateTime()
    linked_activity_ids = List(Integer())
    tactics = Nested(TacticsOut)


class StrategyResponse(StrategyOut):
    """A strategy as a response body (a class of its own: apispec lists a nested schema only once)."""


def _text(**kwargs: Any) -> String:
    return String(allow_none=True, validate=Length(max=MAX_TEXT_LENGTH), **kwargs)


class StrategyFieldsIn(Schema):
    class Meta:
        ordered = True

    objective = _text(metadata={"description": "The outcome sought for the customer (Markdown)"})
    customer_view = _text(metadata={"description": "The customer's point of view (Markdown)"})
    approach = _text(metadata={"description": "How we will spend our time and energy (Markdown)"})
    success_measure = _text(metadata={"description": "How we will know it worked (Markdown)"})
    target_date = Date(allow_none=True)
    review_date = Date(allow_none=True)
    status = String(validate=OneOf(STATUSES))
    opportunity_id = Integer(strict=True, allow_none=True, validate=Range(min=1, max=MAX_ID))
    activate_anyway = json_boolean(
        load_default=False,
        metadata={"description": "Activate even though the objective and approach read like tactics"},
    )


class StrategyUpdateIn(StrategyFieldsIn):
    version = Integer(
        strict=True,
        required=True,
        validate=Range(min=1, max=MAX_ID),
        metadata={"description": "The version this edit started from"},
    )


class RevisionOut(Schema):
    version = Integer()
    author = Nested(PersonOut, allow_none=True)
    created_at = DateTime()
    changed_fields = List(String())
    snapshot = Nested(
        Schema.from_dict(
            {
                "objective": String(),
                "customer_view": String(),
                "approach": String(),
                "success_measure": String(),
                "target_date": String(allow_none=True),
                "review_date": String(allow_none=True),
                "status": String(),
                "opportunity_id": Integer(allow_none=True),
            },
            name="RevisionSnapshot",
        )
    )


class RevisionListOut(Schema):
    strategy_id = Integer()
    current_version = Integer()
    items = List(Nested(RevisionOut))


class CommentIn(Schema):
    body = String(required=True, validate=Length(min=1, max=MAX_COMMENT_LENGTH))


class CommentOut(Schema):
    id = Integer()
    author = Nested(PersonOut, allow_none=True)
    body = String()
    created_at = DateTime()


class CommentResponse(CommentOut):
    """A comment as a response body."""


class CommentListOut(Schema):
    items = List(Nested(CommentOut))


class SuggestionQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = Integer(load_default=10, validate=Range(min=1, max=50))


class ActivityOut(Schema):
    id = Integer()
    external_id = String()
    kind = String()
    direction = String()
    occurred_at = DateTime()
    subject = String(allow_none=True)
    opportunity_id = Integer(allow_none=True)
    owner_id = Integer(allow_none=True)
    url = String(allow_none=True)
    strategy_id = Integer(allow_none=True)


class SuggestionOut(Schema):
    activity = Nested(ActivityOut)
    score = Integer()
    on_opportunity = Boolean()
    shared_terms = List(String())
    reason = String()


class SuggestionListOut(Schema):
    items = List(Nested(SuggestionOut))


# --- conversions ------------------------------------------------------------------------------------


def person_dict(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.name, "email": user.email}


def strategy_dict(strategy: Strategy) -> dict[str, Any]:
    """Return the strategy as the API shows it."""
    check = check_tactics(strategy.objective, strategy.approach)
    return {
        "id": strategy.id,
        "account_id": strategy.account_id,
        "author": person_dict(strategy.author),
        "opportunity_id": strategy.opportunity_id,
        "objective": strategy.objective,
        "customer_view": strategy.customer_view,
        "approach": strategy.approach,
        "success_measure": strategy.success_measure,
        "target_date": strategy.target_date,
        "review_date": strategy.review_date,
        "status": strategy.status.value,
        "version": strategy.version,
        "created_at": strategy.created_at,
        "updated_at": strategy.updated_at,
        "linked_activity_ids": sorted(link.activity_id for link in strategy.links),
        "tactics": {
            "reads_like_tactics": check.reads_like_tactics,
            "tactic_phrases": list(check.tactic_phrases),
            "outcome_phrases": list(check.outcome_phrases),
            "reasons": list(check.reasons),
        },
    }


def _api_error(status: int, message: str, code: str | None = None, detail: Any = None) -> ApiError:
    error = ApiError(status, message, code)
    if detail is not None:
        error.detail = detail
    return error


def _fail(error: Exception) -> NoReturn:
    """Turn a planning error into the API's JSON error."""
    if isinstance(error, NotFound):
        abort_api(404, str(error))
    if isinstance(error, NotAllowed):
        abort_api(403, str(error))
    if isinstance(error, StaleVersion):
        raise _api_error(
            409,
            f"This strategy was changed by someone else: it is at version {error.current_version}, "
            f"your edit started from version {error.given_version}. Merge your changes into the current "
            "version and send that version.",
            "stale_version",
            {
                "current_version": error.current_version,
                "current": StrategyOut().dump(strategy_dict(error.strategy)),
            },
        )
    if isinstance(error, ReadsLikeTactics):
        raise _api_error(
            422,
            "The objective and approach read like a list of tactics, with no outcome for the customer. "
            "Rewrite them, or send activate_anyway: true.",
            "reads_like_tactics",
            {"tactic_phrases": list(error.check.tactic_phrases), "reasons": list(error.check.reasons)},
        )
    if isinstance(error, StrategyInvalid):
        raise _api_error(
            422, "Some fields need attention.", "invalid", {"json": {k: [v] for k, v in error.errors.items()}}
        )
    if isinstance(error, LinkRefused):
        raise _api_error(
            422,
            "Some activities cannot be linked; nothing was changed.",
            "link_refused",
            {"activity_ids": {str(key): message for key, message in error.problems.items()}},
        )
    raise error


@contextmanager
def planning_errors() -> Iterator[None]:
    """Turn planning errors raised inside the block into JSON errors, rolling back the transaction."""
    try:
        yield
    except (NotFound, NotAllowed, StaleVersion, ReadsLikeTactics, StrategyInvalid, LinkRefused) as error:
        db.session.rollback()
        _fail(error)


def load_strategy(strategy_id: int) -> Strategy:
    """Return the strategy the caller may see, or answer 404/403."""
    with planning_errors():
        return strategy_for_viewer(db.session, signed_in_user(), strategy_id)


# --- routes -----------------------------------------------------------------------------------------


@bp.get("/strategies/<int:strategy_id>")
@bp.output(StrategyResponse)
@bp.doc(summary="Get a strategy", tags=["Strategies"], responses=READ_RESPONSES)
def get_strategy(strategy_id: int) -> dict[str, Any]:
    """Get one strategy with its linked activity ids and the tactics check."""
    return strategy_dict(load_strategy(strategy_id))


@bp.patch("/strategies/<int:strategy_id>")
@bp.input(StrategyUpdateIn, location="json")
@bp.output(StrategyResponse)
@bp.doc(
    summary="Update a strategy",
    tags=["Strategies"],
    responses={
        **WRITE_RESPONSES,
        409: "Stale version: someone saved first; the body carries the current version",
        422: "Invalid fields, or the text reads like tactics (send activate_anyway)",
    },
)
def patch_strategy(strategy_id: int, json_data: dict[str, Any]) -> dict[str, Any]:
    """Change some fields of a strategy; `version` is the version the edit started from."""
    strategy = load_strategy(strategy_id)
    version = json_data.pop("version")
    activate_anyway = json_data.pop("activate_anyway", False)
    with planning_errors():
        update_strategy(
            db.session,
            signed_in_user(),
            strategy,
            json_data,
            version=version,
            activate_anyway=activate_anyway,
        )
        db.session.commit()
    return strategy_dict(strategy)


@bp.get("/strategies/<int:strategy_id>/revisions")
@bp.output(RevisionListOut)
@bp.doc(summary="List a strategy's revisions, newest first", tags=["Strategies"], responses=READ_RESPONSES)
def get_revisions(strategy_id: int) -> dict[str, Any]:
    """List every saved version: who, when, which fields changed, and the full text."""
    strategy = load_strategy(strategy_id)
    items = [
        {
            "version": revision.version,
            "author": person_dict(revision.author),
            "created_at": revision.created_at,
            "changed_fields": revision.changed_fields,
            "snapshot": revision.snapshot,
        }
        for revision in revisions_of(db.session, strategy)
    ]
    return {"strategy_id": strategy.id, "current_version": strategy.version, "items": items}


@bp.get("/strategies/<int:strategy_id>/comments")
@bp.output(CommentListOut)
@bp.doc(summary="List comments on a strategy", tags=["Strategies"], responses=READ_RESPONSES)
def get_comments(strategy_id: int) -> dict[str, Any]:
    """List the comments on a strategy, oldest first."""
    strategy = load_strategy(strategy_id)
    return {
        "items": [
            {"id": c.id, "author": person_dict(c.author), "body": c.body, "created_at": c.created_at}
            for c in comments_on(db.session, strategy)
        ]
    }


@bp.post("/strategies/<int:strategy_id>/comments")
@bp.input(CommentIn, location="json")
@bp.output(CommentResponse, status_code=201)
@bp.doc(summary="Comment on a strategy", tags=["Strategies"], responses=WRITE_RESPONSES)
def post_comment(strategy_id: int, json_data: dict[str, Any]) -> dict[str, Any]:
    """Add a comment (the account's owner, their managers and admins may)."""
    strategy = load_strategy(strategy_id)
    with planning_errors():
        comment = add_comment(db.session, signed_in_user(), strategy, json_data["body"])
        db.session.commit()
    return {
        "id": comment.id,
        "author": person_dict(comment.author),
        "body": comment.body,
        "created_at": comment.created_at,
    }


def activity_dict(activity: Any, strategy_id: int | None = None) -> dict[str, Any]:
    """Return an activity (a model or a timeline row) as the API shows it."""
    return {
        "id": activity.id,
        "external_id": activity.external_id,
        "kind": activity.kind.value,
        "direction": activity.direction.value,
        "occurred_at": activity.occurred_at,
        "subject": activity.subject,
        "opportunity_id": activity.opportunity_id,
        "owner_id": activity.owner_id,
        "url": activity.url,
        "strategy_id": strategy_id if strategy_id is not None else getattr(activity, "strategy_id", None),
    }


@bp.get("/strategies/<int:strategy_id>/suggestions")
@bp.input(SuggestionQuery, location="query")
@bp.output(SuggestionListOut)
@bp.doc(summary="Suggest activities to link", tags=["Links"], responses=READ_RESPONSES)
def get_suggestions(strategy_id: int, query_data: dict[str, Any]) -> dict[str, Any]:
    """Suggest recent unlinked activities on the strategy's opportunity or sharing its key terms."""
    strategy = load_strategy(strategy_id)
    return {
        "items": [
            {
                "activity": activity_dict(item.activity),
                "score": item.score,
                "on_opportunity": item.on_opportunity,
                "shared_terms": list(item.shared_terms),
                "reason": item.reason,
            }
            for item in suggest_links(db.session, strategy, query_data["limit"])
        ]
    }
