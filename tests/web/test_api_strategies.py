"""The JSON API for accounts, strategies, links, comments and the dashboard, as a client uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from planning.models import Direction, Role, User
from planning.users import issue_api_token
from tests.factories import make_account, make_activity, make_opportunity, make_strategy, make_user

NOW = datetime.now(UTC)
GOOD = {
    "objective": "Their plant runs a second shift without new hires",
    "approach": "Prove the scheduling pilot on line 2, then take the numbers to the COO",
    "review_date": "2027-01-15",
}


class Api:
    """A test client that sends one user's bearer token."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Any:
        def call(path: str, **kwargs: Any) -> Any:
            return getattr(self.client, method)(path, headers=self.headers, **kwargs)

        return call


@pytest.fixture
def org(db: Session) -> dict[str, Any]:
    vp = make_user(db, role=Role.MANAGER, name="Vera VP")
    manager = make_user(db, role=Role.MANAGER, manager=vp, name="Max Manager")
    rep = make_user(db, role=Role.REP, manager=manager, name="Rita Rep")
    other = make_user(db, role=Role.REP, manager=vp, name="Omar Other")
    return {
        "vp": vp,
        "manager": manager,
        "rep": rep,
        "other": other,
        "acme": make_account(db, owner=rep, name="Acme Corp"),
        "globex": make_account(db, owner=rep, name="Globex"),
        "initech": make_account(db, owner=other, name="Initech"),
    }


@pytest.fixture
def as_user(db: Session, client: FlaskClient) -> Any:
    def sign(user: User) -> Api:
        token = issue_api_token(db, user)
        db.commit()
        return Api(client, token)

    return sign


def test_accounts_list_is_scoped_filtered_and_paginated(
    db: Session, org: dict[str, Any], as_user: Any
) -> None:
    for day in range(3):
        make_activity(db, account=org["globex"], occurred_at=NOW - timedelta(days=day + 1))
    make_strategy(db, account=org["acme"])

    rep = as_user(org["rep"])
    listed = rep.get("/api/accounts").get_json()
    assert [item["name"] for item in listed["items"]] == ["Globex", "Acme Corp"]
    assert listed["items"][0]["badges"] == ["no_strategy"] and listed["items"][0]["uncovered_recent"] == 3
    assert listed["pagination"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}
    assert [i["name"] for i in rep.get("/api/accounts?needs_strategy=true").get_json()["items"]] == ["Globex"]
    assert [i["name"] for i in rep.get("/api/accounts?q=acm").get_json()["items"]] == ["Acme Corp"]
    second = rep.get("/api/accounts?per_page=1&page=2&sort=name").get_json()
    assert [i["name"] for i in second["items"]] == ["Globex"] and second["pagination"]["pages"] == 2

    vp = as_user(org["vp"])
    assert vp.get("/api/accounts").get_json()["pagination"]["total"] == 3
    mine = vp.get(f"/api/accounts?owner={org['other'].id}").get_json()
    assert [i["name"] for i in mine["items"]] == ["Initech"]

    too_many = rep.get("/api/accounts?per_page=201")
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["code"] == "invalid"


def test_one_account_comes_with_its_activities_and_strategies(
    db: Session, org: dict[str, Any], as_user: Any
) -> None:
    acme = org["acme"]
    for hours in range(5):
        make_activity(db, account=acme, occurred_at=NOW - timedelta(hours=hours + 1), subject=f"Call {hours}")
    make_activity(db, account=acme, occurred_at=NOW, deleted=True)
    make_opportunity(db, account=acme, amount=50_000, name="Expansion")
    make_strategy(db, account=acme)
    rep = as_user(org["rep"])

    body = rep.get(f"/api/accounts/{acme.id}?activities_per_page=2").get_json()

    assert body["name"] == "Acme Corp" and body["owner"]["name"] == "Rita Rep"
    assert [a["subject"] for a in body["activities"]] == ["Call 0", "Call 1"]
    assert body["activities_pagination"]["total"] == 5
    assert [s["status"] for s in body["strategies"]] == ["active"]
    assert body["opportunities"][0]["amount"] == 50_000.0
    assert rep.get("/api/accounts/999999").status_code == 404
    forbidden = rep.get(f"/api/accounts/{org['initech'].id}")
    assert forbidden.status_code == 403 and forbidden.get_json()["error"]["code"] == "forbidden"


def test_a_rep_creates_then_updates_a_strategy_and_a_stale_update_gets_409(
    org: dict[str, Any], as_user: Any
) -> None:
    rep = as_user(org["rep"])
    created = rep.post(f"/api/accounts/{org['acme'].id}/strategies", json=GOOD)
    assert created.status_code == 201
    strategy = created.get_json()
    assert (strategy["status"], strategy["version"]) == ("draft", 1)

    activated = rep.patch(f"/api/strategies/{strategy['id']}", json={"version": 1, "status": "active"})
    assert activated.status_code == 200 and activated.get_json()["version"] == 2

    stale = rep.patch(f"/api/strategies/{strategy['id']}", json={"version": 1, "approach": "Something else"})
    assert stale.status_code == 409
    error = stale.get_json()["error"]
    assert error["code"] == "stale_version"
    assert error["detail"]["current_version"] == 2
    assert error["detail"]["current"]["status"] == "active"

    revisions = rep.get(f"/api/strategies/{strategy['id']}/revisions").get_json()
    assert [r["version"] for r in revisions["items"]] == [2, 1]
    assert revisions["items"][0]["changed_fields"] == ["status"]
    assert revisions["items"][0]["author"]["id"] == org["rep"].id


def test_bad_input_gets_a_json_422_naming_each_field(org: dict[str, Any], as_user: Any) -> None:
    rep = as_user(org["rep"])
    path = f"/api/accounts/{org['acme'].id}/strategies"

    wrong_types = rep.post(path, json={"review_date": "soon", "status": "paused", "opportunity_id": 1.5})
    assert wrong_types.status_code == 422
    assert set(wrong_types.get_json()["error"]["detail"]["json"]) == {
        "review_date",
        "status",
        "opportunity_id",
    }

    incomplete = rep.post(path, json={"status": "active"})
    assert incomplete.status_code == 422
    assert set(incomplete.get_json()["error"]["detail"]["json"]) == {"objective", "approach", "review_date"}

    created = rep.post(path, json=GOOD).get_json()
    float_version = rep.patch(f"/api/strategies/{created['id']}", json={"version": 1.0, "objective": "x"})
    assert float_version.status_code == 422
    not_json = rep.patch(f"/api/strategies/{created['id']}", data="{", content_type="application/json")
    assert 400 <= not_json.status_code < 500


def test_activating_a_tactics_list_is_refused_until_confirmed(org: dict[str, Any], as_user: Any) -> None:
    rep = as_user(org["rep"])
    tactics = {
        "objective": "Call the CFO, send the proposal",
        "approach": "Book a demo and follow up",
        "review_date": "2027-01-15",
        "status": "active",
    }

    refused = rep.post(f"/api/accounts/{org['acme'].id}/strategies", json=tactics)
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "reads_like_tactics"
    assert "Call the CFO" in error["detail"]["tactic_phrases"]

    for not_a_boolean in ("yes", "true", "on"):  # JSON has true and false; a string is a client's mistake
        loose = rep.post(
            f"/api/accounts/{org['acme'].id}/strategies", json={**tactics, "activate_anyway": not_a_boolean}
        )
        assert loose.status_code == 422
        assert "activate_anyway" in str(loose.get_json()["error"])
    confirmed = rep.post(
        f"/api/accounts/{org['acme'].id}/strategies", json={**tactics, "activate_anyway": True}
    )
    assert confirmed.status_code == 201
    assert confirmed.get_json()["tactics"]["reads_like_tactics"] is True


def test_linking_and_unlinking_activities(db: Session, org: dict[str, Any], as_user: Any) -> None:
    strategy = make_strategy(db, account=org["acme"])
    calls = [
        make_activity(db, account=org["acme"], occurred_at=NOW - timedelta(days=d + 1)) for d in range(3)
    ]
    foreign = make_activity(db, account=org["globex"], occurred_at=NOW)
    rep = as_user(org["rep"])
    path = f"/api/strategies/{strategy.id}/links"

    linked = rep.post(path, json={"activity_ids": [call.id for call in calls]})
    assert linked.status_code == 200
    assert linked.get_json()["linked_activity_ids"] == sorted(call.id for call in calls)

    refused = rep.post(path, json={"activity_ids": [foreign.id]})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["detail"]["activity_ids"] == {
        str(foreign.id): "belongs to another account"
    }

    unlinked = rep.delete(path, json={"activity_ids": [calls[0].id]})
    assert unlinked.get_json()["unlinked"] == [calls[0].id]
    assert rep.get(f"/api/strategies/{strategy.id}").get_json()["linked_activity_ids"] == sorted(
        call.id for call in calls[1:]
    )
    assert rep.post(path, json={"activity_ids": []}).status_code == 422


def test_suggestions_list_activities_on_the_targeted_opportunity(
    db: Session, org: dict[str, Any], as_user: Any
) -> None:
    opportunity = make_opportunity(db, account=org["acme"])
    strategy = make_strategy(db, account=org["acme"], opportunity_id=opportunity.id)
    on_deal = make_activity(
        db, account=org["acme"], occurred_at=NOW - timedelta(days=1), opportunity_id=opportunity.id
    )
    rep = as_user(org["rep"])

    items = rep.get(f"/api/strategies/{strategy.id}/suggestions").get_json()["items"]

    assert [item["activity"]["id"] for item in items] == [on_deal.id]
    assert items[0]["on_opportunity"] is True


def test_a_manager_reads_and_comments_but_cannot_write(
    db: Session, org: dict[str, Any], as_user: Any
) -> None:
    strategy = make_strategy(db, account=org["acme"])
    manager = as_user(org["manager"])

    assert manager.get(f"/api/strategies/{strategy.id}").status_code == 200
    assert (
        manager.patch(f"/api/strategies/{strategy.id}", json={"version": 1, "objective": "x"}).status_code
        == 403
    )
    commented = manager.post(
        f"/api/strategies/{strategy.id}/comments", json={"body": "Which line goes first?"}
    )
    assert commented.status_code == 201
    comments = manager.get(f"/api/strategies/{strategy.id}/comments").get_json()["items"]
    assert [(c["author"]["name"], c["body"]) for c in comments] == [("Max Manager", "Which line goes first?")]


def test_the_dashboard_reports_coverage_pipeline_and_dialogue(
    db: Session, org: dict[str, Any], as_user: Any
) -> None:
    make_strategy(db, account=org["acme"])
    make_opportunity(db, account=org["acme"], amount=40_000)
    make_opportunity(db, account=org["globex"], amount=10_000)
    make_activity(db, account=org["acme"], occurred_at=NOW - timedelta(days=1), direction=Direction.INBOUND)
    make_activity(
        db, account=org["globex"], occurred_at=NOW - timedelta(days=1), direction=Direction.OUTBOUND
    )
    make_activity(
        db, account=org["globex"], occurred_at=NOW - timedelta(days=2), direction=Direction.OUTBOUND
    )

    totals = as_user(org["manager"]).get("/api/dashboard").get_json()["totals"]

    assert (totals["accounts"], totals["accounts_with_active_strategy"]) == (2, 1)
    assert (totals["pipeline_with_active_strategy"], totals["pipeline_without_active_strategy"]) == (
        40_000,
        10_000,
    )
    assert (totals["inbound"], totals["outbound"], totals["dialogue_ratio"]) == (1, 2, 0.5)


def test_cookie_sessions_need_the_csrf_header_to_write(app: Any, org: dict[str, Any], login_as: Any) -> None:
    client = login_as(org["rep"])
    path = f"/api/accounts/{org['acme'].id}/strategies"

    refused = client.post(path, json=GOOD)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"

    with client.session_transaction() as session:
        session["csrf_token"] = "raw-token"
    signed = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token").dumps("raw-token")
    assert client.post(path, json=GOOD, headers={"X-CSRFToken": signed}).status_code == 201
    assert client.get("/api/accounts").status_code == 200


def test_anonymous_callers_get_a_json_401(client: FlaskClient) -> None:
    response = client.get("/api/accounts")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
