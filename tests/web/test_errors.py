from __future__ import annotations

import pytest
from flask import abort


@pytest.fixture
def failing_routes(app):
    """Test-only routes that fail the way a bug or an abort would."""

    def broken_page() -> str:
        raise RuntimeError("secret-internal-detail")

    def conflict_page() -> str:
        abort(409)

    app.add_url_rule("/test-broken", "test_broken", broken_page)
    app.add_url_rule("/api/test-broken", "test_api_broken", broken_page)
    app.add_url_rule("/test-conflict", "test_conflict", conflict_page)
    # Production never propagates exceptions; TESTING does, so turn it off to see the real page.
    app.config["PROPAGATE_EXCEPTIONS"] = False


def _is_html(response) -> bool:
    return response.mimetype == "text/html" and response.get_data(as_text=True).lstrip().startswith(
        "<!doctype"
    )


def test_an_unknown_page_gets_an_html_404_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert _is_html(response)
    assert "Not found" in response.get_data(as_text=True)


def test_an_unknown_api_path_gets_a_json_404(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.is_json
    assert response.json["error"]["code"] == "not_found"
    assert response.json["error"]["message"]


def test_a_wrong_method_gets_a_405_page_or_json_with_the_allowed_methods(client):
    page = client.get("/logout")
    assert page.status_code == 405 and _is_html(page)
    assert "POST" in page.headers["Allow"]
    api = client.post("/api/openapi.json")
    assert api.status_code == 405
    assert api.json["error"]["code"] == "method_not_allowed"
    assert "GET" in api.headers["Allow"]


def test_a_forbidden_account_gets_an_html_403_page(client, org, login_as):
    login_as(org.ann)
    response = client.get(f"/accounts/{org.bob_account.id}")
    assert response.status_code == 403 and _is_html(response)
    assert "Not yours to see" in response.get_data(as_text=True)


def test_a_body_over_the_size_limit_gets_a_413_page(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/login", data={"email": "a@example.com", "password": "x" * 5000})
    assert response.status_code == 413 and _is_html(response)
    assert "larger than StratLink accepts" in response.get_data(as_text=True)


def test_a_status_without_its_own_text_still_gets_a_page(client, failing_routes):
    response = client.get("/test-conflict")
    assert response.status_code == 409 and _is_html(response)


def test_a_bug_gets_a_500_page_without_a_traceback(client, failing_routes):
    response = client.get("/test-broken")
    assert response.status_code == 500 and _is_html(response)
    html = response.get_data(as_text=True)
    assert "Something went wrong" in html
    assert "secret-internal-detail" not in html
    assert "Traceback" not in html and "RuntimeError" not in html


def test_a_bug_under_the_api_gets_a_json_500_without_details(client, failing_routes):
    response = client.get("/api/test-broken")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "server_error"
    assert "secret-internal-detail" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/login", "/no-such-page", "/accounts"])
def test_pages_and_error_pages_refuse_to_be_framed(client, path):
    response = client.get(path)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
