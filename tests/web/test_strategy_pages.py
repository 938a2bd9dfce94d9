"""Strategy pages: the editor, the tactics warning, history, conflicts, linking, suggestions, comments."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from app import create_app
from extensions import db as _db
from planning.models import Link, Strategy, StrategyComment, StrategyRevision, StrategyStatus
from planning.strategies import create_strategy, strategy_snapshot, update_strategy
from tests.factories import make_activity, make_opportunity, make_strategy
from web.accounts import long_date

NOW = datetime.now(UTC)
GOOD = {
    "objective": "Anvil's planners schedule line 2 in an hour instead of a day",
    "approach": "Run the pilot with their planning lead, then take the hours saved to the COO",
    "review_date": "2027-02-01",
    "status": "active",
}


@pytest.fixture(autouse=True)
def _committed(db: Session, org: Any) -> None:
    """Commit the org: a view that rolls back a failed save must not take the test's data with it."""
    db.commit()


def _strategy(db: Session, org: Any, **fields: Any) -> Strategy:
    strategy = create_strategy(db, org.ann, org.ann_account, {**GOOD, **fields})
    db.commit()
    return strategy


def _form_values(html: str) -> dict[str, str]:
    """The values the strategy form on a page would send, as a browser fills them in."""
    form = html[html.index('id="strategy-form"') :]
    form = form[: form.index("</form>")]
    values = {
        name: unescape(value)
        for name, value in re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form)
    }
    for name, text in re.findall(r'<textarea[^>]*name="(\w+)"[^>]*>(.*?)</textarea>', form, re.S):
        values[name] = unescape(text)
    for name, options in re.findall(r'<select[^>]*name="(\w+)"[^>]*>(.*?)</select>', form, re.S):
        selected = re.search(r'<option value="([^"]*)" selected', options)
        values[name] = unescape(selected.group(1)) if selected else ""
    return values


def _linked_ids(db: Session, strategy: Strategy) -> set[int]:
    db.expire_all()
    return set(db.scalars(select(Link.activity_id).where(Link.strategy_id == strategy.id)))


# --- the editor -------------------------------------------------------------------------------------


def test_the_owner_writes_a_strategy_and_lands_on_its_page(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    login_as(org.ann)
    form = client.get(f"/accounts/{org.ann_account.id}/strategies/new").get_data(as_text=True)
    assert 'name="objective"' in form and 'name="review_date"' in form and 'name="csrf_token"' in form

    response = client.post(f"/accounts/{org.ann_account.id}/strategies/new", data=GOOD)

    strategy = db.scalars(select(Strategy)).one()
    assert response.status_code == 302 and response.location == f"/strategies/{strategy.id}"
    assert strategy.status == StrategyStatus.ACTIVE and strategy.author_id == org.ann.id
    page = client.get(response.location).get_data(as_text=True)
    assert "Saved version 1" in page and "now link the activities" in page


def test_each_missing_piece_gets_a_message_next_to_its_field(
    client: FlaskClient, org: Any, login_as: Any
) -> None:
    login_as(org.ann)

    response = client.post(
        f"/accounts/{org.ann_account.id}/strategies/new",
        data={"status": "active", "customer_view": "They want fewer late orders", "target_date": "soon"},
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("objective", "approach", "review_date", "target_date"):
        assert f'id="error-{field}"' in html
        assert f'aria-describedby="hint-{field} error-{field}"' in html or f'error-{field}"' in html
    assert "An active strategy needs a review date" in html
    # What the rep typed is kept.
    assert "They want fewer late orders" in html


def test_activating_a_tactics_list_warns_with_the_phrases_and_can_be_confirmed(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    login_as(org.ann)
    tactics = {
        **GOOD,
        "objective": "Call the CFO and send the proposal",
        "approach": "Book a demo, follow up",
    }

    warned = client.post(f"/accounts/{org.ann_account.id}/strategies/new", data=tactics)
    html = warned.get_data(as_text=True)
    assert warned.status_code == 422
    assert "This reads like a list of tactics" in html
    assert "<q>Call the CFO</q>" in html and "<q>Book a demo</q>" in html
    assert 'name="activate_anyway" value="1"' in html
    assert db.scalars(select(Strategy)).first() is None

    confirmed = client.post(
        f"/accounts/{org.ann_account.id}/strategies/new", data={**tactics, "activate_anyway": "1"}
    )
    assert confirmed.status_code == 302
    assert db.scalars(select(Strategy)).one().status == StrategyStatus.ACTIVE


def test_markdown_is_previewed_and_shown_without_raw_html(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    login_as(org.ann)
    text = (
        "Their **planners** win <script>alert(1)</script> [x](javascript:alert(2)) "
        "<img src=x onerror=alert(3)>"
    )

    preview = client.post(
        f"/accounts/{org.ann_account.id}/strategies/new",
        data={**GOOD, "objective": text, "action": "preview"},
    ).get_data(as_text=True)
    assert "<strong>planners</strong>" in preview
    assert db.scalars(select(Strategy)).first() is None

    strategy = _strategy(db, org, objective=text)
    page = client.get(f"/strategies/{strategy.id}").get_data(as_text=True)
    assert "<strong>planners</strong>" in page
    for dangerous in ("<script>alert(1)", 'href="javascript:', "<img"):
        assert dangerous not in page
    # Raw HTML is shown as the text it is.
    assert "&lt;img src=x onerror=alert(3)&gt;" in page


def test_a_stale_save_shows_both_texts_and_a_merge_form(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    update_strategy(db, org.admin, strategy, {"approach": "Start with line 3, the admin says"}, version=1)
    db.commit()
    login_as(org.ann)

    conflict = client.post(
        f"/strategies/{strategy.id}/edit",
        data={**GOOD, "approach": "Start with line 2, Ann says", "version": "1"},
    )

    html = conflict.get_data(as_text=True)
    assert conflict.status_code == 409
    assert "Someone saved this strategy while you were editing" in html and "Ada Admin" in html
    assert "<del>3</del>" in html and "<ins>2</ins>" in html
    assert 'name="version" value="2"' in html
    assert "Start with line 2, Ann says</textarea>" in html
    db.expire_all()
    assert db.get(Strategy, strategy.id).approach == "Start with line 3, the admin says"

    merged = client.post(
        f"/strategies/{strategy.id}/edit", data={**GOOD, "approach": "Lines 2 and 3 together", "version": "2"}
    )
    assert merged.status_code == 302
    db.expire_all()
    assert (db.get(Strategy, strategy.id).approach, db.get(Strategy, strategy.id).version) == (
        "Lines 2 and 3 together",
        3,
    )


def test_the_merge_form_keeps_a_change_only_the_other_person_made(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org, customer_view="cv0", success_measure="sm0")
    login_as(org.ann)
    tab_b = _form_values(client.get(f"/strategies/{strategy.id}/edit").get_data(as_text=True))
    # Tab A saves a new success measure; tab B, still at version 1, edits only the customer's view.
    update_strategy(db, org.ann, strategy, {"success_measure": "sm by A"}, version=1)
    db.commit()

    conflict = client.post(
        f"/strategies/{strategy.id}/edit", data={**tab_b, "customer_view": "cv by B", "action": "save"}
    )

    html = conflict.get_data(as_text=True)
    assert conflict.status_code == 409
    assert "No field was changed both by you and in the saved version" in html
    assert "their change, kept" in html and "your change, kept" in html
    merged = _form_values(html)
    assert (merged["version"], merged["customer_view"], merged["success_measure"]) == (
        "2",
        "cv by B",
        "sm by A",
    )
    assert merged["objective"] == GOOD["objective"] and merged["status"] == "active"

    saved = client.post(f"/strategies/{strategy.id}/edit", data={**merged, "action": "save"})
    assert saved.status_code == 302
    db.expire_all()
    stored = db.get(Strategy, strategy.id)
    assert (stored.version, stored.customer_view, stored.success_measure) == (3, "cv by B", "sm by A")


def test_the_conflict_page_names_the_fields_both_sides_changed(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org, customer_view="cv0", success_measure="sm0", status="draft")
    login_as(org.ann)
    tab_b = _form_values(client.get(f"/strategies/{strategy.id}/edit").get_data(as_text=True))
    update_strategy(
        db,
        org.admin,
        strategy,
        {"success_measure": "sm by the admin", "approach": "Approach by the admin", "status": "active"},
        version=1,
    )
    db.commit()

    conflict = client.post(
        f"/strategies/{strategy.id}/edit",
        data={
            **tab_b,
            "success_measure": "sm by Ann",
            "customer_view": "cv by Ann",
            "status": "active",
            "action": "save",
        },
    )

    html = conflict.get_data(as_text=True)
    assert conflict.status_code == 409
    assert "1 field changed on both sides" in html
    assert "You and the saved version both changed: <strong>Success measure</strong>." in " ".join(
        html.split()
    )
    assert "<del>the admin</del>" in html and "<ins>Ann</ins>" in html
    assert 'data-field="success_measure" data-value="sm by the admin"' in html
    merged = _form_values(html)
    # The conflict holds Ann's text; the rest takes whichever side changed it.
    assert merged["success_measure"] == "sm by Ann"
    assert merged["approach"] == "Approach by the admin" and merged["customer_view"] == "cv by Ann"
    assert merged["status"] == "active"


def test_without_the_starting_version_in_the_history_every_difference_is_a_conflict(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    # Made without a first revision: version 1 has no snapshot to merge against.
    strategy = make_strategy(db, account=org.ann_account, status="draft", success_measure="sm0")
    update_strategy(db, org.admin, strategy, {"success_measure": "sm by the admin"}, version=1)
    db.commit()
    login_as(org.ann)

    conflict = client.post(
        f"/strategies/{strategy.id}/edit",
        data={"customer_view": "cv by Ann", "success_measure": "sm0", "version": "1"},
    )

    html = " ".join(conflict.get_data(as_text=True).split())
    assert conflict.status_code == 409
    assert "2 fields to settle" in html and "is not in the history" in html
    assert "<strong>Customer&#39;s point of view, Success measure</strong>" in html
    merged = _form_values(conflict.get_data(as_text=True))
    assert (merged["customer_view"], merged["success_measure"]) == ("cv by Ann", "sm0")


def test_a_save_that_changes_nothing_says_so_and_makes_no_version(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    login_as(org.ann)
    form = _form_values(client.get(f"/strategies/{strategy.id}/edit").get_data(as_text=True))

    response = client.post(f"/strategies/{strategy.id}/edit", data={**form, "action": "save"})

    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "No changes to save" in page and "Saved version" not in page
    db.expire_all()
    assert db.get(Strategy, strategy.id).version == 1
    assert (
        len(db.scalars(select(StrategyRevision).where(StrategyRevision.strategy_id == strategy.id)).all())
        == 1
    )


def test_history_compares_any_two_versions_side_by_side(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org, status="draft")
    update_strategy(
        db, org.ann, strategy, {"objective": "Anvil's planners schedule line 3 in an hour"}, version=1
    )
    update_strategy(db, org.ann, strategy, {"status": "active"}, version=2)
    db.commit()
    login_as(org.ann)

    latest = client.get(f"/strategies/{strategy.id}/history").get_data(as_text=True)
    assert "Version 2 → version 3" in latest
    chosen = client.get(f"/strategies/{strategy.id}/history?a=1&b=2").get_data(as_text=True)
    assert "Version 1 → version 2" in chosen
    assert "<del>2</del>" in chosen and "<ins>3</ins>" in chosen
    assert client.get(f"/strategies/{strategy.id}/history?a=1&b=9").status_code == 404


def test_history_says_which_versions_an_import_wrote(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org, status="draft")
    strategy.source, strategy.external_id = "file", "S1"
    db.add(
        StrategyRevision(
            strategy_id=strategy.id, version=2, author_id=None, created_at=NOW, changed_fields=["approach"],
            snapshot={**strategy_snapshot(strategy), "approach": "From the file"},
        )
    )  # fmt: skip
    strategy.version = 2
    db.commit()
    login_as(org.ann)

    html = client.get(f"/strategies/{strategy.id}/history").get_data(as_text=True)

    rows = re.findall(r"<tr>\s*<td><input.*?</tr>", html, flags=re.S)
    assert "The import (file)" in rows[0] and "Ann Archer" in rows[1]


def test_only_the_owner_or_an_admin_opens_the_editor(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    login_as(org.east)
    assert client.get(f"/strategies/{strategy.id}").status_code == 200
    refused = client.get(f"/strategies/{strategy.id}/edit")
    assert refused.status_code == 403
    # She may see it (and comment): not the "outside your accounts" page.
    text = " ".join(refused.get_data(as_text=True).split())
    assert "You can read this account&#39;s strategies but not change them" in text
    assert "Not yours to see" not in text
    assert client.get(f"/accounts/{org.ann_account.id}/strategies/new").status_code == 403
    login_as(org.bob)
    assert client.get(f"/strategies/{strategy.id}").status_code == 403
    assert client.get("/strategies/999999").status_code == 404


# --- linking ----------------------------------------------------------------------------------------


def test_ticked_activities_link_to_a_chosen_strategy_and_unlink(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    calls = [
        make_activity(db, account=org.ann_account, occurred_at=NOW - timedelta(days=d + 1)) for d in range(3)
    ]
    db.commit()
    login_as(org.ann)
    page = client.get(f"/accounts/{org.ann_account.id}").get_data(as_text=True)
    assert page.count('name="activity_ids"') == 3 and f'<option value="{strategy.id}">' in page

    linked = client.post(
        f"/accounts/{org.ann_account.id}/links",
        data={"strategy_id": strategy.id, "activity_ids": [calls[0].id, calls[1].id], "action": "link"},
        follow_redirects=True,
    )
    assert "Linked 2 activities to the strategy." in linked.get_data(as_text=True)
    assert _linked_ids(db, strategy) == {calls[0].id, calls[1].id}

    client.post(
        f"/accounts/{org.ann_account.id}/links",
        data={"strategy_id": strategy.id, "activity_ids": [calls[0].id], "action": "unlink"},
    )
    assert _linked_ids(db, strategy) == {calls[1].id}


def test_linking_says_what_it_did_and_refuses_unknown_actions(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    linked, fresh = (make_activity(db, account=org.ann_account, occurred_at=NOW) for _ in range(2))
    db.add(Link(activity_id=linked.id, strategy_id=strategy.id))
    db.commit()
    login_as(org.ann)
    path = f"/accounts/{org.ann_account.id}/links"

    again = client.post(
        path, data={"strategy_id": strategy.id, "activity_ids": [linked.id]}, follow_redirects=True
    ).get_data(as_text=True)
    assert "that activity was already linked to this strategy" in again and "Linked 0" not in again
    both = client.post(
        path, data={"strategy_id": strategy.id, "activity_ids": [linked.id, fresh.id]}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Linked 1 activity to the strategy. 1 activity was already linked to it." in both
    unknown = client.post(
        path, data={"strategy_id": strategy.id, "activity_ids": [99999999]}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Nothing was linked: 1 ticked activity no longer exists." in unknown

    db.execute(Link.__table__.delete().where(Link.activity_id == fresh.id))
    db.commit()
    bogus = client.post(
        path, data={"strategy_id": strategy.id, "activity_ids": [fresh.id], "action": "bogus"}
    )
    assert bogus.status_code == 400
    assert _linked_ids(db, strategy) == {linked.id}


def test_linking_an_activity_someone_links_at_the_same_moment_is_a_message_not_an_error(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy, other = _strategy(db, org, objective="one"), _strategy(db, org, objective="two")
    fresh = make_activity(db, account=org.ann_account, occurred_at=NOW)
    db.commit()
    login_as(org.ann)

    raced: list[bool] = []

    def someone_else_links_it_first(session: Any, *_: Any) -> None:
        # Another request's link of the same activity lands between our check and our insert.
        if not raced and any(isinstance(item, Link) for item in session.new):
            raced.append(True)
            session.connection().execute(
                insert(Link.__table__).values(activity_id=fresh.id, strategy_id=other.id, created_at=NOW)
            )

    for send in (
        lambda: client.post(
            f"/accounts/{org.ann_account.id}/links",
            data={"strategy_id": strategy.id, "activity_ids": [fresh.id]},
        ),
        lambda: client.post(f"/strategies/{strategy.id}/suggestions/{fresh.id}/accept"),
    ):
        raced.clear()
        event.listen(db, "before_flush", someone_else_links_it_first)
        try:
            response = send()
        finally:
            event.remove(db, "before_flush", someone_else_links_it_first)
        assert raced and response.status_code == 302
        page = client.get(response.location).get_data(as_text=True)
        assert "someone linked one of these activities at the same moment. Try again." in page
        assert _linked_ids(db, strategy) == set()


def test_unlinking_one_activity_says_when_nothing_was_unlinked(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    first = _strategy(db, org, status="draft", objective="first")
    second = _strategy(db, org, status="draft", objective="second")
    call = make_activity(db, account=org.ann_account, occurred_at=NOW, subject="Pricing call")
    db.add(Link(activity_id=call.id, strategy_id=first.id))
    db.commit()
    login_as(org.ann)

    elsewhere = client.post(f"/strategies/{second.id}/unlink/{call.id}")
    assert elsewhere.status_code == 302 and elsewhere.location == f"/strategies/{second.id}#linked"
    page = client.get(elsewhere.location).get_data(as_text=True)
    assert "Nothing was unlinked: “Pricing call” is not linked to this strategy (it serves another" in page
    assert "Unlinked the activity" not in page
    assert _linked_ids(db, first) == {call.id}

    # Of another account's activity (perhaps out of the user's scope) it says no more than its id.
    theirs = make_activity(db, account=org.bob_account, occurred_at=NOW, subject="Bob's secret call")
    db.add(Link(activity_id=theirs.id, strategy_id=make_strategy(db, account=org.bob_account).id))
    db.commit()
    other = client.post(f"/strategies/{first.id}/unlink/{theirs.id}", follow_redirects=True).get_data(
        as_text=True
    )
    assert f"Nothing was unlinked: activity {theirs.id} is not linked to this strategy." in other
    assert "secret" not in other

    assert client.post(f"/strategies/{first.id}/unlink/99999999").status_code == 404
    unlinked = client.post(f"/strategies/{first.id}/unlink/{call.id}", follow_redirects=True)
    assert "Unlinked the activity." in unlinked.get_data(as_text=True)
    assert _linked_ids(db, first) == set()


def test_the_timeline_filters_by_kind_date_and_link(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    call = make_activity(
        db, account=org.ann_account, occurred_at=datetime(2026, 10, 5, 9, tzinfo=UTC), subject="Oct call"
    )
    make_activity(
        db, account=org.ann_account, occurred_at=datetime(2026, 9, 5, tzinfo=UTC), subject="Sep call"
    )
    make_activity(
        db,
        account=org.ann_account,
        occurred_at=datetime(2026, 10, 6, tzinfo=UTC),
        subject="Oct email",
        kind="email",
    )
    db.add(Link(activity_id=call.id, strategy_id=strategy.id))
    db.commit()
    login_as(org.ann)

    def subjects(query: str) -> list[str]:
        html = client.get(f"/accounts/{org.ann_account.id}?{query}").get_data(as_text=True)
        return re.findall(r"<td>((?:Oct|Sep) \w+)</td>", html)

    assert subjects("kind=call") == ["Oct call", "Sep call"]
    assert subjects("from=2026-10-01&to=2026-10-05") == ["Oct call"]
    assert subjects("linked=unlinked") == ["Oct email", "Sep call"]
    assert subjects("kind=fax&from=garbage&to=9999-12-31") == ["Oct email", "Oct call", "Sep call"]


def test_linking_refuses_another_accounts_activity_and_moves_only_on_purpose(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    first = _strategy(db, org, status="draft")
    second = _strategy(db, org, status="draft")
    mine = make_activity(db, account=org.ann_account, occurred_at=NOW)
    foreign = make_activity(db, account=org.bob_account, occurred_at=NOW)
    db.add(Link(activity_id=mine.id, strategy_id=first.id))
    db.commit()
    login_as(org.ann)
    path = f"/accounts/{org.ann_account.id}/links"

    refused = client.post(
        path, data={"strategy_id": second.id, "activity_ids": [foreign.id]}, follow_redirects=True
    )
    # Counted, not named: Bob's account is not Ann's to see.
    assert "Nothing was linked: 1 ticked activity belongs to another account." in refused.get_data(
        as_text=True
    )
    assert foreign.subject not in refused.get_data(as_text=True)
    elsewhere = client.post(
        path, data={"strategy_id": second.id, "activity_ids": [mine.id]}, follow_redirects=True
    )
    assert "already serves another strategy (tick “Move if linked elsewhere” to move it)" in (
        elsewhere.get_data(as_text=True)
    )
    assert _linked_ids(db, first) == {mine.id}

    assert f"Nothing was linked: “{mine.subject}” ({long_date(mine.occurred_at)}) already serves" in (
        elsewhere.get_data(as_text=True)
    )

    client.post(path, data={"strategy_id": second.id, "activity_ids": [mine.id], "move": "1"})
    assert _linked_ids(db, second) == {mine.id} and _linked_ids(db, first) == set()


def test_linking_sends_the_rep_back_but_never_off_site(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    call = make_activity(db, account=org.ann_account, occurred_at=NOW)
    db.commit()
    login_as(org.ann)
    path = f"/accounts/{org.ann_account.id}/links"
    data = {"strategy_id": strategy.id, "activity_ids": [call.id]}

    back = client.post(path, data={**data, "next": f"/accounts/{org.ann_account.id}?kind=call"})
    assert back.location == f"/accounts/{org.ann_account.id}?kind=call"
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        response = client.post(path, data={**data, "next": target})
        assert response.location == f"/accounts/{org.ann_account.id}"


def test_a_suggestion_is_accepted_with_one_click(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    opportunity = make_opportunity(db, account=org.ann_account, name="Line 2 scheduling")
    strategy = _strategy(db, org, opportunity_id=opportunity.id)
    suggested = make_activity(
        db,
        account=org.ann_account,
        occurred_at=NOW - timedelta(days=2),
        subject="Pricing",
        opportunity_id=opportunity.id,
    )
    db.commit()
    login_as(org.ann)
    page = client.get(f"/strategies/{strategy.id}").get_data(as_text=True)
    accept = f"/strategies/{strategy.id}/suggestions/{suggested.id}/accept"
    assert f'action="{accept}"' in page and "on the opportunity this strategy targets" in page

    assert client.post(accept).status_code == 302
    assert _linked_ids(db, strategy) == {suggested.id}
    again = client.post(accept, follow_redirects=True).get_data(as_text=True)
    assert "Nothing changed: that activity was already linked to this strategy." in again


def test_a_suggestion_linked_elsewhere_meanwhile_says_where_to_move_it(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    other = _strategy(db, org, status="draft", objective="other")
    call = make_activity(db, account=org.ann_account, occurred_at=NOW)
    db.add(Link(activity_id=call.id, strategy_id=other.id))
    db.commit()
    login_as(org.ann)

    page = client.post(
        f"/strategies/{strategy.id}/suggestions/{call.id}/accept", follow_redirects=True
    ).get_data(as_text=True)

    assert "already serves another strategy" in page
    assert "tick it on the account&#39;s timeline with “Move if linked elsewhere”" in page
    assert "tick “Move” to move it" not in page
    assert _linked_ids(db, other) == {call.id}


# --- comments, dashboard, list ----------------------------------------------------------------------


def test_a_manager_comments_and_another_teams_rep_cannot(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    login_as(org.east)
    client.post(f"/strategies/{strategy.id}/comments", data={"body": "Which line first?"})
    assert "Which line first?" in client.get(f"/strategies/{strategy.id}").get_data(as_text=True)
    login_as(org.bob)
    assert client.post(f"/strategies/{strategy.id}/comments", data={"body": "Hi"}).status_code == 403
    assert [comment.body for comment in db.scalars(select(StrategyComment))] == ["Which line first?"]


def test_a_refused_comment_comes_back_in_its_box_with_the_reason(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    strategy = _strategy(db, org)
    login_as(org.east)
    long_text = "Which line first? <b>" + "x" * 5000

    response = client.post(f"/strategies/{strategy.id}/comments", data={"body": long_text})

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Which line first? &lt;b&gt;" + "x" * 5000 + "</textarea>" in html
    assert 'aria-describedby="comment-body-error"' in html and "5,000 characters" in html
    assert db.scalars(select(StrategyComment)).all() == []


def test_the_account_list_can_put_uncovered_activity_first_with_badges(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    from tests.factories import make_account

    quiet = make_account(db, owner=org.ann, name="Aardvark Quiet")
    busy = make_account(db, owner=org.ann, name="Zebra Busy")
    for day in range(4):
        make_activity(db, account=busy, occurred_at=NOW - timedelta(days=day + 1))
    strategy = make_strategy(db, account=quiet)
    make_activity(db, account=quiet, occurred_at=NOW - timedelta(days=1))
    assert strategy.review_date is None
    login_as(org.ann)

    html = client.get("/accounts?sort=priority").get_data(as_text=True)
    names = re.findall(r'class="account-link" href="/accounts/\d+">([^<]+)</a>', html)
    assert names[0] == "Zebra Busy" and names.index("Zebra Busy") < names.index("Aardvark Quiet")
    assert "Unlinked activity" in html and "Stale strategy" in html


def test_the_dashboard_page_shows_the_teams_figures(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    _strategy(db, org)
    make_opportunity(db, account=org.amir_account, amount=75_000)
    login_as(org.east)

    html = client.get("/dashboard").get_data(as_text=True)

    assert "50%" in html and "of 2 accounts have an active strategy" in html
    assert "$75,000" in html and "Ann Archer" in html and "Amir Aziz" in html


def test_forms_without_a_csrf_token_are_refused(app: Any, db: Session, org: Any) -> None:
    strategy = _strategy(db, org)
    guarded = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "SECRET_KEY": "test-secret-key",
            "WTF_CSRF_ENABLED": True,
        }
    )
    client = guarded.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(org.ann.id)
        session["_fresh"] = True
    try:
        for path in (
            f"/accounts/{org.ann_account.id}/strategies/new",
            f"/strategies/{strategy.id}/edit",
            f"/accounts/{org.ann_account.id}/links",
            f"/strategies/{strategy.id}/comments",
        ):
            assert client.post(path, data={**GOOD, "version": "1", "body": "x"}).status_code == 400, path
        assert client.get(f"/accounts/{org.ann_account.id}/strategies/new").status_code == 200
    finally:
        with guarded.app_context():
            _db.engine.dispose()


def test_odd_query_strings_on_the_account_pages_never_fail(
    client: FlaskClient, org: Any, login_as: Any
) -> None:
    login_as(org.ann)
    for url in (
        "/accounts?q=%00",
        "/accounts?q=%00&sort=priority",
        f"/accounts/{org.ann_account.id}?from=0001-01-01&to=9999-12-31&kind=%00&linked=maybe",
        f"/accounts/{org.ann_account.id}?page=99999999999",
    ):
        assert client.get(url).status_code == 200, url


def test_refusals_name_the_activities_as_the_timeline_shows_them_and_say_it_once(
    client: FlaskClient, db: Session, org: Any, login_as: Any
) -> None:
    first = _strategy(db, org, status="draft")
    second = _strategy(db, org, status="draft")
    subjects = ["Intro call", "Pricing sheet", "Site visit", "Follow-up", "Recap"]
    ticked = [
        make_activity(db, account=org.ann_account, occurred_at=datetime(2026, 11, day, tzinfo=UTC), subject=s)
        for day, s in enumerate(subjects, start=2)
    ]
    db.add_all(Link(activity_id=activity.id, strategy_id=first.id) for activity in ticked)
    db.commit()
    login_as(org.ann)
    path = f"/accounts/{org.ann_account.id}/links"

    refused = client.post(
        path, data={"strategy_id": second.id, "activity_ids": [a.id for a in ticked]}, follow_redirects=True
    )
    unlinked = client.post(
        path,
        data={"strategy_id": second.id, "activity_ids": [ticked[0].id], "action": "unlink"},
        follow_redirects=True,
    )

    text = " ".join(refused.get_data(as_text=True).split())
    assert (
        "Nothing was linked: “Recap” (6 Nov 2026), “Follow-up” (5 Nov 2026), “Site visit” (4 Nov 2026) and 2 "
        "more already serve another strategy (tick “Move if linked elsewhere” to move them)."
    ) in text
    assert text.count("already serve") == 1
    assert "Nothing was unlinked: none of the ticked activities is linked to the chosen strategy." in (
        unlinked.get_data(as_text=True)
    )
    assert _linked_ids(db, first) == {activity.id for activity in ticked}
