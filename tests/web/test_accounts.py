from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event

from extensions import db as _db
from planning.accounts import get_account_detail, headline, list_account_activities, list_accounts
from planning.models import StrategyStatus
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy, utc
from web.accounts import ago, money, safe_url

NOW = datetime.now(UTC)


def _names(html: str) -> list[str]:
    return re.findall(r'class="account-link" href="/accounts/\d+">([^<]+)</a>', html)


# --- Who sees what -------------------------------------------------------------------------------


def test_a_rep_sees_only_their_own_accounts(client, org, login_as):
    login_as(org.ann)
    response = client.get("/accounts")
    assert response.status_code == 200
    assert _names(response.get_data(as_text=True)) == ["Anvil Works"]


def test_a_manager_sees_their_teams_accounts_and_not_another_teams(client, org, login_as):
    login_as(org.east)
    html = client.get("/accounts?sort=name").get_data(as_text=True)
    assert _names(html) == ["Amber Foods", "Anvil Works"]
    assert "Bluebird Freight" not in html
    assert '<th scope="col">Owner</th>' in html and "<td>Amir Aziz</td>" in html
    html = client.get(f"/accounts?owner={org.amir.id}").get_data(as_text=True)
    assert _names(html) == ["Amber Foods"]


@pytest.mark.parametrize("who", ["vp", "admin"])
def test_the_vp_and_admins_see_every_account(client, org, login_as, who):
    login_as(getattr(org, who))
    html = client.get("/accounts?sort=name").get_data(as_text=True)
    assert _names(html) == ["Amber Foods", "Anvil Works", "Bluebird Freight"]


def test_a_rep_cannot_open_an_account_outside_their_scope(client, org, login_as):
    login_as(org.ann)
    assert client.get(f"/accounts/{org.ann_account.id}").status_code == 200
    response = client.get(f"/accounts/{org.bob_account.id}")
    assert response.status_code == 403
    assert "Bluebird Freight" not in response.get_data(as_text=True)
    assert client.get(f"/accounts/{org.amir_account.id}").status_code == 403


def test_a_manager_opens_their_reps_account_but_not_another_teams(client, org, login_as):
    login_as(org.east)
    assert client.get(f"/accounts/{org.amir_account.id}").status_code == 200
    assert client.get(f"/accounts/{org.bob_account.id}").status_code == 403


def test_an_unknown_account_is_not_found(client, org, login_as):
    login_as(org.vp)
    assert client.get("/accounts/987654").status_code == 404
    # Larger than any database id: still a plain 404, not a database error.
    assert client.get("/accounts/70368744177665").status_code == 404
    assert client.get("/accounts/0").status_code == 404


def test_an_owner_filter_beyond_any_id_shows_an_empty_list(client, org, login_as):
    login_as(org.vp)
    response = client.get("/accounts?owner=70368744177665")
    assert response.status_code == 200
    assert _names(response.get_data(as_text=True)) == []


def test_account_pages_need_a_signed_in_user(client, org):
    response = client.get(f"/accounts/{org.ann_account.id}")
    assert response.status_code == 302
    assert response.location == f"/login?next=/accounts/{org.ann_account.id}"


def test_accounts_deleted_in_the_crm_are_left_out_of_the_list(client, db, org, login_as):
    make_account(db, owner=org.ann, name="Gone Ltd", deleted=True)
    login_as(org.ann)
    assert _names(client.get("/accounts").get_data(as_text=True)) == ["Anvil Works"]


def test_only_managers_get_the_owner_filter_with_their_team(client, org, login_as):
    login_as(org.ann)
    assert 'name="owner"' not in client.get("/accounts").get_data(as_text=True)
    login_as(org.east)
    html = client.get("/accounts").get_data(as_text=True)
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', html)
    assert {name for _, name in options} == {"Eli East", "Ann Archer", "Amir Aziz"}


# --- Figures -------------------------------------------------------------------------------------


def test_the_list_shows_open_pipeline_strategy_status_and_recent_activity(client, db, org, login_as):
    account = org.ann_account
    make_opportunity(db, account=account, amount=1_200_000)
    make_opportunity(db, account=account, amount=45_000)
    make_opportunity(db, account=account, amount=500_000, is_closed=True, is_won=True)
    make_opportunity(db, account=account, amount=700_000, deleted=True)
    for days in (1, 5, 29):
        make_activity(db, account=account, occurred_at=NOW - timedelta(days=days))
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=31))
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=2), deleted=True)
    make_activity(db, account=account, occurred_at=NOW + timedelta(days=3))  # a meeting still to come
    make_strategy(db, account=account, status=StrategyStatus.DRAFT)
    make_strategy(db, account=account, status=StrategyStatus.ACTIVE)

    row = list_accounts(db, org.ann).rows[0]
    assert row.open_pipeline == Decimal("1245000")
    assert row.recent_activities == 3
    assert row.strategy_status == StrategyStatus.ACTIVE
    assert row.last_activity_at is not None
    assert abs(row.last_activity_at - (NOW - timedelta(days=1))) < timedelta(seconds=1)

    login_as(org.ann)
    html = client.get("/accounts").get_data(as_text=True)
    cells = re.findall(r'<td class="num">(.*?)</td>', html)
    assert cells == ["$1.2M", "3"]
    assert '<span class="badge badge-active">Active</span>' in html


def test_an_account_without_a_strategy_shows_a_no_strategy_badge(client, org, login_as):
    login_as(org.ann)
    assert '<span class="badge badge-none">No strategy</span>' in client.get("/accounts").get_data(
        as_text=True
    )


def test_a_draft_shows_when_there_is_no_active_strategy(db, org):
    make_strategy(db, account=org.ann_account, status=StrategyStatus.ABANDONED)
    make_strategy(db, account=org.ann_account, status=StrategyStatus.DRAFT)
    assert list_accounts(db, org.ann).rows[0].strategy_status == StrategyStatus.DRAFT


# --- Filters, sorting, pages ---------------------------------------------------------------------


@pytest.fixture
def book(db, org):
    """Ann's book of four accounts with distinct pipeline, activity and strategies."""
    accounts = {
        "Anvil Works": org.ann_account,
        "Harbor Steel": make_account(db, owner=org.ann, name="Harbor Steel"),
        "Harborview Clinic": make_account(db, owner=org.ann, name="Harborview Clinic"),
        "Zenith 100% Labs": make_account(db, owner=org.ann, name="Zenith 100% Labs"),
    }
    make_opportunity(db, account=accounts["Harbor Steel"], amount=10_000)
    make_opportunity(db, account=accounts["Zenith 100% Labs"], amount=90_000)
    make_opportunity(db, account=accounts["Anvil Works"], amount=50_000)
    for _ in range(4):
        make_activity(db, account=accounts["Harborview Clinic"], occurred_at=NOW - timedelta(days=2))
    make_activity(db, account=accounts["Anvil Works"], occurred_at=NOW - timedelta(days=3))
    make_strategy(db, account=accounts["Harbor Steel"], status=StrategyStatus.ACTIVE)
    make_strategy(db, account=accounts["Zenith 100% Labs"], status=StrategyStatus.DRAFT)
    return accounts


def test_the_name_filter_matches_part_of_the_name_without_case(db, org, book):
    names = [row.name for row in list_accounts(db, org.ann, q="harbor", sort="name").rows]
    assert names == ["Harbor Steel", "Harborview Clinic"]
    # LIKE wildcards in the search are taken literally.
    assert [row.name for row in list_accounts(db, org.ann, q="100%").rows] == ["Zenith 100% Labs"]
    assert list_accounts(db, org.ann, q="%").total == 1


def test_no_active_strategy_filter_leaves_out_accounts_with_one(db, org, book):
    names = [row.name for row in list_accounts(db, org.ann, needs_strategy=True, sort="name").rows]
    assert names == ["Anvil Works", "Harborview Clinic", "Zenith 100% Labs"]


def test_the_owner_filter_narrows_a_managers_list_but_never_widens_it(db, org, book):
    assert [row.name for row in list_accounts(db, org.east, owner_id=org.amir.id).rows] == ["Amber Foods"]
    assert list_accounts(db, org.east, owner_id=org.bob.id).total == 0


def test_sorting_by_pipeline_and_by_recent_activity(db, org, book):
    by_pipeline = [row.name for row in list_accounts(db, org.ann, sort="pipeline").rows]
    assert by_pipeline == ["Zenith 100% Labs", "Anvil Works", "Harbor Steel", "Harborview Clinic"]
    by_activity = [row.name for row in list_accounts(db, org.ann, sort="activity").rows]
    assert by_activity[:2] == ["Harborview Clinic", "Anvil Works"]
    with pytest.raises(ValueError, match="sort"):
        list_accounts(db, org.ann, sort="owner; drop table")


def test_filters_and_sort_come_from_the_query_string(client, org, book, login_as):
    login_as(org.ann)
    html = client.get("/accounts?q=harbor&sort=activity").get_data(as_text=True)
    assert _names(html) == ["Harborview Clinic", "Harbor Steel"]
    html = client.get("/accounts?needs_strategy=1&sort=pipeline").get_data(as_text=True)
    assert _names(html) == ["Zenith 100% Labs", "Anvil Works", "Harborview Clinic"]
    # Nonsense parameters fall back to defaults instead of failing.
    assert client.get("/accounts?sort=bogus&page=abc&owner=x").status_code == 200


def test_my_accounts_put_uncovered_activity_first_then_pipeline_by_default(client, db, org, book, login_as):
    # Uncovered activity in the last 30 days: Harborview Clinic 4, Anvil Works 1, the others none.
    names = [row.name for row in list_accounts(db, org.ann).rows]
    assert names == ["Harborview Clinic", "Anvil Works", "Zenith 100% Labs", "Harbor Steel"]
    login_as(org.ann)
    html = client.get("/accounts").get_data(as_text=True)
    assert _names(html) == names
    assert '<option value="priority" selected>Needs attention first</option>' in html


def test_pages_of_the_list_neither_overlap_nor_skip(db, org, book):
    seen = []
    for number in (1, 2, 3):
        page = list_accounts(db, org.ann, per_page=2, page=number, sort="name")
        assert page.total == 4 and page.pages == 2
        seen += [row.name for row in page.rows]
    # Page 3 is past the end and is clamped to the last page.
    assert seen == ["Anvil Works", "Harbor Steel", "Harborview Clinic", "Zenith 100% Labs"] + seen[2:4]


def test_the_list_pages_fifty_accounts_at_a_time(client, db, org, login_as):
    for index in range(59):
        make_account(db, owner=org.ann, name=f"Account {index:03d}")
    login_as(org.ann)
    first = client.get("/accounts").get_data(as_text=True)
    assert len(_names(first)) == 50
    assert "1–50 of 60 accounts" in first
    assert 'rel="next" href="/accounts?page=2"' in first
    second = client.get("/accounts?page=2").get_data(as_text=True)
    assert len(_names(second)) == 10
    assert "51–60 of 60 accounts" in second
    assert set(_names(first)).isdisjoint(_names(second))


def test_the_list_page_issues_the_same_number_of_queries_for_5_or_60_accounts(client, db, org, login_as):
    def build(count: int) -> None:
        for index in range(count):
            account = make_account(db, owner=org.amir, name=f"Bulk {index:03d}")
            make_opportunity(db, account=account, amount=1000 + index)
            make_activity(db, account=account, occurred_at=NOW - timedelta(days=1 + index % 40))
            if index % 3 == 0:
                make_strategy(db, account=account)

    statements: list[str] = []

    def count_statement(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    def queries_for_one_page() -> int:
        statements.clear()
        event.listen(_db.engine, "before_cursor_execute", count_statement)
        try:
            for url in ("/accounts", "/accounts?sort=pipeline&needs_strategy=1", "/accounts?sort=activity"):
                assert client.get(url).status_code == 200
        finally:
            event.remove(_db.engine, "before_cursor_execute", count_statement)
        return len(statements)

    login_as(org.east)
    build(5)
    with_five = queries_for_one_page()
    build(55)
    with_sixty = queries_for_one_page()
    assert with_five == with_sixty
    # Per page: the user, the team (twice: count and rows), the count, the rows, the owner choices.
    assert with_five <= 3 * 7


# --- The account page ----------------------------------------------------------------------------


def test_the_account_page_shows_header_opportunities_strategies_and_timeline(client, db, org, login_as):
    account = org.ann_account
    account.industry = "Manufacturing"
    account.annual_revenue = Decimal("12500000")
    account.url = "https://crm.example.com/A1"
    make_opportunity(db, account=account, name="Anvil expansion", stage="Proposal", amount=45_000)
    make_opportunity(db, account=account, name="Old renewal", amount=9_000, is_closed=True)
    strategy = make_strategy(
        db, account=account, objective="## Cut Anvil's scrap rate in half\nMore detail here", version=3
    )
    linked = make_activity(
        db, account=account, occurred_at=NOW - timedelta(days=1), subject="Plant tour", kind="meeting"
    )
    link(db, strategy, linked)
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=2), subject="Intro call")
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=3), subject="Removed", deleted=True)
    login_as(org.ann)

    html = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "<h1>Anvil Works</h1>" in html
    assert "Manufacturing" in html and "$12.5M" in html
    assert 'href="https://crm.example.com/A1"' in html
    assert "Anvil expansion" in html and "Proposal" in html and "$45,000" in html
    assert "Old renewal" not in html
    assert "Cut Anvil&#39;s scrap rate in half" in html and "Version 3" in html
    assert html.index("Plant tour") < html.index("Intro call")
    assert "Removed" not in html
    assert f'href="#strategy-{strategy.id}"' in html


def test_the_account_figures_say_activity_for_one_and_activities_for_more(client, db, org, login_as):
    account = org.ann_account
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=1))
    login_as(org.ann)

    def label() -> str:
        html = client.get(f"/accounts/{account.id}").get_data(as_text=True)
        return re.search(r'figure-label">([^<]*in the last 30 days)<', html).group(1)

    assert label() == "activity in the last 30 days"
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=2))
    assert label() == "activities in the last 30 days"


def test_the_dialogue_ratio_counts_inbound_and_outbound_over_90_days(db, org):
    account = org.ann_account
    for days, direction in [
        (1, "inbound"),
        (10, "inbound"),
        (80, "inbound"),
        (2, "outbound"),
        (100, "inbound"),
    ]:
        make_activity(db, account=account, occurred_at=NOW - timedelta(days=days), direction=direction)
    make_activity(db, account=account, occurred_at=NOW - timedelta(days=3), direction="unknown")
    dialogue = get_account_detail(db, account).figures.dialogue
    assert (dialogue.inbound, dialogue.outbound) == (3, 1)
    assert dialogue.ratio == 3.0


def test_the_timeline_is_paged_newest_first(db, org):
    account = org.ann_account
    for day in range(1, 8):
        make_activity(db, account=account, occurred_at=NOW - timedelta(days=day), subject=f"Day {day}")
    first = list_account_activities(db, account.id, per_page=3)
    second = list_account_activities(db, account.id, per_page=3, page=2)
    assert [entry.subject for entry in first.rows] == ["Day 1", "Day 2", "Day 3"]
    assert [entry.subject for entry in second.rows] == ["Day 4", "Day 5", "Day 6"]
    assert first.total == 7 and first.pages == 3


def test_the_timeline_filters_by_kind_time_and_link(db, org):
    account = org.ann_account
    strategy = make_strategy(db, account=account, objective="")
    call = make_activity(db, account=account, occurred_at=NOW - timedelta(days=1), kind="call")
    meeting = make_activity(db, account=account, occurred_at=NOW - timedelta(days=3), kind="meeting")
    old_call = make_activity(db, account=account, occurred_at=NOW - timedelta(days=10), kind="call")
    link(db, strategy, meeting)

    def ids(**filters) -> list[int]:
        return [entry.id for entry in list_account_activities(db, account.id, **filters).rows]

    assert ids(kinds=["call"]) == [call.id, old_call.id]
    assert ids(kinds=["no-such-kind"]) == []
    assert ids(start=NOW - timedelta(days=5), end=NOW - timedelta(days=2)) == [meeting.id]
    assert ids(linked=True) == [meeting.id]
    assert ids(linked=False) == [call.id, old_call.id]
    entry = list_account_activities(db, account.id, linked=True).rows[0]
    # A strategy with no objective yet still has a name on the timeline.
    assert (entry.strategy_id, entry.strategy_headline) == (strategy.id, f"Strategy {strategy.id}")


def test_a_timeline_day_that_is_not_a_date_is_named_and_dropped(client, db, org, login_as):
    make_activity(db, account=org.ann_account, occurred_at=NOW - timedelta(days=1), subject="Plant tour")
    login_as(org.ann)

    html = client.get(f"/accounts/{org.ann_account.id}?from=2026-02-30&to=2026-12-31").get_data(as_text=True)

    assert "“2026-02-30” is not a day (YYYY-MM-DD), so the “from” filter is off." in html
    assert 'value="2026-02-30"' not in html
    assert 'value="2026-12-31"' in html  # the good day stays, and draws no message
    assert html.count("filter is off") == 1
    assert "Plant tour" in html


def test_pages_show_days_and_times_in_the_orgs_time_zone(app, client, db, org, login_as):
    """The review names the day in REVIEW_TIMEZONE; the account page it links to said the UTC day."""
    app.config["REVIEW_TIMEZONE"] = "Asia/Tokyo"  # UTC+9
    make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 31, 23, 59), subject="Late call")
    make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 31, 14, 0), subject="Afternoon")
    login_as(org.ann)

    page = client.get(f"/accounts/{org.ann_account.id}").get_data(as_text=True)
    tokyo_first = client.get(f"/accounts/{org.ann_account.id}?from=2026-11-01&to=2026-11-01").get_data(
        as_text=True
    )

    assert "1 Nov 2026, 08:59 JST" in page  # 23:59 UTC on 31 October
    assert "Late call" in tokyo_first and "Afternoon" not in tokyo_first  # 23:00 in Tokyo on the 31st
    app.config["REVIEW_TIMEZONE"] = "UTC"
    utc_first = client.get(f"/accounts/{org.ann_account.id}?from=2026-11-01&to=2026-11-01").get_data(
        as_text=True
    )
    assert "Late call" not in utc_first
    app.config["REVIEW_TIMEZONE"] = "Asia/Tokyo"
    ends = client.get(f"/accounts/{org.ann_account.id}?from=0001-01-01&to=9999-12-31").get_data(as_text=True)
    assert "Late call" in ends and "Afternoon" in ends and "filter is off" not in ends  # no bound, no error


def test_a_crm_link_that_is_not_http_is_never_rendered(client, db, org, login_as):
    org.ann_account.url = "javascript:alert(document.cookie)"
    make_activity(db, account=org.ann_account, occurred_at=NOW, url="data:text/html,<script>x</script>")
    login_as(org.ann)
    html = client.get(f"/accounts/{org.ann_account.id}").get_data(as_text=True)
    assert "javascript:" not in html
    assert "data:text/html" not in html


def test_text_from_the_crm_is_escaped(client, db, org, login_as):
    org.ann_account.name = "<script>alert(1)</script> Corp"
    login_as(org.ann)
    for url in ("/accounts", f"/accounts/{org.ann_account.id}"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Corp" in html


def test_a_deleted_account_still_opens_with_a_notice(client, db, org, login_as):
    org.ann_account.deleted = True
    login_as(org.ann)
    response = client.get(f"/accounts/{org.ann_account.id}")
    assert response.status_code == 200
    assert "deleted in the CRM" in response.get_data(as_text=True)


# --- Formatting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "—"),
        (0, "$0"),
        (45_000, "$45,000"),
        (Decimal("999999.4"), "$999,999"),
        (1_000_000, "$1M"),
        (1_234_567, "$1.2M"),
        (1_250_000, "$1.3M"),
        (999_950, "$999,950"),
        (Decimal("999999.6"), "$1M"),
        (950_000_000, "$950M"),
        (999_960_000, "$1B"),
        (Decimal("45000.5"), "$45,001"),
        (2_500_000_000, "$2.5B"),
        (-45_000, "-$45,000"),
    ],
)
def test_money_reads_like_a_sales_team_writes_it(amount, text):
    assert money(amount) == text


def test_relative_dates_read_in_words():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=20), now) == "just now"
    assert ago(now - timedelta(minutes=5), now) == "5 minutes ago"
    assert ago(now - timedelta(hours=1), now) == "1 hour ago"
    assert ago(now - timedelta(days=3), now) == "3 days ago"
    assert ago(now + timedelta(days=2), now) == "in 2 days"
    assert ago(now - timedelta(days=90), now) == "22 Aug 2026"
    assert ago(date(2026, 11, 19), now) == "yesterday"
    assert ago(date(2026, 12, 1), now) == "in 11 days"


def test_safe_url_keeps_only_web_links():
    assert safe_url("https://x.example/a") == "https://x.example/a"
    assert safe_url(" JavaScript:alert(1)") is None
    assert safe_url(None) is None


def test_a_headline_is_the_first_line_without_markdown_markers():
    assert headline("\n\n## Win the plant\nDetails") == "Win the plant"
    assert headline("- Grow usage\n- More") == "Grow usage"
    assert headline("") == ""
    assert headline("x" * 200, limit=10) == "xxxxxxxxx…"


def test_a_headline_keeps_what_only_looks_like_a_marker_and_drops_inline_markup():
    assert (
        headline("**Cut** scrap by 20% with [the plant](https://example.com)")
        == "Cut scrap by 20% with the plant"
    )
    assert headline("-5% churn at the three largest sites") == "-5% churn at the three largest sites"
    assert headline("> 1. *Grow* usage") == "Grow usage"
    assert headline("Keep <b>tags</b> as typed") == "Keep <b>tags</b> as typed"
    assert headline("![Plant 2](plant.png) runs a second shift") == "Plant 2 runs a second shift"
    assert headline("---\n* * *\nWin the plant") == "Win the plant"
    assert headline("--- the plan, in short") == "--- the plan, in short"
