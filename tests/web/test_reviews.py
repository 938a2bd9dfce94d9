"""The review pages: what each role sees, the words, the links, the rule filter, running a review."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, select

from extensions import db as extension
from planning.models import Activity, Finding, Review, Strategy
from planning.review import run_review
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy, make_user, utc

D = date(2026, 10, 31)


def weekly(db, as_of=D):
    result = run_review(db, as_of, window_days=30, min_activities=5, stale_days=60)
    db.commit()
    return result


@pytest.fixture
def flagged(db, org):
    """Anvil (Ann): tactics, no strategy; Amber (Amir): stale strategy; Bluebird (Bob): unlinked tactics."""
    for _ in range(7):
        make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 20))
    for _ in range(2):
        make_activity(db, account=org.ann_account, kind="email", occurred_at=utc(2026, 10, 21))
    make_activity(db, account=org.ann_account, kind="contract", occurred_at=utc(2026, 10, 3))
    make_opportunity(db, account=org.ann_account, amount=45000)
    make_strategy(db, account=org.amir_account, review_date=date(2026, 9, 1))
    plan = make_strategy(db, account=org.bob_account)
    link(db, plan, make_activity(db, account=org.bob_account, occurred_at=utc(2026, 10, 2)))
    for _ in range(5):
        make_activity(db, account=org.bob_account, occurred_at=utc(2026, 10, 25))
    return weekly(db)


def account_names(html):
    return re.findall(r'class="account-link" href="/accounts/\d+">([^<]+)</a>', html)


def test_a_rep_sees_only_their_own_findings_in_words_with_a_link(login_as, org, flagged):
    html = login_as(org.ann).get("/reviews").get_data(as_text=True)

    assert account_names(html) == ["Anvil Works"]
    assert "7 calls, 2 emails and a contract in 30 days — no strategy" in html
    assert f'href="/accounts/{org.ann_account.id}"' in html
    assert "$45,000" in html
    assert "Run the review" not in html


def test_a_manager_sees_their_team_grouped_by_rep(login_as, org, flagged):
    html = login_as(org.east).get("/reviews").get_data(as_text=True)

    assert sorted(account_names(html)) == ["Amber Foods", "Anvil Works"]
    assert "Eli East's team" in html
    assert html.index("Amir Aziz") < html.index("Ann Archer")
    assert "Strategy review overdue (due 2026-09-01)" in html
    assert "Bluebird" not in html


def test_the_vp_sees_every_team_grouped_by_manager(login_as, org, flagged):
    html = login_as(org.vp).get("/reviews").get_data(as_text=True)

    assert sorted(account_names(html)) == ["Amber Foods", "Anvil Works", "Bluebird Freight"]
    assert html.index("Eli East's team") < html.index("Wendy West's team")
    assert "5 calls in 30 days — not linked to the active strategy" in html


def test_findings_can_be_filtered_by_rule(login_as, org, flagged):
    client = login_as(org.vp)

    stale = client.get("/reviews?rule=stale_strategy").get_data(as_text=True)
    tactics = client.get(f"/reviews/{flagged.id}?rule=tactics_without_strategy").get_data(as_text=True)
    ignored = client.get("/reviews?rule=<script>").get_data(as_text=True)

    assert account_names(stale) == ["Amber Foods"]
    assert sorted(account_names(tactics)) == ["Anvil Works", "Bluebird Freight"]
    assert len(account_names(ignored)) == 3
    assert "<script>" not in ignored


def team_links(html):
    return re.findall(r'class="team-link" href="([^"]+)">([^<]+)</a>', html)


def test_past_the_page_limit_the_vp_picks_a_team_then_sees_only_its_findings(app, login_as, org, flagged):
    app.config["REVIEW_PAGE_FINDINGS"] = 2
    client = login_as(org.vp)

    html = client.get("/reviews").get_data(as_text=True)

    assert account_names(html) == []
    assert "3 findings are more than one page lists: pick a team." in html
    assert team_links(html) == [
        (f"/reviews?team={org.east.id}", "Eli East's team"),
        (f"/reviews?team={org.west.id}", "Wendy West's team"),
    ]
    east = client.get(f"/reviews?team={org.east.id}").get_data(as_text=True)
    assert sorted(account_names(east)) == ["Amber Foods", "Anvil Works"]
    assert "Showing <strong>Eli East's team</strong> only" in east
    assert '<a href="/reviews">all teams</a>' in east
    stale_in_west = client.get(f"/reviews/{flagged.id}?rule=stale_strategy&team={org.west.id}")
    assert "Nothing to report for this rule in this team." in stale_in_west.get_data(as_text=True)
    # Said of strategies, not of activity: Bluebird's activity is not covered, and the page must not say so.
    assert "is within its review date and has recent linked activity" in stale_in_west.get_data(as_text=True)
    assert "covered by a strategy" not in stale_in_west.get_data(as_text=True)


def test_the_team_choice_keeps_the_rule_filter_and_counts_per_status(app, login_as, org, flagged):
    app.config["REVIEW_PAGE_FINDINGS"] = 0
    html = login_as(org.vp).get(f"/reviews/{flagged.id}?rule=tactics_without_strategy").get_data(as_text=True)

    rows = re.findall(r'class="team-link" href="([^"]+)">[^<]+</a></td>\s*<td class="num">(\d+)</td>', html)
    assert rows == [
        (f"/reviews/{flagged.id}?team={org.east.id}&amp;rule=tactics_without_strategy", "1"),
        (f"/reviews/{flagged.id}?team={org.west.id}&amp;rule=tactics_without_strategy", "1"),
    ]


def test_accounts_of_people_without_a_manager_and_without_an_owner_make_the_no_manager_team(
    app, db, login_as, org
):
    accounts = [make_account(db, owner=org.vp, name="Vera Own Co"), make_account(db, name="Ownerless Ltd")]
    for account in [*accounts, org.bob_account]:
        make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 20))
    weekly(db)
    app.config["REVIEW_PAGE_FINDINGS"] = 0
    client = login_as(org.vp)

    teams = team_links(client.get("/reviews").get_data(as_text=True))
    no_manager = client.get("/reviews?team=none").get_data(as_text=True)

    assert teams == [
        (f"/reviews?team={org.west.id}", "Wendy West's team"),
        ("/reviews?team=none", "No manager"),
    ]
    assert sorted(account_names(no_manager)) == ["Ownerless Ltd", "Vera Own Co"]
    assert "Showing <strong>the accounts of people without a manager</strong> only" in no_manager


def test_a_team_filter_never_widens_what_someone_may_see(app, login_as, org, flagged):
    app.config["REVIEW_PAGE_FINDINGS"] = 0
    client = login_as(org.ann)

    # Past the limit, but all of Ann's findings are in one team: no choice to make.
    assert account_names(client.get("/reviews").get_data(as_text=True)) == ["Anvil Works"]
    own_team = client.get(f"/reviews?team={org.east.id}").get_data(as_text=True)

    assert account_names(own_team) == ["Anvil Works"]
    # Another team, or the people without a manager, is outside her scope: not an empty "all clear".
    for outside in (org.west.id, "none"):
        assert client.get(f"/reviews?team={outside}").status_code == 403
    for bad in ("abc", "0", "²", "-1", "99999999999999999999", "99999", org.ann.id):
        assert client.get(f"/reviews?team={bad}").status_code == 404


def test_a_team_is_named_even_when_the_rule_or_review_leaves_it_nothing(app, login_as, org, flagged):
    # West has one finding, on the tactics rule: its stale tab is empty but still West's.
    app.config["REVIEW_PAGE_FINDINGS"] = 0
    vp = login_as(org.vp)

    stale_in_west = vp.get(f"/reviews?rule=stale_strategy&team={org.west.id}").get_data(as_text=True)

    assert "Showing <strong>Wendy West's team</strong> only" in stale_in_west
    assert "Nothing to report for this rule in this team." in stale_in_west
    # A rep's own manager names their team; a rep's id names no team.
    ann = login_as(org.ann).get(f"/reviews?rule=stale_strategy&team={org.east.id}").get_data(as_text=True)
    assert "Showing <strong>Eli East's team</strong> only" in ann
    assert login_as(org.vp).get(f"/reviews?team={org.ann.id}").status_code == 404


def test_counts_of_a_thousand_or_more_read_with_separators(db, login_as, org):
    review = Review(as_of=D, window_days=30, min_activities=5, stale_days=60, timezone="UTC")
    db.add(review)
    db.flush()
    row = {"review_id": review.id, "rule": "tactics_without_strategy", "reason": "no_strategy"}
    db.execute(
        insert(Finding),
        [{**row, "status": "persisting", "account_id": org.ann_account.id, "owner_id": org.ann.id}] * 1233
        + [{**row, "status": "persisting", "account_id": org.bob_account.id, "owner_id": org.bob.id}],
    )
    db.commit()

    html = login_as(org.vp).get("/reviews").get_data(as_text=True)

    figures = re.findall(r'<span class="figure-value[^"]*">([^<]+)</span>', html)
    assert figures == ["1,234", "0", "1,234", "0"]
    assert "1,234 findings are more than one page lists" in html


def test_badges_say_new_persisting_and_resolved(db, login_as, org, flagged):
    everything_at_anvil = db.scalars(select(Activity).where(Activity.account_id == org.ann_account.id)).all()
    link(db, make_strategy(db, account=org.ann_account), *everything_at_anvil)
    make_activity(db, account=org.amir_account, kind="contract", occurred_at=utc(2026, 11, 3))
    later = weekly(db, as_of=date(2026, 11, 3))

    html = login_as(org.vp).get(f"/reviews/{later.id}").get_data(as_text=True)
    rows = re.findall(
        r'badge badge-(\w+)">\w+</span></td>\s*<td>\s*<a class="account-link" href="/accounts/\d+">([^<]+)<',
        html,
    )
    assert sorted(rows) == [
        ("new", "Amber Foods"),
        ("persisting", "Amber Foods"),
        ("persisting", "Bluebird Freight"),
        ("resolved", "Anvil Works"),
    ]


def test_an_overdue_strategy_moved_on_keeps_the_due_date_it_was_judged_by(db, login_as, org, flagged):
    # Amir answers the review by moving Amber's review date on (next week it is flagged for no recent
    # activity instead); the review of D still says what it found then.
    amber = db.scalars(select(Strategy).where(Strategy.account_id == org.amir_account.id)).one()
    amber.review_date = date(2026, 12, 15)
    db.commit()
    later = weekly(db, as_of=date(2026, 11, 7))
    client = login_as(org.east)

    then = client.get(f"/reviews/{flagged.id}?rule=stale_strategy").get_data(as_text=True)
    assert account_names(then) == ["Amber Foods"]
    assert "Strategy review overdue (due 2026-09-01)" in then
    now = client.get(f"/reviews/{later.id}?rule=stale_strategy").get_data(as_text=True)
    assert "No activity linked to the strategy in 60 days" in now


def test_the_oldest_uncovered_activity_is_dated_in_the_reviews_time_zone(db, login_as, org):
    for _ in range(5):
        make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 20))
    make_activity(db, account=org.ann_account, occurred_at=utc(2026, 10, 2, 3))  # 1 Oct, 20:00 in Los Angeles
    shown = run_review(db, D, window_days=31, min_activities=5, stale_days=60, timezone="America/Los_Angeles")
    db.commit()

    html = login_as(org.ann).get(f"/reviews/{shown.id}").get_data(as_text=True)

    # A date in the zone the window was counted in, which stays true as the review ages.
    assert '<time datetime="2026-10-02T03:00:00+00:00">1 Oct 2026</time>' in html


def test_the_page_says_when_no_review_has_run(login_as, org):
    response = login_as(org.ann).get("/reviews")

    assert response.status_code == 200
    assert "No review has run yet." in response.get_data(as_text=True)


def test_an_unknown_review_is_not_found(login_as, org, flagged):
    client = login_as(org.vp)
    assert client.get(f"/reviews/{flagged.id + 1}").status_code == 404
    assert client.get("/reviews/99999999999999").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, flagged):
    response = client.get("/reviews")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_the_date_picker_offers_no_day_after_today_in_the_review_time_zone(app, login_as, org, flagged):
    client = login_as(org.east)
    offered = {}
    # 25 hours apart: these two zones never share a date.
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        app.config["REVIEW_TIMEZONE"] = zone
        page = client.get("/reviews").get_data(as_text=True)
        [offered[zone]] = re.findall(r'<input type="date" id="run-as-of" name="as_of" max="([\d-]+)">', page)

    assert offered == {zone: datetime.now(ZoneInfo(zone)).date().isoformat() for zone in offered}
    assert offered["Pacific/Kiritimati"] > offered["Pacific/Pago_Pago"]
    # A zone the review cannot use leaves the picker open, and running says what is wrong.
    app.config["REVIEW_TIMEZONE"] = "Mars/Olympus_Mons"
    page = client.get("/reviews")
    assert page.status_code == 200
    assert '<input type="date" id="run-as-of" name="as_of">' in page.get_data(as_text=True)
    client.post("/reviews/run", data={"as_of": ""})
    assert "unknown time zone" in client.get("/reviews").get_data(as_text=True)


def test_managers_run_a_review_from_the_page_and_reps_may_not(db, login_as, org, flagged):
    client = login_as(org.ann)
    refused = client.post("/reviews/run", data={"as_of": "2026-11-07"})
    assert refused.status_code == 403
    assert "Only managers and admins may run the review." in refused.get_data(as_text=True)

    client = login_as(org.east)
    page = client.get("/reviews").get_data(as_text=True)
    assert "Run the review" in page
    response = client.post("/reviews/run", data={"as_of": "2026-11-07"})

    ran = db.scalars(select(Review).where(Review.as_of == date(2026, 11, 7))).one()
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/reviews/{ran.id}")
    for bad, why in (
        ("yesterday", "write it as YYYY-MM-DD"),
        ("2026-02-30", "write it as YYYY-MM-DD"),
        ("0001-01-01", "as_of must be between"),
        ("2999-01-01", "is after today"),
    ):
        assert client.post("/reviews/run", data={"as_of": bad}).headers["Location"] == "/reviews"
        page = client.get("/reviews").get_data(as_text=True)
        assert f"No review ran: “{bad}” is not a day the review can use" in page
        assert why in page
    assert db.scalars(select(Review.as_of)).all() == [D, date(2026, 11, 7)]


def test_the_message_after_a_run_counts_the_open_findings_the_manager_may_see(db, login_as, org, flagged):
    client = login_as(org.east)  # Ann's and Amir's manager: Bob's finding is not theirs

    client.post("/reviews/run", data={"as_of": D.isoformat()})

    page = client.get(f"/reviews/{flagged.id}").get_data(as_text=True)
    assert "Review as of 2026-10-31 done. Open findings on the accounts you see: 2 (2 new)." in page


@pytest.mark.parametrize("page_limit", [500, 0], ids=["every-finding", "team-choice"])
def test_the_page_issues_the_same_number_of_queries_for_few_and_many_findings(
    app, db, login_as, org, page_limit
):
    app.config["REVIEW_PAGE_FINDINGS"] = page_limit

    def statements_on_page(as_of):
        client = login_as(org.vp)
        count = 0

        def counted(*_):
            nonlocal count
            count += 1

        event.listen(extension.engine, "before_cursor_execute", counted)
        try:
            assert client.get("/reviews").status_code == 200
        finally:
            event.remove(extension.engine, "before_cursor_execute", counted)
        return count

    for account in (org.ann_account, org.amir_account, org.bob_account):  # two teams
        make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 20))
    weekly(db)
    few = statements_on_page(D)
    for index in range(20):
        rep = make_user(db, manager=[org.east, org.west][index % 2])
        account = make_account(db, owner=rep)
        make_activity(db, account=account, kind="contract", occurred_at=utc(2026, 10, 20))
        make_strategy(db, account=account, review_date=date(2026, 1, 1))
    weekly(db)
    many = statements_on_page(D)

    assert many == few
