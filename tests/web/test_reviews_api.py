"""The reviews API: run one (managers and admins), the latest, one by id; findings scoped to the caller."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from planning.models import Review
from planning.review import run_review
from planning.users import issue_api_token
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy, utc


@pytest.fixture
def bearer(db, client):
    """Return a function giving request headers that authenticate as a user with an API token."""

    def headers_for(user):
        token = issue_api_token(db, user)
        db.commit()
        return {"Authorization": f"Bearer {token}"}

    return headers_for


@pytest.fixture
def scenario(db, org):
    """Ann's Anvil Works piles up tactics; Bob's Bluebird has an unlinked week; Amir's plan is overdue."""
    for _ in range(5):
        make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 20))
    make_activity(db, account=org.ann_account, kind="contract", occurred_at=utc(2026, 10, 10, 9, 30))
    make_opportunity(db, account=org.ann_account, amount=45000)
    plan = make_strategy(db, account=org.bob_account)
    link(db, plan, make_activity(db, account=org.bob_account, occurred_at=utc(2026, 10, 2)))
    for _ in range(5):
        make_activity(db, account=org.bob_account, kind="email", occurred_at=utc(2026, 10, 25))
    make_strategy(db, account=org.amir_account, review_date=date(2026, 9, 1))
    db.commit()


def names(body):
    return sorted(finding["account"]["name"] for finding in body["findings"])


def test_a_review_reads_as_the_design_contract_says(db, client, bearer, org, scenario):
    review = run_review(db, date(2026, 10, 31))
    db.commit()

    body = client.get("/api/reviews/latest", headers=bearer(org.ann)).get_json()

    assert set(body) == {"id", "as_of", "created_at", "parameters", "findings", "findings_pagination"}
    assert (body["id"], body["as_of"]) == (review.id, "2026-10-31")
    assert body["findings_pagination"] == {"page": 1, "per_page": 200, "total": 1, "pages": 1}
    assert body["parameters"] == {"window_days": 30, "min_activities": 5, "stale_days": 60, "timezone": "UTC"}
    assert body["findings"] == [
        {
            "rule": "tactics_without_strategy",
            "reason": "no_strategy",
            "status": "new",
            "account": {
                "id": org.ann_account.id,
                "external_id": org.ann_account.external_id,
                "name": "Anvil Works",
            },
            "owner": {"id": org.ann.id, "email": "ann@example.com", "name": "Ann Archer"},
            "strategy_id": None,
            "uncovered": {"call": 5, "contract": 1},
            "oldest_uncovered_at": "2026-10-10T09:30:00+00:00",
            "strategy_review_date": None,
            "open_pipeline": 45000.0,
        }
    ]
    [stale] = client.get("/api/reviews/latest", headers=bearer(org.amir)).get_json()["findings"]
    assert (stale["rule"], stale["reason"], stale["strategy_review_date"]) == (
        "stale_strategy",
        "review_overdue",
        "2026-09-01",
    )
    assert stale["uncovered"] == {} and stale["oldest_uncovered_at"] is None


def test_each_caller_sees_only_the_findings_in_their_scope(db, client, bearer, org, scenario):
    review = run_review(db, date(2026, 10, 31))
    db.commit()

    by_id = f"/api/reviews/{review.id}"
    assert names(client.get(by_id, headers=bearer(org.ann)).get_json()) == ["Anvil Works"]
    assert names(client.get(by_id, headers=bearer(org.east)).get_json()) == ["Amber Foods", "Anvil Works"]
    assert names(client.get(by_id, headers=bearer(org.west)).get_json()) == ["Bluebird Freight"]
    assert names(client.get(by_id, headers=bearer(org.vp)).get_json()) == [
        "Amber Foods",
        "Anvil Works",
        "Bluebird Freight",
    ]
    assert len(client.get(by_id, headers=bearer(org.admin)).get_json()["findings"]) == 3


def test_findings_can_be_narrowed_to_one_rule(db, client, bearer, org, scenario):
    review = run_review(db, date(2026, 10, 31))
    db.commit()
    headers = bearer(org.vp)

    stale = client.get(f"/api/reviews/{review.id}?rule=stale_strategy", headers=headers).get_json()
    assert [(f["rule"], f["reason"], f["account"]["name"]) for f in stale["findings"]] == [
        ("stale_strategy", "review_overdue", "Amber Foods")
    ]
    bad = client.get("/api/reviews/latest?rule=everything", headers=headers)
    assert bad.status_code == 422
    assert bad.get_json()["error"]["code"] == "invalid"


def test_findings_can_be_narrowed_to_one_team_within_what_the_caller_sees(db, client, bearer, org, scenario):
    review = run_review(db, date(2026, 10, 31))
    db.commit()

    def team(user, key, rule=""):
        response = client.get(f"/api/reviews/{review.id}?team={key}{rule}", headers=bearer(user))
        return response.status_code, names(response.get_json()) if response.status_code == 200 else None

    assert team(org.vp, org.east.id) == (200, ["Amber Foods", "Anvil Works"])
    assert team(org.vp, org.east.id, "&rule=stale_strategy") == (200, ["Amber Foods"])
    assert team(org.vp, org.west.id) == (200, ["Bluebird Freight"])
    assert team(org.vp, "none") == (200, [])
    assert team(org.ann, org.east.id) == (200, ["Anvil Works"])  # never wider than the caller's scope
    assert team(org.ann, org.west.id) == (403, None)  # outside her scope: not an empty "all clear"
    assert team(org.ann, "none") == (403, None)
    assert team(org.vp, org.ann.id) == (404, None)  # a rep nobody reports to heads no team
    assert team(org.vp, 99999) == (404, None)
    unknown = client.get("/api/reviews/latest?team=99999", headers=bearer(org.vp)).get_json()["error"]
    assert unknown["message"] == "No team 99999: it is not the id of anyone with direct reports."
    outside = client.get(f"/api/reviews/latest?team={org.west.id}", headers=bearer(org.ann)).get_json()
    assert outside["error"]["message"] == f"Team {org.west.id} is outside what you may see."
    for bad in ("abc", "0", "²", "-1"):
        response = client.get(f"/api/reviews/latest?team={bad}", headers=bearer(org.vp))
        assert response.status_code == 422
        assert response.get_json()["error"]["detail"] == {
            "query": {"team": ["must be a manager's user id or 'none'"]}
        }


@pytest.fixture
def many_findings(db, org, scenario):
    """Seven more of Ann's accounts pile up calls, one more each (6..12): nine findings in all for the VP."""
    for extra in range(7):
        account = make_account(db, owner=org.ann, name=f"Piling {extra}")
        for _ in range(6 + extra):
            make_activity(db, account=account, occurred_at=utc(2026, 10, 28))
    db.commit()


def test_findings_come_a_page_at_a_time_in_the_review_pages_order(db, client, bearer, org, many_findings):
    review = run_review(db, date(2026, 10, 31))
    db.commit()
    headers = bearer(org.vp)
    whole = client.get(f"/api/reviews/{review.id}?findings_per_page=1000", headers=headers).get_json()
    assert len(whole["findings"]) == 10
    assert whole["findings_pagination"] == {"page": 1, "per_page": 1000, "total": 10, "pages": 1}

    pages = [
        client.get(
            f"/api/reviews/{review.id}?findings_per_page=4&findings_page={n}", headers=headers
        ).get_json()
        for n in (1, 2, 3)
    ]

    assert [len(page["findings"]) for page in pages] == [4, 4, 2]
    assert [page["findings_pagination"] for page in pages] == [
        {"page": n, "per_page": 4, "total": 10, "pages": 3} for n in (1, 2, 3)
    ]
    assert [finding for page in pages for finding in page["findings"]] == whole["findings"]
    # Most uncovered activity first: Piling 6 (12 calls), then 5 (11 calls)...
    assert [f["account"]["name"] for f in pages[0]["findings"]] == [
        "Piling 6",
        "Piling 5",
        "Piling 4",
        "Piling 3",
    ]
    past_the_end = client.get(
        f"/api/reviews/{review.id}?findings_per_page=4&findings_page=9", headers=headers
    ).get_json()
    assert past_the_end["findings"] == pages[2]["findings"]
    assert past_the_end["findings_pagination"]["page"] == 3


def test_a_page_counts_only_what_the_caller_may_see(db, client, bearer, org, many_findings):
    review = run_review(db, date(2026, 10, 31))
    db.commit()

    bob = client.get(f"/api/reviews/{review.id}?findings_per_page=1", headers=bearer(org.bob)).get_json()
    ann = client.get(
        "/api/reviews/latest?findings_per_page=3&rule=tactics_without_strategy", headers=bearer(org.ann)
    )

    assert names(bob) == ["Bluebird Freight"]
    assert bob["findings_pagination"] == {"page": 1, "per_page": 1, "total": 1, "pages": 1}
    assert ann.get_json()["findings_pagination"] == {"page": 1, "per_page": 3, "total": 8, "pages": 3}


def test_a_run_answers_with_the_first_page_of_its_findings(db, client, bearer, org, many_findings):
    ran = client.post(
        "/api/reviews?findings_per_page=2", json={"as_of": "2026-10-31"}, headers=bearer(org.vp)
    )

    assert ran.status_code == 201
    body = ran.get_json()
    assert [f["account"]["name"] for f in body["findings"]] == ["Piling 6", "Piling 5"]
    assert body["findings_pagination"] == {"page": 1, "per_page": 2, "total": 10, "pages": 5}


@pytest.mark.parametrize(
    "query", ["findings_per_page=0", "findings_per_page=1001", "findings_page=0", "findings_page=x"]
)
def test_a_page_out_of_range_is_refused_by_name(db, client, bearer, org, scenario, query):
    review = run_review(db, date(2026, 10, 31))
    db.commit()

    response = client.get(f"/api/reviews/{review.id}?{query}", headers=bearer(org.vp))

    assert response.status_code == 422
    assert set(response.get_json()["error"]["detail"]["query"]) == {query.split("=")[0]}


def test_the_reviews_that_ran_are_listed_latest_first_with_the_callers_counts(
    db, client, bearer, org, scenario
):
    first = run_review(db, date(2026, 10, 24))
    second = run_review(db, date(2026, 10, 31))
    before = run_review(db, date(2026, 10, 17))  # run last, dated first: listed by as-of date
    db.commit()

    vp = client.get("/api/reviews", headers=bearer(org.vp)).get_json()
    bob = client.get("/api/reviews?per_page=2&page=2", headers=bearer(org.bob)).get_json()

    assert [(item["id"], item["as_of"]) for item in vp["items"]] == [
        (second.id, "2026-10-31"),
        (first.id, "2026-10-24"),
        (before.id, "2026-10-17"),
    ]
    assert vp["pagination"] == {"page": 1, "per_page": 50, "total": 3, "pages": 1}
    assert vp["items"][0]["parameters"] == {
        "window_days": 30,
        "min_activities": 5,
        "stale_days": 60,
        "timezone": "UTC",
    }
    # Anvil Works' contract and Amir's overdue plan fire on each day; the 31st adds Bob's unlinked week
    # (five emails on the 25th). The 24th ran first, with no earlier review: its two findings stay new.
    assert [item["findings"] for item in vp["items"]] == [
        {"new": 1, "persisting": 2, "resolved": 0},
        {"new": 2, "persisting": 0, "resolved": 0},
        {"new": 2, "persisting": 0, "resolved": 0},
    ]
    assert [(item["as_of"], item["findings"]) for item in bob["items"]] == [
        ("2026-10-17", {"new": 0, "persisting": 0, "resolved": 0})
    ]
    bob_first = client.get("/api/reviews?per_page=2", headers=bearer(org.bob)).get_json()["items"]
    assert [item["findings"] for item in bob_first] == [  # his own Bluebird Freight only
        {"new": 1, "persisting": 0, "resolved": 0},
        {"new": 0, "persisting": 0, "resolved": 0},
    ]
    assert bob["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    assert client.get("/api/reviews?per_page=201", headers=bearer(org.vp)).status_code == 422
    assert client.get("/api/reviews").status_code == 401


def test_managers_and_admins_run_a_review_and_get_their_scope_back(db, client, bearer, org, scenario):
    ran = client.post("/api/reviews", json={"as_of": "2026-10-31"}, headers=bearer(org.west))

    assert ran.status_code == 201
    body = ran.get_json()
    assert body["as_of"] == "2026-10-31"
    assert [(f["reason"], f["account"]["name"]) for f in body["findings"]] == [
        ("unlinked", "Bluebird Freight")
    ]

    again = client.post("/api/reviews", json={"as_of": "2026-10-31"}, headers=bearer(org.admin))
    assert again.status_code == 201
    assert again.get_json()["id"] == body["id"]
    assert len(again.get_json()["findings"]) == 3


def test_a_run_without_a_date_reviews_today_in_the_review_timezone(app, client, bearer, org):
    app.config["REVIEW_TIMEZONE"] = "Pacific/Kiritimati"  # UTC+14: often a day ahead of UTC
    from planning.review import today_in

    ran = client.post("/api/reviews", headers=bearer(org.vp))

    assert ran.status_code == 201
    assert ran.get_json()["as_of"] == today_in("Pacific/Kiritimati").isoformat()
    assert ran.get_json()["parameters"]["timezone"] == "Pacific/Kiritimati"


def test_a_day_after_today_is_refused_and_the_latest_review_stays(db, client, bearer, org):
    from planning.review import today_in

    today = today_in("UTC")
    client.post("/api/reviews", json={"as_of": today.isoformat()}, headers=bearer(org.vp))

    response = client.post("/api/reviews", json={"as_of": "2999-01-01"}, headers=bearer(org.vp))

    assert response.status_code == 422
    assert "2999-01-01 is after today" in response.get_json()["error"]["message"]
    latest = client.get("/api/reviews/latest", headers=bearer(org.vp)).get_json()
    assert latest["as_of"] == today.isoformat()


def test_reps_may_not_run_a_review(client, bearer, org):
    response = client.post("/api/reviews", json={}, headers=bearer(org.ann))

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"as_of": "2026-02-30"},
        {"as_of": "31/10/2026"},
        {"as_of": 20261031},
        {"as_of": "0001-01-01"},
        {"as_of": "9999-12-31"},
        {"when": "2026-10-31"},
        [1],
    ],
)
def test_bad_input_is_a_json_error_not_a_crash(client, bearer, org, body):
    response = client.post("/api/reviews", json=body, headers=bearer(org.vp))

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    ("raw", "where"),
    [(b'{"as_of": "2026-10-31"', "line 1 column 23"), (b"{bad json", "line 1 column 2"), (b"\xff", "")],
    ids=["cut-short", "unquoted", "not-utf8"],
)
def test_a_body_that_is_not_json_is_refused_saying_so_and_runs_nothing(db, client, bearer, org, raw, where):
    response = client.post(
        "/api/reviews", data=raw, headers={**bearer(org.vp), "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_json"
    assert error["message"].startswith("The request body is not valid JSON: ")
    assert where in error["message"]
    assert db.scalar(select(func.count()).select_from(Review)) == 0


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", None], ids=["form", "text", "none"]
)
def test_a_body_that_is_not_sent_as_json_is_refused_and_runs_nothing(db, client, bearer, org, content_type):
    """curl -d sends a form type by default: the body used to be ignored and today's review run instead."""
    headers = {**bearer(org.vp), **({"Content-Type": content_type} if content_type else {})}

    response = client.post("/api/reviews", data=b'{"as_of": "2026-10-31"}', headers=headers)

    assert response.status_code == 415
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["message"].startswith(
        "The request body must be JSON, sent with Content-Type: application/json"
    )
    assert db.scalar(select(func.count()).select_from(Review)) == 0


def test_missing_reviews_are_json_404s(db, client, bearer, org):
    headers = bearer(org.vp)

    latest = client.get("/api/reviews/latest", headers=headers)
    assert latest.status_code == 404
    assert latest.get_json() == {"error": {"code": "not_found", "message": "No review has run yet."}}
    assert client.get("/api/reviews/1", headers=headers).status_code == 404
    assert client.get("/api/reviews/99999999999999999999", headers=headers).status_code == 404
    assert client.get("/api/reviews/abc", headers=headers).get_json()["error"]["code"] == "not_found"


def test_anonymous_callers_get_a_json_401(client):
    response = client.get("/api/reviews/latest")

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_the_openapi_document_describes_the_review_routes(client):
    spec = client.get("/api/openapi.json").get_json()

    assert {"/api/reviews", "/api/reviews/latest", "/api/reviews/{review_id}"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/reviews"]) == {"get", "post"}
    # No 409: a second run for the same day waits for the first, then replaces it.
    assert set(spec["paths"]["/api/reviews"]["post"]["responses"]) == {"201", "401", "403", "422"}
    finding = spec["components"]["schemas"]["FindingOut"]["properties"]
    assert {
        "rule",
        "reason",
        "status",
        "account",
        "owner",
        "uncovered",
        "oldest_uncovered_at",
        "strategy_review_date",
        "open_pipeline",
    } <= set(finding)
    assert finding["rule"]["enum"] == ["tactics_without_strategy", "stale_strategy"]
