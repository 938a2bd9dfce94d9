from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask_login import current_user, login_required
from sqlalchemy import select

from app import create_app
from extensions import db as _db
from planning.models import ApiToken
from planning.users import hash_token, issue_api_token, set_password
from tests.factories import utc
from web.auth import installed_nav, safe_next, user_for_api_token

PASSWORD = "correct horse battery"


def _sign_in(client, email: str, password: str, next_url: str | None = None):
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data)


def test_the_root_sends_people_to_their_accounts_and_anonymous_people_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.location == "/accounts"
    response = client.get("/accounts")
    assert response.status_code == 302
    assert response.location == "/login?next=/accounts"


def test_an_anonymous_visit_keeps_the_page_and_its_query_as_next(client):
    response = client.get("/accounts?q=anvil&sort=pipeline")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    follow = client.get(response.location)
    assert 'value="/accounts?q=anvil&amp;sort=pipeline"' in follow.get_data(as_text=True)


def test_the_demo_sign_in_lists_users_grouped_as_vp_managers_reps_and_admins(client, org):
    html = client.get("/login").get_data(as_text=True)
    assert "Demo: sign in as" in html
    titles = re.findall(r'<h3 class="demo-group-title">(\w+)</h3>', html)
    assert titles == ["VP", "Managers", "Reps", "Admins"]
    vp_section = html.split(">VP</h3>")[1].split("</ul>")[0]
    assert "Vera Park" in vp_section and "Eli East" not in vp_section
    reps_section = html.split(">Reps</h3>")[1].split("</ul>")[0]
    assert {"Ann Archer", "Amir Aziz", "Bob Brand"} <= set(
        re.findall(r'demo-user-name">([^<]+)<', reps_section)
    )
    assert f'action="/login/demo/{org.ann.id}"' in html


def test_one_click_demo_sign_in_signs_in_as_that_user(client, org):
    response = client.post(f"/login/demo/{org.ann.id}")
    assert response.status_code == 302
    assert response.location == "/accounts"
    page = client.get("/accounts").get_data(as_text=True)
    assert "Ann Archer" in page
    assert "Anvil Works" in page


def test_demo_sign_in_is_hidden_and_refused_when_the_source_is_not_the_demo(app, client, org):
    app.config["STRATLINK_SOURCE"] = "salesforce"
    html = client.get("/login").get_data(as_text=True)
    assert "Demo: sign in as" not in html
    assert "/login/demo/" not in html
    assert client.post(f"/login/demo/{org.ann.id}").status_code == 404
    assert client.get("/accounts").status_code == 302  # still signed out


def test_demo_sign_in_for_an_unknown_or_deactivated_user_is_not_found(client, db, org):
    org.bob.active = False
    db.flush()
    assert client.post("/login/demo/999999").status_code == 404
    assert client.post("/login/demo/70368744177665").status_code == 404
    assert client.post(f"/login/demo/{org.bob.id}").status_code == 404


def test_the_right_password_signs_in_and_follows_a_local_next(client, db, org):
    set_password(org.ann, PASSWORD)
    db.flush()
    response = _sign_in(client, "Ann@Example.com ", PASSWORD, next_url=f"/accounts/{org.ann_account.id}")
    assert response.status_code == 302
    assert response.location == f"/accounts/{org.ann_account.id}"
    assert client.get(f"/accounts/{org.ann_account.id}").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@example.com", "wrong password"), ("nobody@example.com", PASSWORD), ("ann@example.com", "")],
)
def test_a_wrong_email_or_password_gets_one_generic_message(client, db, org, email, password):
    set_password(org.ann, PASSWORD)
    db.flush()
    response = _sign_in(client, email, password)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    if password:
        assert "Wrong email or password." in html
    assert "nobody@example.com" not in html.replace('value="nobody@example.com"', "")
    assert client.get("/accounts").status_code == 302


def test_a_deactivated_user_cannot_sign_in_with_the_right_password(client, db, org):
    set_password(org.ann, PASSWORD)
    org.ann.active = False
    db.flush()
    response = _sign_in(client, "ann@example.com", PASSWORD)
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/accounts").status_code == 302


def test_a_deactivated_user_loses_a_session_they_already_had(client, db, org, login_as):
    login_as(org.ann)
    assert client.get("/accounts").status_code == 200
    org.ann.active = False
    db.flush()
    assert client.get("/accounts").status_code == 302


def test_passwords_are_stored_as_salted_hashes_and_short_ones_are_refused(org):
    set_password(org.ann, PASSWORD)
    set_password(org.amir, PASSWORD)
    assert org.ann.password_hash and PASSWORD not in org.ann.password_hash
    assert org.ann.password_hash != org.amir.password_hash
    with pytest.raises(ValueError, match="at least 8"):
        set_password(org.bob, "short")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/accounts\r\nLocation: https://evil.example",
        "accounts",
        "",
    ],
)
def test_next_refuses_anything_but_a_local_path(client, db, org, target):
    assert safe_next(target) is None
    set_password(org.ann, PASSWORD)
    db.flush()
    response = _sign_in(client, "ann@example.com", PASSWORD, next_url=target)
    assert response.status_code == 302
    assert response.location == "/accounts"


def test_next_refuses_an_off_site_target_on_demo_sign_in_too(client, org):
    response = client.post(f"/login/demo/{org.ann.id}", data={"next": "https://evil.example/"})
    assert response.location == "/accounts"


@pytest.mark.parametrize("target", ["/accounts", "/accounts/12?page=2", "/reviews/3"])
def test_next_accepts_a_local_path(target):
    assert safe_next(target) == target


def test_signing_out_takes_a_post_and_ends_the_session(client, org, login_as):
    login_as(org.ann)
    assert client.get("/logout").status_code == 405
    assert client.get("/accounts").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302
    assert response.location == "/login"
    assert client.get("/accounts").status_code == 302


def test_a_signed_in_user_visiting_sign_in_goes_to_their_accounts(client, org, login_as):
    login_as(org.ann)
    response = client.get("/login")
    assert response.status_code == 302
    assert response.location == "/accounts"


def test_the_header_shows_the_user_their_role_the_nav_and_a_sign_out_button(client, org, login_as):
    login_as(org.vp)
    html = client.get("/accounts").get_data(as_text=True)
    assert '<a href="/accounts" aria-current="page">Accounts</a>' in html
    assert "Vera Park" in html
    assert '<span class="signed-in-role">VP</span>' in html
    assert 'action="/logout"' in html


def test_nav_links_appear_only_for_paths_an_installed_view_serves():
    app = Flask("nav_test")
    app.add_url_rule("/accounts", "accounts_index", lambda: "")
    app.add_url_rule("/reviews/", "reviews_latest", lambda: "")
    app.add_url_rule("/admin", "admin_post_only", lambda: "", methods=["POST"])
    links = [(label, path) for label, path, _ in installed_nav(app)]
    assert links == [("Accounts", "/accounts"), ("Review", "/reviews/")]


# --- API bearer tokens ---------------------------------------------------------------------------


@pytest.fixture
def whoami(app):
    """A test-only API route that tells who the caller is."""

    @login_required
    def view() -> dict[str, Any]:
        return {"email": current_user.email}

    app.add_url_rule("/api/test-whoami", "test_whoami", view)
    return "/api/test-whoami"


def test_a_valid_bearer_token_authenticates_an_api_call(client, db, org, whoami):
    token = issue_api_token(db, org.ann)
    response = client.get(whoami, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json == {"email": "ann@example.com"}
    # A token signs in only the call that carries it: no session cookie is handed out.
    assert "Set-Cookie" not in response.headers
    assert client.get(whoami).status_code == 401


def test_a_bearer_token_does_not_sign_in_to_the_pages(client, db, org):
    token = issue_api_token(db, org.ann)

    response = client.get("/accounts", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert client.get("/api/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Bearer ", "Basic YW5uOnB3", None])
def test_a_missing_or_bad_bearer_token_gets_a_json_401(client, db, org, whoami, header):
    issue_api_token(db, org.ann)
    headers = {"Authorization": header} if header is not None else {}
    response = client.get(whoami, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.json["error"]["message"]


def test_a_deactivated_users_token_no_longer_works(client, db, org, whoami):
    token = issue_api_token(db, org.ann)
    org.ann.active = False
    db.flush()
    assert client.get(whoami, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_only_the_tokens_sha256_is_stored(db, org):
    token = issue_api_token(db, org.ann)
    stored = db.scalars(select(ApiToken.token_hash)).one()
    assert stored == hash_token(token)
    assert token not in stored and len(stored) == 64


def test_token_use_is_recorded_at_most_once_a_minute(db, org):
    token = issue_api_token(db, org.ann)
    first = utc(2026, 11, 2, 9, 0, 0)
    assert user_for_api_token(db, token, now=first) == org.ann
    assert db.scalars(select(ApiToken.last_used_at)).one() == first
    user_for_api_token(db, token, now=first + timedelta(seconds=30))
    assert db.scalars(select(ApiToken.last_used_at)).one() == first
    later = first + timedelta(seconds=61)
    user_for_api_token(db, token, now=later)
    assert db.scalars(select(ApiToken.last_used_at)).one() == later


def test_the_openapi_document_stays_public(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json["info"]["title"] == "StratLink API"


# --- CSRF ----------------------------------------------------------------------------------------


@pytest.fixture
def csrf_app(app, db) -> Iterator[Flask]:
    """An app on the same database with CSRF protection on, as in production."""
    db.commit()  # the second app has its own session: it sees committed rows only
    protected = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "SECRET_KEY": "csrf-test-secret",
            "WTF_CSRF_ENABLED": True,
            "STRATLINK_SOURCE": "demo",
        }
    )
    yield protected
    with protected.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_the_sign_in_form_is_refused_without_its_csrf_token(csrf_app, db, org):
    set_password(org.ann, PASSWORD)
    db.commit()
    client = csrf_app.test_client()
    refused = client.post("/login", data={"email": "ann@example.com", "password": PASSWORD})
    assert refused.status_code == 400
    assert "Your form expired" in refused.get_data(as_text=True)
    assert client.post(f"/login/demo/{org.ann.id}").status_code == 400

    token = _csrf_token(client.get("/login").get_data(as_text=True))
    accepted = client.post(
        "/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert accepted.status_code == 302
    assert accepted.location == "/accounts"


def test_signing_out_is_refused_without_a_csrf_token(csrf_app, db, org):
    db.commit()
    client = csrf_app.test_client()
    login_page = client.get("/login").get_data(as_text=True)
    demo_token = _csrf_token(login_page)
    assert client.post(f"/login/demo/{org.ann.id}", data={"csrf_token": demo_token}).status_code == 302
    assert client.post("/logout").status_code == 400
    assert client.get("/accounts").status_code == 200
