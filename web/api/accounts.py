"""API: the accounts a caller may see, one account with its activities and strategies, new strategies."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Date, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import EXCLUDE
from sqlalchemy import select

from extensions import db
from planning.accounts import (
    BADGE_LABELS,
    DEFAULT_SORT,
    MAX_ID,
    SORTS,
    Page,
    account_opportunities,
    list_account_activities,
)
from planning.accounts import list_accounts as account_list
from planning.models import ActivityKind, Strategy
from planning.strategies import account_for_viewer, create_strategy
from web.api import bp
from web.api.strategies import (
    READ_RESPONSES,
    WRITE_RESPONSES,
    ActivityOut,
    PersonOut,
    StrategyFieldsIn,
    StrategyOut,
    StrategyResponse,
    activity_dict,
    person_dict,
    planning_errors,
    strategy_dict,
)
from web.auth import signed_in_user

MAX_PER_PAGE = 200
MAX_PAGE = 100_000


class PaginationOut(Schema):
    page = Integer()
    per_page = Integer()
    total = Integer()
    pages = Integer()


def pagination_dict(page: Page[Any]) -> dict[str, int]:
    """Return what PaginationOut shows of a page of rows."""
    return {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages}


class PageQuery(Schema):
    """Which page of a list, and how long a page is."""

    class Meta:
        unknown = EXCLUDE

    page = Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    per_page = Integer(load_default=50, validate=Range(min=1, max=MAX_PER_PAGE))


class AccountsQuery(PageQuery):
    q = String(load_default=None, validate=Length(max=200), metadata={"description": "Name contains"})
    owner = Integer(
        load_default=None, validate=Range(min=1, max=MAX_ID), metadata={"description": "Owner id"}
    )
    needs_strategy = Boolean(
        load_default=False, metadata={"description": "Only accounts with no active strategy"}
    )
    sort = String(load_default=DEFAULT_SORT, validate=OneOf(SORTS))


class AccountSummaryOut(Schema):
    id = Integer()
    name = String()
    owner = Nested(PersonOut, allow_none=True)
    open_pipeline = Float()
    recent_activities = Integer(metadata={"description": "Activities in the last 30 days"})
    uncovered_recent = Integer(
        metadata={"description": "Of those, not linked to an active or achieved strategy"}
    )
    has_active_strategy = Boolean()
    badges = List(String(validate=OneOf(list(BADGE_LABELS))))


class AccountListOut(Schema):
    items = List(Nested(AccountSummaryOut))
    pagination = Nested(PaginationOut)


class AccountQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    activities_page = Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    activities_per_page = Integer(load_default=50, validate=Range(min=1, max=MAX_PER_PAGE))
    kind = String(load_default=None, validate=OneOf([kind.value for kind in ActivityKind]))
    linked = Boolean(load_default=None, allow_none=True)


class OpportunityOut(Schema):
    id = Integer()
    external_id = String()
    name = String()
    stage = String(allow_none=True)
    amount = Float(allow_none=True)
    close_date = Date(allow_none=True)
    is_closed = Boolean()
    is_won = Boolean()


class AccountOut(Schema):
    id = Integer()
    source = String()
    external_id = String()
    name = String()
    industry = String(allow_none=True)
    annual_revenue = Float(allow_none=True)
    url = String(allow_none=True)
    owner = Nested(PersonOut, allow_none=True)
    opportunities = List(Nested(OpportunityOut))
    strategies = List(Nested(StrategyOut))
    activities = List(Nested(ActivityOut))
    activities_pagination = Nested(PaginationOut)


@bp.get("/accounts")
@bp.input(AccountsQuery, location="query")
@bp.output(AccountListOut)
@bp.doc(
    summary="List the accounts you may see",
    description="Most uncovered activity first (sort=priority), or by name, open pipeline or recent "
    "activity.",
    tags=["Accounts"],
    responses={401: READ_RESPONSES[401]},
)
def list_accounts(query_data: dict[str, Any]) -> dict[str, Any]:
    """List accounts with their figures and badges, filtered and paginated."""
    page = account_list(
        db.session,
        signed_in_user(),
        q=query_data["q"],
        owner_id=query_data["owner"],
        needs_strategy=query_data["needs_strategy"],
        sort=query_data["sort"],
        page=query_data["page"],
        per_page=query_data["per_page"],
    )
    return {
        "items": [
            {
                "id": row.id,
                "name": row.name,
                "owner": {"id": row.owner_id, "name": row.owner_name} if row.owner_id else None,
                "open_pipeline": float(row.open_pipeline),
                "recent_activities": row.recent_activities,
                "uncovered_recent": row.uncovered_recent,
                "has_active_strategy": row.has_active_strategy,
                "badges": row.badges,
            }
            for row in page.rows
        ],
        "pagination": pagination_dict(page),
    }


@bp.get("/accounts/<int:account_id>")
@bp.input(AccountQuery, location="query")
@bp.output(AccountOut)
@bp.doc(
    summary="Get an account with its activities and strategies",
    description="Activities newest first, paginated (at most 200 per page); deleted ones left out.",
    tags=["Accounts"],
    responses=READ_RESPONSES,
)
def get_account(account_id: int, query_data: dict[str, Any]) -> dict[str, Any]:
    """Get one account, its open opportunities, its strategies and a page of its activities."""
    with planning_errors():
        account = account_for_viewer(db.session, signed_in_user(), account_id)
    timeline = list_account_activities(
        db.session,
        account.id,
        kinds=[query_data["kind"]] if query_data["kind"] else None,
        linked=query_data["linked"],
        page=query_data["activities_page"],
        per_page=query_data["activities_per_page"],
    )
    strategies = db.session.scalars(
        select(Strategy).where(Strategy.account_id == account.id).order_by(Strategy.id)
    ).all()
    opportunities = account_opportunities(db.session, account.id)
    return {
        "id": account.id,
        "source": account.source,
        "external_id": account.external_id,
        "name": account.name,
        "industry": account.industry,
        "annual_revenue": float(account.annual_revenue) if account.annual_revenue is not None else None,
        "url": account.url,
        "owner": person_dict(account.owner),
        "opportunities": [
            {
                "id": item.id,
                "external_id": item.external_id,
                "name": item.name,
                "stage": item.stage,
                "amount": float(item.amount) if item.amount is not None else None,
                "close_date": item.close_date,
                "is_closed": item.is_closed,
                "is_won": item.is_won,
            }
            for item in opportunities
        ],
        "strategies": [strategy_dict(strategy) for strategy in strategies],
        "activities": [activity_dict(row) for row in timeline.rows],
        "activities_pagination": pagination_dict(timeline),
    }


class StrategyCreateIn(StrategyFieldsIn):
    pass


@bp.post("/accounts/<int:account_id>/strategies")
@bp.input(StrategyCreateIn, location="json")
@bp.output(StrategyResponse, status_code=201)
@bp.doc(
    summary="Write a new strategy for an account",
    description="Status defaults to draft. Activating needs an objective, an approach and a review date.",
    tags=["Strategies"],
    responses={
        **WRITE_RESPONSES,
        422: "Invalid fields, or the text reads like tactics (send activate_anyway)",
    },
)
def post_strategy(account_id: int, json_data: dict[str, Any]) -> dict[str, Any]:
    """Create a strategy (version 1) for the account; the account's owner or an admin may."""
    activate_anyway = json_data.pop("activate_anyway", False)
    with planning_errors():
        account = account_for_viewer(db.session, signed_in_user(), account_id)
        strategy = create_strategy(
            db.session, signed_in_user(), account, json_data, activate_anyway=activate_anyway
        )
        db.session.commit()
    return strategy_dict(strategy)
