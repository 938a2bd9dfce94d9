"""API: link activities to a strategy, and unlink them (body {"activity_ids": [...]})."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Integer, List
from apiflask.validators import Length, Range
from sqlalchemy.exc import IntegrityError

from extensions import db
from planning.accounts import MAX_ID
from planning.links import LinkResult, link_activities, unlink_activities
from web.api import abort_api, bp, json_boolean
from web.api.strategies import WRITE_RESPONSES, load_strategy, planning_errors
from web.auth import signed_in_user

MAX_IDS = 1000


def _activity_ids() -> List:
    return List(
        Integer(strict=True, validate=Range(min=1, max=MAX_ID)),
        required=True,
        validate=Length(min=1, max=MAX_IDS),
        metadata={"description": f"Activity ids (at most {MAX_IDS})"},
    )


class LinkIn(Schema):
    activity_ids = _activity_ids()
    move = json_boolean(
        load_default=False,
        metadata={"description": "Move activities that serve another strategy (otherwise refused)"},
    )


class UnlinkIn(Schema):
    activity_ids = _activity_ids()


class LinkResultOut(Schema):
    strategy_id = Integer()
    linked = List(Integer())
    moved = List(Integer())
    unlinked = List(Integer())
    unchanged = List(Integer())
    linked_activity_ids = List(Integer())


def _result(strategy_id: int, result: LinkResult, linked_ids: list[int]) -> dict[str, Any]:
    return {
        "strategy_id": strategy_id,
        "linked": result.linked,
        "moved": result.moved,
        "unlinked": result.unlinked,
        "unchanged": result.unchanged,
        "linked_activity_ids": linked_ids,
    }


@bp.post("/strategies/<int:strategy_id>/links")
@bp.input(LinkIn, location="json")
@bp.output(LinkResultOut)
@bp.doc(
    summary="Link activities to a strategy",
    description="All or nothing: if any activity cannot be linked (another account's, deleted, unknown, or "
    "serving another strategy without move=true), nothing changes and the answer says why per id.",
    tags=["Links"],
    responses={
        **WRITE_RESPONSES,
        409: "Another request linked one of these activities at the same time",
        422: "Some activities cannot be linked",
    },
)
def post_links(strategy_id: int, json_data: dict[str, Any]) -> dict[str, Any]:
    """Link the activities to the strategy (an activity serves at most one strategy)."""
    strategy = load_strategy(strategy_id)
    with planning_errors():
        try:
            result = link_activities(
                db.session, signed_in_user(), strategy, json_data["activity_ids"], move=json_data["move"]
            )
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            abort_api(409, "Another request linked one of these activities at the same time; try again.")
    return _result(strategy.id, result, sorted(link.activity_id for link in strategy.links))


@bp.delete("/strategies/<int:strategy_id>/links")
@bp.input(UnlinkIn, location="json")
@bp.output(LinkResultOut)
@bp.doc(
    summary="Unlink activities from a strategy",
    description="Ids not linked to this strategy are left alone and listed as unchanged.",
    tags=["Links"],
    responses=WRITE_RESPONSES,
)
def delete_links(strategy_id: int, json_data: dict[str, Any]) -> dict[str, Any]:
    """Remove the links between these activities and the strategy."""
    strategy = load_strategy(strategy_id)
    with planning_errors():
        result = unlink_activities(db.session, signed_in_user(), strategy, json_data["activity_ids"])
        db.session.commit()
    return _result(strategy.id, result, sorted(link.activity_id for link in strategy.links))
