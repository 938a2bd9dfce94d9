"""Who may do what: every strategy/link/account API route and page, for six kinds of caller.

The callers: anonymous; the rep who owns the account; another rep; the rep's manager; another
manager (a peer under the same VP); an admin. The rule: an unknown id is 404, an account outside
your scope is 403, a read-only caller (a manager) writing is 403 — except comments, which managers
may leave. Anonymous API calls get 401; anonymous page visits are sent to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from planning.models import Role, Strategy, User
from planning.strategies import create_strategy
from planning.users import issue_api_token
from tests.factories import make_account, make_activity, make_user

ROLES = ("anonymous", "rep", "other_rep", "manager", "other_manager", "admin")
NOW = datetime.now(UTC)


@dataclass
class Org:
    users: dict[str, User]
    account_id: int
    strategy_id: int
    activity_id: int

    def version(self, db: Session) -> int:
        db.expire_all()
        strategy = db.get(Strategy, self.strategy_id)
        assert strategy is not None
        return strategy.version


@pytest.fixture
def org(db: Session) -> Org:
    vp = make_user(db, role=Role.MANAGER, name="VP")
    manager = make_user(db, role=Role.MANAGER, manager=vp, name="Manager")
    other_manager = make_user(db, role=Role.MANAGER, manager=vp, name="Other manager")
    rep = make_user(db, role=Role.REP, manager=manager, name="Rep")
    other_rep = make_user(db, role=Role.REP, manager=other_manager, name="Other rep")
    admin = make_user(db, role=Role.ADMIN, name="Admin")
    account = make_account(db, owner=rep)
    make_account(db, owner=other_rep)
    activity = make_activity(db, account=account, occurred_at=NOW - timedelta(days=1))
    strategy = create_strategy(
        db,
        rep,
        account,
        {
            "objective": "Their line 2 runs a second shift",
            "approach": "Pilot first",
            "review_date": "2027-01-15",
        },
    )
    db.commit()
    users = {
        "rep": rep,
        "other_rep": other_rep,
        "manager": manager,
        "other_manager": other_manager,
        "admin": admin,
    }
    return Org(users, account.id, strategy.id, activity.id)


Body = Callable[[Org, Session, str], dict[str, Any] | None]


def _none(org: Org, db: Session, role: str) -> None:
    return None


def _new_strategy(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {"objective": f"Written by {role}"}


def _edit(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {"version": org.version(db), "objective": f"Edited by {role}"}


def _activities(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {"activity_ids": [org.activity_id]}


def _comment(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {"body": f"A remark from {role}"}


def _expect(
    *, anonymous: int, rep: int, other_rep: int, manager: int, other_manager: int, admin: int
) -> dict[str, int]:
    return {
        "anonymous": anonymous,
        "rep": rep,
        "other_rep": other_rep,
        "manager": manager,
        "other_manager": other_manager,
        "admin": admin,
    }


# Every API route of accounts, strategies, links, comments and the dashboard, with its expected statuses.
READ_EVERYONE = _expect(anonymous=401, rep=200, other_rep=200, manager=200, other_manager=200, admin=200)
READ_SCOPED = _expect(anonymous=401, rep=200, other_rep=403, manager=200, other_manager=403, admin=200)
WRITE = _expect(anonymous=401, rep=200, other_rep=403, manager=403, other_manager=403, admin=200)
CREATE = _expect(anonymous=401, rep=201, other_rep=403, manager=403, other_manager=403, admin=201)
COMMENT = _expect(anonymous=401, rep=201, other_rep=403, manager=201, other_manager=403, admin=201)

API_MATRIX: list[tuple[str, str, Body, dict[str, int]]] = [
    ("GET", "/api/accounts", _none, READ_EVERYONE),
    ("GET", "/api/accounts/{account_id}", _none, READ_SCOPED),
    ("POST", "/api/accounts/{account_id}/strategies", _new_strategy, CREATE),
    ("GET", "/api/strategies/{strategy_id}", _none, READ_SCOPED),
    ("PATCH", "/api/strategies/{strategy_id}", _edit, WRITE),
    ("GET", "/api/strategies/{strategy_id}/revisions", _none, READ_SCOPED),
    ("GET", "/api/strategies/{strategy_id}/comments", _none, READ_SCOPED),
    ("POST", "/api/strategies/{strategy_id}/comments", _comment, COMMENT),
    ("GET", "/api/strategies/{strategy_id}/suggestions", _none, READ_SCOPED),
    ("POST", "/api/strategies/{strategy_id}/links", _activities, WRITE),
    ("DELETE", "/api/strategies/{strategy_id}/links", _activities, WRITE),
    ("GET", "/api/dashboard", _none, READ_EVERYONE),
]
# Routes under /api owned by other parts of the app, with their own tests.
NOT_IN_THIS_MATRIX = ("/api/reviews", "/api/openapi.json", "/api/docs")


def _url(template: str, org: Org) -> str:
    return template.format(account_id=org.account_id, strategy_id=org.strategy_id)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "template", "body", "expected"),
    API_MATRIX,
    ids=[f"{method} {template}" for method, template, _, _ in API_MATRIX],
)
def test_api_answers_each_caller_as_the_matrix_says(
    db: Session,
    client: FlaskClient,
    org: Org,
    role: str,
    method: str,
    template: str,
    body: Body,
    expected: dict[str, int],
) -> None:
    headers = {}
    if role != "anonymous":
        headers["Authorization"] = f"Bearer {issue_api_token(db, org.users[role])}"
        db.commit()

    response = client.open(_url(template, org), method=method, json=body(org, db, role), headers=headers)

    assert response.status_code == expected[role], response.get_json()
    if response.status_code >= 400:
        assert response.get_json()["error"]["code"]


def test_unknown_ids_are_404_for_everyone_signed_in(db: Session, client: FlaskClient, org: Org) -> None:
    headers = {"Authorization": f"Bearer {issue_api_token(db, org.users['admin'])}"}
    db.commit()
    for method, template, body, _ in API_MATRIX:
        if "{" not in template:
            continue
        url = template.format(account_id=987654, strategy_id=987654)
        response = client.open(url, method=method, json=body(org, db, "admin"), headers=headers)
        assert response.status_code == 404, (method, url)


def test_the_matrix_covers_every_api_route_and_method(app: Any) -> None:
    routes = {
        (method, rule.rule.replace("<int:", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and not rule.rule.startswith(NOT_IN_THIS_MATRIX)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, template) for method, template, _, _ in API_MATRIX}


# --- pages ------------------------------------------------------------------------------------------
# Statuses for pages; "login" means a redirect to the sign-in page, 302 a redirect after a done write.
PAGE_READ_EVERYONE = _expect(anonymous=0, rep=200, other_rep=200, manager=200, other_manager=200, admin=200)
PAGE_READ_SCOPED = _expect(anonymous=0, rep=200, other_rep=403, manager=200, other_manager=403, admin=200)
PAGE_EDITOR = _expect(anonymous=0, rep=200, other_rep=403, manager=403, other_manager=403, admin=200)
PAGE_WRITE = _expect(anonymous=0, rep=302, other_rep=403, manager=403, other_manager=403, admin=302)
PAGE_COMMENT = _expect(anonymous=0, rep=302, other_rep=403, manager=302, other_manager=403, admin=302)
LOGIN = 0


def _form_edit(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {
        "version": org.version(db),
        "objective": f"Edited by {role}",
        "approach": "Pilot first",
        "review_date": "2027-01-15",
        "status": "draft",
    }


def _form_link(org: Org, db: Session, role: str) -> dict[str, Any]:
    return {"strategy_id": org.strategy_id, "activity_ids": [org.activity_id], "action": "link"}


PAGE_MATRIX: list[tuple[str, str, Body, dict[str, int]]] = [
    ("GET", "/accounts", _none, PAGE_READ_EVERYONE),
    ("GET", "/accounts/{account_id}", _none, PAGE_READ_SCOPED),
    ("GET", "/accounts/{account_id}/strategies/new", _none, PAGE_EDITOR),
    ("POST", "/accounts/{account_id}/strategies/new", _new_strategy, PAGE_WRITE),
    ("GET", "/strategies/{strategy_id}", _none, PAGE_READ_SCOPED),
    ("GET", "/strategies/{strategy_id}/edit", _none, PAGE_EDITOR),
    ("POST", "/strategies/{strategy_id}/edit", _form_edit, PAGE_WRITE),
    ("GET", "/strategies/{strategy_id}/history", _none, PAGE_READ_SCOPED),
    ("POST", "/accounts/{account_id}/links", _form_link, PAGE_WRITE),
    ("POST", "/strategies/{strategy_id}/suggestions/{activity_id}/accept", _none, PAGE_WRITE),
    ("POST", "/strategies/{strategy_id}/unlink/{activity_id}", _none, PAGE_WRITE),
    ("POST", "/strategies/{strategy_id}/comments", _comment, PAGE_COMMENT),
    ("GET", "/dashboard", _none, PAGE_READ_EVERYONE),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "template", "body", "expected"),
    PAGE_MATRIX,
    ids=[f"{method} {template}" for method, template, _, _ in PAGE_MATRIX],
)
def test_pages_answer_each_caller_as_the_matrix_says(
    db: Session,
    client: FlaskClient,
    login_as: Any,
    org: Org,
    role: str,
    method: str,
    template: str,
    body: Body,
    expected: dict[str, int],
) -> None:
    if role != "anonymous":
        login_as(org.users[role])
    url = template.format(account_id=org.account_id, strategy_id=org.strategy_id, activity_id=org.activity_id)

    response = client.open(url, method=method, data=body(org, db, role))

    if expected[role] == LOGIN:
        assert response.status_code == 302 and response.location.startswith("/login"), response.location
    else:
        assert response.status_code == expected[role]
        if response.status_code == 302:
            assert not response.location.startswith("/login")


def test_the_page_matrix_covers_every_strategy_page(app: Any) -> None:
    routes = {
        (method, rule.rule.replace("<int:", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("strategies.", "accounts."))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, template) for method, template, _, _ in PAGE_MATRIX}
