"""API: dashboard figures for the caller's scope (their own accounts, their team's, or everyone's)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import DateTime, Float, Integer, List, Nested, String

from extensions import db
from planning.metrics import Figures, dashboard_figures
from web.api import bp
from web.api.strategies import READ_RESPONSES
from web.auth import signed_in_user


class FiguresOut(Schema):
    accounts = Integer()
    accounts_with_active_strategy = Integer()
    strategy_coverage = Float(
        allow_none=True, metadata={"description": "Share of accounts with an active strategy"}
    )
    pipeline_with_active_strategy = Float()
    pipeline_without_active_strategy = Float()
    recent_activities = Integer(metadata={"description": "Activities in the last 30 days"})
    covered_recent_activities = Integer(
        metadata={"description": "Of those, linked to an active/achieved strategy"}
    )
    activity_coverage = Float(allow_none=True)
    inbound = Integer(metadata={"description": "Inbound activities in the last 90 days"})
    outbound = Integer(metadata={"description": "Outbound activities in the last 90 days"})
    dialogue_ratio = Float(allow_none=True, metadata={"description": "Inbound per outbound activity"})


class OwnerFiguresOut(Schema):
    owner_id = Integer(allow_none=True)
    owner_name = String(allow_none=True)
    figures = Nested(FiguresOut)


class DashboardOut(Schema):
    as_of = DateTime()
    recent_days = Integer()
    dialogue_days = Integer()
    totals = Nested(FiguresOut)
    by_owner = List(Nested(OwnerFiguresOut))


def figures_dict(figures: Figures) -> dict[str, Any]:
    return {
        "accounts": figures.accounts,
        "accounts_with_active_strategy": figures.accounts_with_active_strategy,
        "strategy_coverage": figures.strategy_coverage,
        "pipeline_with_active_strategy": float(figures.pipeline_with_active_strategy),
        "pipeline_without_active_strategy": float(figures.pipeline_without_active_strategy),
        "recent_activities": figures.recent_activities,
        "covered_recent_activities": figures.covered_recent_activities,
        "activity_coverage": figures.activity_coverage,
        "inbound": figures.inbound,
        "outbound": figures.outbound,
        "dialogue_ratio": figures.dialogue_ratio,
    }


@bp.get("/dashboard")
@bp.output(DashboardOut)
@bp.doc(
    summary="Dashboard figures for your scope",
    description="Strategy coverage, pipeline with and without an active strategy, dialogue ratio.",
    tags=["Dashboard"],
    responses={401: READ_RESPONSES[401]},
)
def get_dashboard() -> dict[str, Any]:
    """Return the figures over the accounts you may see, in total and by owner."""
    dashboard = dashboard_figures(db.session, signed_in_user())
    return {
        "as_of": dashboard.as_of,
        "recent_days": dashboard.recent_days,
        "dialogue_days": dashboard.dialogue_days,
        "totals": figures_dict(dashboard.totals),
        "by_owner": [
            {"owner_id": item.owner_id, "owner_name": item.owner_name, "figures": figures_dict(item.figures)}
            for item in dashboard.by_owner
        ],
    }
