"""`flask --app app review`: runs the review and prints a readable summary table."""

from __future__ import annotations

from datetime import date

from sqlalchemy import insert, select

from planning.cli import summary_lines
from planning.models import Finding, Review
from tests.factories import make_account, make_activity, make_opportunity, make_strategy, make_user, utc


def test_the_command_runs_the_review_and_prints_each_finding_in_words(app, db):
    rep = make_user(db, name="Rita Rep")
    acme = make_account(db, name="Acme Corp", external_id="001ACME", owner=rep)
    for _ in range(7):
        make_activity(db, account=acme, occurred_at=utc(2026, 10, 20))
    for _ in range(2):
        make_activity(db, account=acme, kind="email", occurred_at=utc(2026, 10, 21))
    make_activity(db, account=acme, kind="contract", occurred_at=utc(2026, 10, 22))
    make_opportunity(db, account=acme, amount=1_250_000)
    make_strategy(db, account=make_account(db, name="Globex", owner=rep), review_date=date(2026, 9, 1))
    db.commit()

    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2026-10-31"])

    assert result.exit_code == 0, result.output
    review = db.scalars(select(Review)).one()
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Tactics review {review.id} as of 2026-10-31 — window 30 days, threshold 5, stale after 60 days, UTC"
    )
    assert lines[1] == "2 findings: 2 new, 0 persisting, 0 resolved"
    acme_line = next(line for line in lines if "Acme Corp (001ACME)" in line)
    assert acme_line.split()[0] == "new"
    assert "Rita Rep" in acme_line and "$1.2M" in acme_line
    assert acme_line.endswith("7 calls, 2 emails and a contract in 30 days — no strategy")
    assert any(line.endswith("Strategy review overdue (due 2026-09-01)") for line in lines)


def test_a_quiet_org_gets_a_clear_all_good(app, db):
    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2026-10-31"])

    assert result.exit_code == 0
    assert "0 findings" in result.output
    assert "Nothing piled up" in result.output


def test_the_review_defaults_to_today_in_the_review_timezone(app, db):
    from planning.review import today_in

    app.config["REVIEW_TIMEZONE"] = "Asia/Tokyo"
    result = app.test_cli_runner().invoke(args=["review"])

    assert result.exit_code == 0
    assert db.scalars(select(Review.as_of)).one() == today_in("Asia/Tokyo")


def test_a_bad_date_is_a_usage_error_with_a_clear_message(app, db):
    runner = app.test_cli_runner()
    for bad in ("2026-13-01", "31/10/2026", "2026-1-5", "0001-01-01"):
        result = runner.invoke(args=["review", "--as-of", bad])
        assert result.exit_code == 2, bad
        assert "Invalid value for '--as-of'" in result.output
    assert "write it as YYYY-MM-DD" in runner.invoke(args=["review", "--as-of", "soon"]).output
    assert db.scalars(select(Review)).all() == []


def test_a_limit_with_all_is_a_usage_error_and_runs_no_review(app, db):
    result = app.test_cli_runner().invoke(args=["review", "--limit", "3", "--all"])

    assert result.exit_code == 2
    assert "--limit and --all do not go together" in result.output
    assert db.scalars(select(Review)).all() == []


def test_a_day_after_today_is_refused_without_a_traceback(app, db):
    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2999-01-01"])

    assert result.exit_code == 1
    assert "cannot run the review: as_of 2999-01-01 is after today" in result.output
    assert db.scalars(select(Review)).all() == []


def test_a_bad_review_setting_is_reported_without_a_traceback(app, db):
    app.config["REVIEW_TIMEZONE"] = "Mars/Olympus"

    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2026-10-31"])

    assert result.exit_code == 1
    assert "unknown time zone 'Mars/Olympus'" in result.output
    assert "Traceback" not in result.output


def test_the_table_prints_the_most_pressing_findings_up_to_the_limit_and_counts_the_rest(app, db):
    rep = make_user(db, name="Rita Rep")
    for name, calls in (("Five Co", 5), ("Nine Co", 9), ("Seven Co", 7)):
        account = make_account(db, name=name, owner=rep)
        for _ in range(calls):
            make_activity(db, account=account, occurred_at=utc(2026, 10, 20))
    db.commit()
    app.config["STRATLINK_BASE_URL"] = "https://stratlink.example.com/"
    runner = app.test_cli_runner()

    limited = runner.invoke(args=["review", "--as-of", "2026-10-31", "--limit", "2"])
    everything = runner.invoke(args=["review", "--as-of", "2026-10-31", "--all"])
    refused = runner.invoke(args=["review", "--as-of", "2026-10-31", "--limit", "0"])

    assert limited.exit_code == 0, limited.output
    lines = limited.output.splitlines()
    assert lines[1] == "3 findings: 3 new, 0 persisting, 0 resolved"
    shown = [line for line in lines if " Co (" in line]
    assert [line.split()[1:3] for line in shown] == [["Nine", "Co"], ["Seven", "Co"]]
    review_id = db.scalar(select(Review.id))
    assert lines[-1] == (
        "… and 1 more: `--all` prints every one, and the review page "
        f"(https://stratlink.example.com/reviews/{review_id}) shows them by team."
    )
    assert sum(" Co (" in line for line in everything.output.splitlines()) == 3
    assert "more:" not in everything.output
    assert refused.exit_code == 2


def test_the_counts_read_with_separators_past_a_thousand(app, db):
    rep = make_user(db, name="Rita Rep")
    account = make_account(db, name="Busy Co", owner=rep)
    review = Review(as_of=date(2026, 10, 31), window_days=30, min_activities=5, stale_days=60, timezone="UTC")
    db.add(review)
    db.flush()
    row = {"review_id": review.id, "rule": "tactics_without_strategy", "reason": "no_strategy"}
    db.execute(
        insert(Finding),
        [{**row, "status": "new", "account_id": account.id, "owner_id": rep.id}] * 1001
        + [{**row, "status": "persisting", "account_id": account.id, "owner_id": rep.id}] * 1200,
    )

    lines = summary_lines(review, 1)

    assert lines[1] == "2,201 findings: 1,001 new, 1,200 persisting, 0 resolved"
    assert lines[-1].startswith("… and 2,200 more:")


def test_a_review_run_for_the_wrong_day_can_be_deleted_with_what_it_holds(app, db):
    from planning.models import DigestDelivery

    rep = make_user(db, name="Rita Rep")
    make_strategy(db, account=make_account(db, name="Globex", owner=rep), review_date=date(1998, 9, 1))
    db.commit()
    runner = app.test_cli_runner()
    runner.invoke(args=["review", "--as-of", "1999-01-01"])  # meant 2026-01-01
    runner.invoke(args=["review", "--as-of", "2026-10-31"])
    mistaken = db.scalars(select(Review).where(Review.as_of == date(1999, 1, 1))).one()
    db.add(DigestDelivery(review_id=mistaken.id, user_id=rep.id))
    db.commit()

    declined = runner.invoke(args=["delete-review", "--as-of", "1999-01-01"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert db.scalar(select(Review.id).where(Review.as_of == date(1999, 1, 1))) == mistaken.id

    result = runner.invoke(args=["delete-review", "--as-of", "1999-01-01"], input="y\n")

    assert result.exit_code == 0, result.output
    assert "Delete the review as of 1999-01-01 and its 1 finding?" in result.output
    assert "Deleted the review as of 1999-01-01 and its 1 finding." in result.output
    assert "1 later review keeps the new/persisting/resolved statuses given against it" in result.output
    db.expire_all()
    assert db.scalars(select(Review.as_of)).all() == [date(2026, 10, 31)]
    assert db.scalar(select(Finding.id).where(Finding.review_id == mistaken.id)) is None
    assert db.scalar(select(DigestDelivery.id)) is None
    missing = runner.invoke(args=["delete-review", "--as-of", "1999-01-01", "--yes"])
    assert missing.exit_code == 1 and "no review as of 1999-01-01" in missing.output
