"""The admin page: admins only, the connection without secrets, recent sync runs, and "Sync now"."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from planning.models import Account, Role, SyncRun, User
from tests.factories import make_user
from tests.integrations.fake_salesforce import ACCESS_TOKEN, FakeSalesforce, salesforce_config, seed_org

LoginAs = Callable[[User], FlaskClient]


@pytest.fixture
def fake(app: Flask) -> Iterator[FakeSalesforce]:
    with FakeSalesforce(page_size=50) as server:
        app.config.update(salesforce_config(server), STRATLINK_SOURCE="salesforce")
        yield server


@pytest.fixture
def admin(db: Session) -> User:
    user = make_user(db, role=Role.ADMIN, name="Ada Admin")
    db.commit()
    return user


def add_run(db: Session, minutes_ago: int, **fields: object) -> SyncRun:
    run = SyncRun(
        source="salesforce",
        status=fields.pop("status", "succeeded"),
        started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        finished_at=datetime.now(UTC) - timedelta(minutes=minutes_ago) + timedelta(seconds=5),
        **fields,
    )
    db.add(run)
    db.commit()
    return run


@pytest.mark.parametrize("role", [Role.REP, Role.MANAGER])
def test_the_admin_page_and_its_actions_are_refused_to_everyone_but_admins(
    db: Session, login_as: LoginAs, fake: FakeSalesforce, role: Role
) -> None:
    client = login_as(make_user(db, role=role))
    db.commit()

    refused = client.get("/admin")
    assert refused.status_code == 403
    assert "Only admins may use the admin page." in refused.get_data(as_text=True)
    assert client.post("/admin/sync").status_code == 403
    assert client.post("/admin/check").status_code == 403
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert fake.requests == []
    assert client.get(f"/admin/sync-runs/{add_run(db, 1).id}/errors").status_code == 403


def test_the_admin_page_asks_a_stranger_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/admin")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_an_admin_sees_the_connection_without_secrets_and_the_last_20_runs(
    db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    for minutes in range(25, 4, -1):
        add_run(db, minutes, inserted=minutes)
    add_run(
        db,
        1,
        status="failed",
        inserted=7,
        failed=3,
        api_usage="api-usage=321/15000",
        message="reading activities from Salesforce: API limit reached <script>alert(1)</script>",
        errors=[
            {"stream": "activities", "external_id": "00T1", "field": "occurred_at", "message": "no date"},
            {"stream": "activities", "external_id": "00T2", "field": None, "message": "bad row"},
            {"stream": "activities", "external_id": "00T3", "field": None, "message": "third"},
        ],
    )

    page = login_as(admin).get("/admin").get_data(as_text=True)

    assert fake.url in page
    assert ACCESS_TOKEN not in page
    assert "access token" in page and "62.0" in page
    assert page.count('<tr>\n            <td class="nowrap">') == 20
    assert "api-usage=321/15000" in page
    assert "00T1 · occurred_at: no date" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "Last sync failed" in page


def test_sync_now_runs_the_configured_source_and_says_how_it_went(
    db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    org = seed_org(fake, accounts=3)
    client = login_as(admin)

    response = client.post("/admin/sync", follow_redirects=True)

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r"Sync succeeded: \d+ new, 0 updated, 0 unchanged, 0 failed\.", page)
    assert set(db.scalars(select(Account.external_id))) == set(org.accounts)
    run = db.scalar(select(SyncRun))
    assert run is not None and run.status == "succeeded" and run.api_usage
    assert run.api_usage in page


def test_a_failed_sync_now_shows_the_reason(
    db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    seed_org(fake, accounts=1)
    fake.expire_tokens()

    page = login_as(admin).post("/admin/sync", follow_redirects=True).get_data(as_text=True)

    assert "Sync failed after 0 new" in page and "INVALID_SESSION_ID" in page


def test_sync_now_with_a_misconfigured_source_says_so_and_starts_nothing(
    app: Flask, db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    app.config["SALESFORCE_INSTANCE_URL"] = "http://crm.example.com"

    page = login_as(admin).post("/admin/sync", follow_redirects=True).get_data(as_text=True)

    assert "Sync not started" in page and "only a loopback host" in page
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0


def test_sync_now_while_a_sync_runs_says_so_and_starts_nothing(
    db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce, another_sync_of: Callable[[str], None]
) -> None:
    seed_org(fake, accounts=1)
    another_sync_of("salesforce")

    page = login_as(admin).post("/admin/sync", follow_redirects=True).get_data(as_text=True)

    assert "A sync from salesforce is already running; this one did not start." in page
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert db.scalar(select(func.count()).select_from(Account)) == 0


def test_test_connection_counts_the_rows_salesforce_holds(
    db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    seed_org(fake, accounts=2)

    page = login_as(admin).post("/admin/check", follow_redirects=True).get_data(as_text=True)

    assert f"Connected to {fake.url}: 4 User, 2 Account, 2 Opportunity" in page


def test_sync_now_needs_the_form_csrf_token(
    app: Flask, db: Session, login_as: LoginAs, admin: User, fake: FakeSalesforce
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client = login_as(admin)
    page = client.get("/admin").get_data(as_text=True)
    token = re.search(r'action="/admin/sync".*?name="csrf_token" value="([^"]+)"', page, re.S)
    assert token is not None

    assert client.post("/admin/sync").status_code == 400
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0
    assert client.post("/admin/sync", data={"csrf_token": token.group(1)}).status_code == 302
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 1


def test_every_error_a_sync_run_kept_is_one_click_from_the_admin_page(
    db: Session, login_as: LoginAs, admin: User
) -> None:
    errors = [
        {
            "stream": "activities",
            "external_id": f"00T{n}",
            "field": "occurred_at",
            "message": f"bad <b>{n}</b>",
        }
        for n in range(18)
    ]
    # Failed counts records: 18 errors on 12 records (some with two faults).
    run = add_run(db, 1, status="partial", inserted=40, failed=12, errors=errors)
    capped = add_run(db, 2, status="partial", inserted=0, failed=520, errors=(errors * 28)[:500])
    client = login_as(admin)

    page = client.get("/admin").get_data(as_text=True)
    listed = client.get(f"/admin/sync-runs/{run.id}/errors").get_data(as_text=True)
    full = " ".join(client.get(f"/admin/sync-runs/{capped.id}/errors").get_data(as_text=True).split())

    assert f'<a href="/admin/sync-runs/{run.id}/errors">and 15 more</a>' in page
    assert all(f"00T{n}" in listed for n in range(18))
    assert "bad &lt;b&gt;17&lt;/b&gt;" in listed and "<b>17" not in listed
    assert "had more" not in listed
    assert "A run keeps its first 500 errors; this one had more. In all, 520 records failed." in full
    assert client.get("/admin/sync-runs/999999/errors").status_code == 404
