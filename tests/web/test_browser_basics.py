"""A person's first minute in a real browser: demo sign-in, the account list, an account, sign out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from planning.models import StrategyStatus
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy

pytestmark = pytest.mark.browser

SUBJECTS = ("Discovery call with the CFO", "Sent revised proposal", "QBR prep", "Pricing follow-up")
# A look for whoever runs the suite, not an artefact the tests compare.
SCREENSHOT = "/tmp/stratlink_accounts.png"  # noqa: S108


@pytest.fixture
def anns_book(db, org):
    """Give Ann a believable book of accounts, committed so the live server sees it."""
    now = datetime.now(UTC)
    books = [
        ("Anvil Works", "Manufacturing", 1_250_000, 14, StrategyStatus.ACTIVE),
        ("Harborview Clinic", "Healthcare", 45_000, 6, None),
        ("Northgate Logistics", "Transportation", 310_000, 22, StrategyStatus.DRAFT),
        ("Pinecrest Credit Union", "Financial services", 0, 2, StrategyStatus.ACHIEVED),
        ("Quarry Lane Foods", "Food & beverage", 88_500, 9, None),
    ]
    accounts = {}
    for index, (name, industry, pipeline, activities, status) in enumerate(books):
        account = org.ann_account if index == 0 else make_account(db, owner=org.ann, name=name)
        account.industry = industry
        account.url = f"https://crm.example.com/accounts/{index + 1}"
        if pipeline:
            make_opportunity(db, account=account, amount=pipeline, name=f"{name} renewal", stage="Proposal")
        recent = [
            make_activity(
                db,
                account=account,
                occurred_at=now - timedelta(days=day % 28 + 1, hours=day),
                kind=("call", "email", "meeting", "task")[day % 4],
                direction="inbound" if day % 3 == 0 else "outbound",
                subject=SUBJECTS[day % 4],
            )
            for day in range(activities)
        ]
        if status is not None:
            strategy = make_strategy(db, account=account, status=status)
            link(db, strategy, *recent[:3])
        accounts[name] = account
    db.commit()
    return accounts


def test_a_rep_signs_in_from_the_demo_list_browses_and_signs_out(page, org, anns_book):
    from playwright.sync_api import expect

    page.goto("/accounts")
    expect(page).to_have_url(re.compile(r"/login\?next=/accounts$"))
    page.get_by_role("button", name="Sign in as Ann Archer, Rep").click()

    # Anchored: the sign-in page's own URL ends in "next=/accounts" too.
    expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/accounts$"))
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    page.goto("/accounts?sort=name")
    expect(page.locator("a.account-link")).to_have_text(sorted(anns_book))
    expect(page.get_by_text("Bluebird Freight")).to_have_count(0)
    expect(page.get_by_role("row", name="Anvil Works").get_by_text("$1.3M")).to_be_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.get_by_role("link", name="Anvil Works").click()
    expect(page).to_have_url(re.compile(rf"/accounts/{anns_book['Anvil Works'].id}$"))
    expect(page.get_by_role("heading", name="Anvil Works", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Activity timeline")).to_be_visible()
    expect(page.locator("table.timeline tbody tr")).to_have_count(14)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/accounts")
    expect(page).to_have_url(re.compile(r"/login\?next=/accounts$"))
