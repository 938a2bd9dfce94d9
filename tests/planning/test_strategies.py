"""Writing strategies: validation, activation, optimistic versions, revisions and comparisons."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from planning.models import Role, StrategyRevision, StrategyStatus
from planning.strategies import (
    CONFLICT,
    MINE,
    SAME,
    THEIRS,
    UNCHANGED,
    NotAllowed,
    NotFound,
    ReadsLikeTactics,
    StaleVersion,
    StrategyInvalid,
    account_for_viewer,
    compare_versions,
    create_strategy,
    merge_fields,
    merge_stale_edit,
    revisions_of,
    strategy_for_viewer,
    update_strategy,
    word_diff,
)
from tests.factories import make_account, make_opportunity, make_user

GOOD = {
    "objective": "Acme's plant runs a second shift without new hires",
    "customer_view": "The COO needs output up 20% before the new contract starts.",
    "approach": "Prove the scheduling pilot on line 2 with their planner, then take the numbers to the COO.",
    "success_measure": "Line 2 output up 15% by March",
    "target_date": "2027-03-31",
    "review_date": "2026-12-15",
}


@pytest.fixture
def rep(db: Session):
    return make_user(db, role=Role.REP)


@pytest.fixture
def account(db: Session, rep):
    return make_account(db, owner=rep)


def test_a_new_strategy_is_a_draft_at_version_one_with_its_first_revision(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, GOOD)
    db.commit()

    assert strategy.status == StrategyStatus.DRAFT
    assert strategy.version == 1
    assert strategy.author_id == rep.id
    assert strategy.target_date == date(2027, 3, 31)
    [revision] = revisions_of(db, strategy)
    assert revision.version == 1
    assert revision.author_id == rep.id
    assert "objective" in revision.changed_fields and "review_date" in revision.changed_fields
    assert revision.snapshot["target_date"] == "2027-03-31"
    assert revision.snapshot["status"] == "draft"
    assert revision.snapshot["opportunity_id"] is None


def test_activating_needs_an_objective_an_approach_and_a_review_date(db: Session, rep, account) -> None:
    with pytest.raises(StrategyInvalid) as raised:
        create_strategy(db, rep, account, {"status": "active", "customer_view": "They want less downtime"})

    assert set(raised.value.errors) == {"objective", "approach", "review_date"}
    assert "outcome" in raised.value.errors["objective"]


def test_an_achieved_strategy_needs_an_objective_and_an_approach_but_no_review_date(
    db: Session, rep, account
) -> None:
    # Achieved covers its linked activities in the review, as active does: an empty one must not.
    draft = create_strategy(db, rep, account, {"customer_view": "They want less downtime"})
    with pytest.raises(StrategyInvalid) as raised:
        update_strategy(db, rep, draft, {"status": "achieved"}, version=draft.version)

    assert set(raised.value.errors) == {"objective", "approach"}
    assert raised.value.errors["objective"].startswith("An achieved strategy needs an objective")
    done = {"status": "achieved", "objective": "Downtime halved", "approach": "Weekly plant visits"}
    assert update_strategy(db, rep, draft, done, version=draft.version).status == StrategyStatus.ACHIEVED


def test_bad_fields_each_get_their_own_message(db: Session, rep, account) -> None:
    with pytest.raises(StrategyInvalid) as raised:
        create_strategy(
            db,
            rep,
            account,
            {
                "target_date": "next spring",
                "review_date": "2026-02-30",
                "status": "paused",
                "objective": 42,
                "approach": "nul\x00byte",
                "colour": "blue",
            },
        )

    errors = raised.value.errors
    assert set(errors) == {"target_date", "review_date", "status", "objective", "approach", "colour"}
    assert "next spring" in errors["target_date"]
    assert "draft" in errors["status"]


def test_the_opportunity_must_belong_to_the_account(db: Session, rep, account) -> None:
    other = make_account(db, owner=rep)
    elsewhere = make_opportunity(db, account=other)
    ours = make_opportunity(db, account=account)

    with pytest.raises(StrategyInvalid) as raised:
        create_strategy(db, rep, account, {**GOOD, "opportunity_id": elsewhere.id})
    assert "opportunity_id" in raised.value.errors

    strategy = create_strategy(db, rep, account, {**GOOD, "opportunity_id": ours.id})
    assert strategy.opportunity_id == ours.id


def test_an_update_bumps_the_version_and_records_the_changed_fields(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, GOOD)
    db.commit()

    update_strategy(
        db, rep, strategy, {"approach": "Run the pilot on line 3 instead.", "status": "active"}, version=1
    )
    db.commit()

    assert strategy.version == 2
    assert strategy.status == StrategyStatus.ACTIVE
    newest = revisions_of(db, strategy)[0]
    assert newest.version == 2
    assert newest.changed_fields == ["approach", "status"]
    assert newest.snapshot["approach"] == "Run the pilot on line 3 instead."
    assert newest.snapshot["objective"] == GOOD["objective"]


def test_a_save_from_an_old_version_is_refused_and_changes_nothing(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, GOOD)
    update_strategy(db, rep, strategy, {"objective": "First writer wins"}, version=1)
    db.commit()

    with pytest.raises(StaleVersion) as raised:
        update_strategy(db, rep, strategy, {"objective": "Second writer loses"}, version=1)

    assert raised.value.current_version == 2
    assert raised.value.strategy.objective == "First writer wins"
    db.rollback()
    assert strategy.objective == "First writer wins"
    assert db.query(StrategyRevision).filter_by(strategy_id=strategy.id).count() == 2


def test_a_save_that_changes_nothing_keeps_the_version(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, GOOD)
    db.commit()

    update_strategy(db, rep, strategy, {"objective": GOOD["objective"] + "  "}, version=1)

    assert strategy.version == 1
    assert len(revisions_of(db, strategy)) == 1


def test_text_sent_back_with_crlf_line_ends_is_no_change(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, {**GOOD, "approach": "Line one\nLine two"})
    db.commit()

    update_strategy(db, rep, strategy, {"approach": "Line one\r\nLine two"}, version=1)
    assert strategy.version == 1
    update_strategy(db, rep, strategy, {"approach": "Line one\r\nLine two", "objective": "New"}, version=1)

    assert strategy.version == 2 and strategy.approach == "Line one\nLine two"
    newest = revisions_of(db, strategy)[0]
    assert newest.changed_fields == ["objective"] and newest.snapshot["approach"] == "Line one\nLine two"


def test_text_is_stored_with_lf_line_ends_and_a_limit_counting_each_break_once(
    db: Session, rep, account
) -> None:
    # A browser lets 20,000 characters into the textarea, counting a line break as one, and sends CRLF.
    at_the_limit = "\r\n".join(["y" * 9_999, "z" * 9_999]) + "\r\n"

    strategy = create_strategy(
        db, rep, account, {**GOOD, "approach": "one\r\ntwo", "customer_view": at_the_limit}
    )

    assert strategy.approach == "one\ntwo"
    assert strategy.customer_view == "y" * 9_999 + "\n" + "z" * 9_999
    with pytest.raises(StrategyInvalid) as refused:
        create_strategy(db, rep, account, {**GOOD, "customer_view": "y" * 20_001})
    assert refused.value.errors == {"customer_view": "must be at most 20,000 characters"}


def test_a_stale_edit_merges_against_the_version_it_started_from(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, {**GOOD, "objective": "line one\nline two"})
    update_strategy(db, rep, strategy, {"success_measure": "theirs", "approach": "their approach"}, version=1)
    db.commit()
    edit = {
        # Sent back by a browser: the same text with CRLF line ends is no change.
        "objective": "line one\r\nline two",
        "customer_view": "mine",
        "approach": "my approach",
        "target_date": GOOD["target_date"],
        "status": "draft",
    }

    merge = merge_stale_edit(db, strategy, 1, edit)

    outcomes = {item.name: item.outcome for item in merge.fields}
    assert merge.base_found and merge.conflicts == ["approach"]
    assert outcomes == {
        "objective": UNCHANGED,
        "customer_view": MINE,
        "approach": CONFLICT,
        "success_measure": THEIRS,  # left out of the edit: not the edit's change
        "target_date": UNCHANGED,
        "review_date": UNCHANGED,
        "status": UNCHANGED,
        "opportunity_id": UNCHANGED,
    }
    approach = next(item for item in merge.fields if item.name == "approach")
    assert (approach.base, approach.theirs, approach.mine) == (
        GOOD["approach"],
        "their approach",
        "my approach",
    )


def test_a_merge_sees_the_same_change_on_both_sides_and_without_a_base_every_difference() -> None:
    base = {"objective": "a", "customer_view": "b", "status": "draft"}
    theirs = {"objective": "a2", "customer_view": "b", "status": "active"}
    mine = {"objective": "a2", "customer_view": "b3", "status": "draft"}

    with_base = {item.name: item.outcome for item in merge_fields(base, theirs, mine)}
    without = {item.name: item.outcome for item in merge_fields(None, theirs, mine)}

    assert (with_base["objective"], with_base["customer_view"], with_base["status"]) == (SAME, MINE, THEIRS)
    assert (without["objective"], without["customer_view"], without["status"]) == (
        UNCHANGED,
        CONFLICT,
        CONFLICT,
    )


def test_activating_a_list_of_tactics_needs_confirmation(db: Session, rep, account) -> None:
    tactics = {
        "objective": "Call the CFO and send the proposal",
        "approach": "Book a demo, then follow up every Friday.",
        "review_date": "2026-12-01",
    }
    strategy = create_strategy(db, rep, account, tactics)
    db.commit()

    with pytest.raises(ReadsLikeTactics) as raised:
        update_strategy(db, rep, strategy, {"status": "active"}, version=1)
    assert "Call the CFO" in raised.value.check.tactic_phrases

    update_strategy(db, rep, strategy, {"status": "active"}, version=1, activate_anyway=True)
    assert strategy.status == StrategyStatus.ACTIVE


def test_only_the_owner_or_an_admin_may_write(db: Session, rep, account) -> None:
    manager = make_user(db, role=Role.MANAGER)
    rep.manager = manager
    other_rep = make_user(db, role=Role.REP, manager=manager)
    admin = make_user(db, role=Role.ADMIN)

    for outsider in (manager, other_rep):
        with pytest.raises(NotAllowed):
            create_strategy(db, outsider, account, GOOD)
    assert create_strategy(db, admin, account, GOOD).author_id == admin.id


def test_lookups_tell_unknown_from_out_of_scope(db: Session, rep, account) -> None:
    other_rep = make_user(db, role=Role.REP)
    strategy = create_strategy(db, rep, account, GOOD)

    assert account_for_viewer(db, rep, account.id) is account
    assert strategy_for_viewer(db, rep, strategy.id) is strategy
    with pytest.raises(NotAllowed):
        strategy_for_viewer(db, other_rep, strategy.id)
    with pytest.raises(NotFound):
        strategy_for_viewer(db, rep, strategy.id + 1000)
    with pytest.raises(NotFound):
        account_for_viewer(db, rep, 2**70)


def test_two_versions_compare_field_by_field_with_a_word_diff(db: Session, rep, account) -> None:
    strategy = create_strategy(db, rep, account, GOOD)
    update_strategy(
        db,
        rep,
        strategy,
        {"objective": "Acme's plant runs a third shift without new hires", "review_date": "2027-01-10"},
        version=1,
    )
    db.commit()

    comparison = compare_versions(strategy, 1, 2)

    assert comparison.changed_fields == ["objective", "review_date"]
    objective = next(item for item in comparison.fields if item.name == "objective")
    assert [(chunk.op, chunk.text) for chunk in objective.diff if chunk.op != "equal"] == [
        ("delete", "second"),
        ("insert", "third"),
    ]
    review = next(item for item in comparison.fields if item.name == "review_date")
    assert (review.old, review.new, review.diff) == ("2026-12-15", "2027-01-10", [])
    with pytest.raises(NotFound):
        compare_versions(strategy, 1, 9)


def test_a_word_diff_rebuilds_both_texts() -> None:
    old, new = "Cut downtime by 20% on line 2", "Cut unplanned downtime by 30% on lines 2 and 3"
    chunks = word_diff(old, new)

    assert "".join(chunk.text for chunk in chunks if chunk.op != "insert") == old
    assert "".join(chunk.text for chunk in chunks if chunk.op != "delete") == new
