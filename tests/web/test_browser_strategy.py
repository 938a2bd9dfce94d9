"""A rep in a real browser turns an account with only tactics into one with an active strategy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from planning.models import Link, Strategy, StrategyStatus
from planning.strategies import create_strategy, revisions_of
from tests.factories import make_activity, make_opportunity

pytestmark = pytest.mark.browser

SUBJECTS = (
    "Discovery call with the plant manager",
    "Sent pricing sheet",
    "Line 2 walkthrough",
    "Follow-up email",
)
# Two lines, as the API stores them: a browser sends them back with CRLF.
OBJECTIVE = "Anvil's planners schedule line 2 in an hour\ninstead of a day"
# Looks for whoever runs the suite, not artefacts the tests compare.
SCREENSHOTS = "/tmp/stratlink_strategy_{}.png"  # noqa: S108


@pytest.fixture
def tactics_only(db: Session, org: Any) -> Any:
    """Ann's Anvil Works: busy with calls and emails, no strategy (committed for the live server)."""
    account = org.ann_account
    make_opportunity(db, account=account, amount=240_000, name="Line 2 scheduling", stage="Proposal")
    now = datetime.now(UTC)
    for day in range(6):
        make_activity(
            db,
            account=account,
            occurred_at=now - timedelta(days=day + 1),
            kind=("call", "email", "meeting")[day % 3],
            subject=SUBJECTS[day % 4],
        )
    db.commit()
    return account


def test_a_rep_writes_activates_and_links_a_strategy_and_the_account_stops_needing_one(
    page: Any, db: Session, org: Any, tactics_only: Any
) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Sign in as Ann Archer, Rep").click()
    page.wait_for_url("**/accounts")
    page.goto("/accounts?needs_strategy=1")
    assert page.locator("a.account-link").all_inner_texts() == ["Anvil Works"]

    page.get_by_role("link", name="Anvil Works").click()
    page.get_by_role("link", name="Write a strategy").first.click()
    page.get_by_label("Objective").fill("Call the plant manager and send the proposal")
    page.get_by_label("Approach").fill("Book a demo, then follow up every Friday.")
    page.get_by_label("Review date").fill("2027-02-01")
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Save strategy").click()

    warning = page.get_by_role("alert").filter(has_text="This reads like a list of tactics")
    expect(warning).to_be_visible()
    assert "Call the plant manager" in warning.inner_text()
    page.screenshot(path=SCREENSHOTS.format("tactics_warning"), full_page=True)

    page.get_by_label("Objective").fill("Anvil's planners schedule line 2 in an hour instead of a day")
    page.get_by_label("Approach").fill(
        "Run the scheduling pilot with their planning lead, so that the COO sees the hours saved."
    )
    page.get_by_role("button", name="Save strategy").click()
    page.wait_for_url("**/strategies/*")
    expect(page.get_by_text("The strategy is active")).to_be_visible()

    page.get_by_role("link", name="← Anvil Works").click()
    checkboxes = page.locator("input.select-activity")
    for index in range(3):
        checkboxes.nth(index).check()
    expect(page.get_by_text("3 activities selected")).to_be_visible()
    page.get_by_role("button", name="Link to strategy").click()
    expect(page.get_by_text("Linked 3 activities to the strategy.")).to_be_visible()
    assert page.locator("table.timeline").get_by_text("Not linked").count() == 3
    page.screenshot(path=SCREENSHOTS.format("account"), full_page=True)

    page.goto("/accounts?needs_strategy=1")
    assert page.locator("a.account-link").count() == 0
    expect(page.get_by_text("No account matches these filters.")).to_be_visible()

    db.expire_all()
    strategy = db.scalars(select(Strategy).where(Strategy.account_id == tactics_only.id)).one()
    assert strategy.status == StrategyStatus.ACTIVE
    assert len(db.scalars(select(Link).where(Link.strategy_id == strategy.id)).all()) == 3


def test_select_all_ticks_every_activity_in_view(page: Any, db: Session, org: Any, tactics_only: Any) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Sign in as Ann Archer, Rep").click()
    page.wait_for_url("**/accounts")
    page.goto(f"/accounts/{tactics_only.id}/strategies/new")
    page.get_by_label("Objective").fill("Anvil ships 10% more from line 2")
    page.get_by_role("button", name="Save strategy").click()
    page.wait_for_url("**/strategies/*")

    page.goto(f"/accounts/{tactics_only.id}?kind=call")
    page.get_by_label("Select all activities in view").check()
    expect(page.get_by_text("2 activities selected")).to_be_visible()
    page.get_by_role("button", name="Link to strategy").click()
    expect(page.get_by_text("Linked 2 activities to the strategy.")).to_be_visible()


def test_two_tabs_save_the_same_strategy_and_the_merge_keeps_both_changes(
    page: Any, db: Session, org: Any
) -> None:
    strategy = create_strategy(
        db,
        org.ann,
        org.ann_account,
        {
            "objective": OBJECTIVE,
            "customer_view": "Planning takes their lead a whole day",
            "success_measure": "Line 2 planned in an hour by March",
        },
    )
    db.commit()
    page.goto("/login")
    page.get_by_role("button", name="Sign in as Ann Archer, Rep").click()
    page.wait_for_url("**/accounts")
    tab_a, tab_b = page, page.context.new_page()
    for tab in (tab_a, tab_b):
        tab.goto(f"/strategies/{strategy.id}/edit")

    tab_a.get_by_label("Success measure").fill("Lines 2 and 3 planned in an hour by April")
    tab_a.get_by_role("button", name="Save strategy").click()
    tab_a.wait_for_url(f"**/strategies/{strategy.id}")
    # The browser sends the two-line objective back with CRLF: that is no change.
    assert revisions_of(db, strategy)[0].changed_fields == ["success_measure"]
    tab_b.get_by_label("Customer's point of view").fill("Their planning lead loses a day a week")
    tab_b.get_by_role("button", name="Save strategy").click()

    expect(tab_b.get_by_role("heading", name="No conflicts")).to_be_visible()
    assert (
        tab_b.get_by_role("textbox", name="Success measure").input_value()
        == "Lines 2 and 3 planned in an hour by April"
    )
    tab_b.get_by_role("button", name="Save the merged version").click()
    tab_b.wait_for_url(f"**/strategies/{strategy.id}")

    db.expire_all()
    saved = db.get(Strategy, strategy.id)
    assert saved.customer_view == "Their planning lead loses a day a week"
    assert saved.success_measure == "Lines 2 and 3 planned in an hour by April"
    assert saved.objective == OBJECTIVE  # stored with LF, as it came

    # Both tabs change the success measure: a conflict, settled with the saved text.
    for tab in (tab_a, tab_b):
        tab.goto(f"/strategies/{strategy.id}/edit")
    tab_a.get_by_label("Success measure").fill("Every line planned in an hour by May")
    tab_a.get_by_role("button", name="Save strategy").click()
    tab_a.wait_for_url(f"**/strategies/{strategy.id}")
    tab_b.get_by_label("Success measure").fill("Line 2 planned in ten minutes")
    tab_b.get_by_role("button", name="Save strategy").click()
    expect(tab_b.get_by_role("heading", name="1 field changed on both sides")).to_be_visible()
    tab_b.screenshot(path=SCREENSHOTS.format("conflict"), full_page=True)
    assert (
        tab_b.get_by_role("textbox", name="Success measure").input_value() == "Line 2 planned in ten minutes"
    )
    tab_b.get_by_role("button", name="Use the saved success measure in the merge").click()
    tab_b.get_by_role("button", name="Save the merged version").click()
    tab_b.wait_for_url(f"**/strategies/{strategy.id}")

    db.expire_all()
    saved = db.get(Strategy, strategy.id)
    assert saved.success_measure == "Every line planned in an hour by May"
    assert saved.customer_view == "Their planning lead loses a day a week"


def test_a_long_unbroken_text_stays_inside_its_card_and_the_editor_stops_at_the_limit(
    page: Any, db: Session, org: Any
) -> None:
    long_url = "https://intranet.anvil.example/" + "y" * 3000
    strategy = create_strategy(
        db, org.ann, org.ann_account, {"objective": "Plan line 2 in an hour", "customer_view": long_url}
    )
    db.commit()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/login")
    page.get_by_role("button", name="Sign in as Ann Archer, Rep").click()
    page.wait_for_url("**/accounts")

    page.goto(f"/strategies/{strategy.id}")
    expect(page.get_by_text("Plan line 2 in an hour")).to_be_visible()
    # It ran under the next column and stretched the page to 177,547 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    page.goto(f"/strategies/{strategy.id}/edit")
    objective = page.get_by_label("Objective")
    objective.fill("")
    objective.press_sequentially("x" * 5)
    objective.evaluate("(field, text) => { field.value = text; }", "y" * 19_998)
    objective.press_sequentially("abc")  # the browser takes two of the three
    assert len(objective.input_value()) == 20_000
