"""The review page in a real browser: the VP opens it, filters by rule and follows an account link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from planning.review import run_review
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy

pytestmark = pytest.mark.browser

# A look for whoever runs the suite, not an artefact the tests compare.
SCREENSHOT = "/tmp/stratlink_review.png"  # noqa: S108


@pytest.fixture
def reviewed(db, org):
    """A week of piled-up tactics across both teams, reviewed as of today and committed."""
    now = datetime.now(UTC)
    today = now.date()

    def activities(account, kinds):
        return [
            make_activity(db, account=account, kind=kind, occurred_at=now - timedelta(days=index % 20 + 1))
            for index, kind in enumerate(kinds)
        ]

    activities(org.ann_account, ["call"] * 7 + ["email"] * 2 + ["contract"])
    make_opportunity(db, account=org.ann_account, amount=1_250_000)
    harbor = make_account(db, owner=org.ann, name="Harborview Clinic")
    activities(harbor, ["contract"])
    plan = make_strategy(db, account=org.amir_account, review_date=today - timedelta(days=10))
    link(db, plan, *activities(org.amir_account, ["meeting"]))
    activities(org.bob_account, ["call", "call", "email", "meeting", "task", "note"])
    make_strategy(db, account=org.bob_account)
    make_opportunity(db, account=org.bob_account, amount=310_000)
    review = run_review(db, today)
    db.commit()
    return review


def test_the_vp_reads_the_review_filters_it_and_opens_an_account(page, org, reviewed):
    from playwright.sync_api import expect

    page.goto("/reviews")
    page.get_by_role("button", name=re.compile(r"Sign in as Vera Park")).click()
    expect(page).to_have_url(re.compile(r"/reviews$"))
    expect(page.get_by_role("heading", name=re.compile("Tactics review"), level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Eli East's team", level=2)).to_be_visible()
    expect(page.get_by_role("heading", name="Wendy West's team", level=2)).to_be_visible()
    expect(page.get_by_text("7 calls, 2 emails and a contract in 30 days — no strategy")).to_be_visible()
    expect(page.get_by_text("A contract in 30 days — no strategy", exact=True)).to_be_visible()
    expect(page.locator("tr.finding")).to_have_count(5)
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.get_by_role("link", name="Stale strategy").click()
    expect(page).to_have_url(re.compile(r"rule=stale_strategy"))
    expect(page.locator("tr.finding")).to_have_count(2)
    expect(page.locator("tr.finding a.account-link")).to_have_text(["Amber Foods", "Bluebird Freight"])

    page.get_by_role("link", name="Amber Foods").click()
    expect(page).to_have_url(re.compile(rf"/accounts/{org.amir_account.id}$"))
    expect(page.get_by_role("heading", name="Amber Foods", level=1)).to_be_visible()


def test_past_the_page_limit_the_vp_picks_a_team_and_comes_back(app, page, org, reviewed):
    from playwright.sync_api import expect

    app.config["REVIEW_PAGE_FINDINGS"] = 3
    page.goto("/reviews")
    page.get_by_role("button", name=re.compile(r"Sign in as Vera Park")).click()
    expect(page.get_by_text("5 findings are more than one page lists: pick a team.")).to_be_visible()
    expect(page.locator("tr.finding")).to_have_count(0)
    expect(page.locator("tr.team a.team-link")).to_have_text(["Eli East's team", "Wendy West's team"])
    page.screenshot(path="/tmp/stratlink_review_teams.png", full_page=True)  # noqa: S108

    page.get_by_role("link", name="Eli East's team").click()
    expect(page).to_have_url(re.compile(rf"team={org.east.id}"))
    # Grouped by rep: Amir before Ann.
    expect(page.locator("tr.finding a.account-link")).to_have_text(
        ["Amber Foods", "Anvil Works", "Harborview Clinic"]
    )
    page.get_by_role("link", name="Stale strategy").click()
    expect(page).to_have_url(re.compile(rf"\?rule=stale_strategy&team={org.east.id}$"))
    expect(page.locator("tr.finding a.account-link")).to_have_text(["Amber Foods"])

    # Back to all teams, still on the stale rule: its 2 findings fit on the page.
    page.get_by_role("link", name="all teams").click()
    expect(page).to_have_url(re.compile(r"/reviews\?rule=stale_strategy$"))
    expect(page.locator("tr.finding a.account-link")).to_have_text(["Amber Foods", "Bluebird Freight"])


def test_a_long_unbroken_name_wraps_inside_the_findings_table(db, page, org):
    from playwright.sync_api import expect

    name = "Harborview" + "X" * 240  # a CRM field with no space in it, as long as a name may be
    account = make_account(db, owner=org.ann, name=name)
    make_activity(db, account=account, kind="contract", occurred_at=datetime.now(UTC) - timedelta(days=1))
    make_opportunity(db, account=account, amount=250_000)
    run_review(db, datetime.now(UTC).date())
    db.commit()

    page.goto("/reviews")
    page.get_by_role("button", name=re.compile(r"Sign in as Vera Park")).click()

    account_link = page.get_by_role("link", name=name)
    expect(account_link).to_be_visible()
    # It ran on, over the pipeline and the oldest activity beside it.
    name_box = account_link.bounding_box()
    pipeline_box = page.get_by_text("$250,000").bounding_box()
    assert name_box is not None and pipeline_box is not None
    assert name_box["x"] + name_box["width"] <= pipeline_box["x"]
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
