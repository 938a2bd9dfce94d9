"""Writing review results back to Salesforce Account fields, and the `salesforce` CLI commands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from integrations.base import SourceAuthError
from integrations.salesforce_writeback import write_back
from planning.models import Account, Finding, Review
from tests.factories import make_account, make_strategy, make_user
from tests.integrations.fake_salesforce import FakeSalesforce, salesforce_config

FIELDS = ("StratLink_Strategy_Status__c", "StratLink_Objective__c", "StratLink_Uncovered_Activities__c")


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as server:
        server.memory.schema["Account"].update(FIELDS)
        yield server


def config(fake: FakeSalesforce, **extra: Any) -> dict[str, Any]:
    return salesforce_config(fake, SALESFORCE_WRITEBACK=True, **extra)


def mirrored_accounts(db: Session, fake: FakeSalesforce, count: int) -> list[Account]:
    """Accounts that exist both in the fake org and (as synced rows) in the database."""
    owner = make_user(db)
    accounts = []
    for number in range(count):
        external_id = fake.add("Account", Name=f"Account {number}")
        accounts.append(make_account(db, owner=owner, source="salesforce", external_id=external_id))
    return accounts


def make_review(db: Session, as_of: date = date(2026, 11, 23)) -> Review:
    review = Review(as_of=as_of, window_days=30, min_activities=5, stale_days=60)
    db.add(review)
    db.flush()
    return review


def flag(db: Session, review: Review, account: Account, uncovered: int, status: str = "new") -> None:
    db.add(
        Finding(
            review=review,
            rule="tactics_without_strategy",
            reason="no_strategy",
            status=status,
            account=account,
            uncovered={"call": uncovered},
            uncovered_total=uncovered,
        )
    )
    db.flush()


def composite_calls(fake: FakeSalesforce) -> list[Any]:
    return [request for request in fake.requests if request.path.endswith("/composite/sobjects")]


def test_450_accounts_go_out_in_three_composite_calls_of_at_most_200(
    db: Session, fake: FakeSalesforce
) -> None:
    accounts = mirrored_accounts(db, fake, 450)
    review = make_review(db)

    result = write_back(db, review, config(fake))

    calls = composite_calls(fake)
    assert [len(call.json()["records"]) for call in calls] == [200, 200, 50]
    assert all(call.method == "PATCH" and call.json()["allOrNone"] is False for call in calls)
    assert (result.accounts, result.updated, result.requests, result.failed) == (450, 450, 3, 0)
    sent = {record["id"] for call in calls for record in call.json()["records"]}
    assert sent == {account.external_id for account in accounts}


def test_each_account_gets_its_strategy_status_its_objective_cut_to_size_and_its_uncovered_count(
    db: Session, fake: FakeSalesforce
) -> None:
    planned, abandoned_then_redone, unplanned, quiet = mirrored_accounts(db, fake, 4)
    review = make_review(db)
    make_strategy(db, account=planned, status="active", objective="Win the second plant " * 20)
    older = datetime.now(UTC) - timedelta(days=30)
    make_strategy(
        db, account=abandoned_then_redone, status="abandoned", objective="Old plan", updated_at=older
    )
    make_strategy(db, account=abandoned_then_redone, status="draft", objective="New plan")
    flag(db, review, unplanned, 7)
    flag(db, review, quiet, 3, status="resolved")

    write_back(db, review, config(fake, SALESFORCE_WRITEBACK_OBJECTIVE_LENGTH=40))

    stored = {
        key: fake.memory.get("Account", key.external_id)
        for key in (planned, abandoned_then_redone, unplanned, quiet)
    }
    values = {account: tuple(row[name] for name in FIELDS) for account, row in stored.items() if row}
    assert values[planned] == ("active", ("Win the second plant " * 2)[:39] + "…", 0)
    assert values[abandoned_then_redone] == ("draft", "New plan", 0)
    assert values[unplanned] == ("none", None, 7)
    assert values[quiet] == ("none", None, 0)  # a resolved finding no longer counts


def test_accounts_from_other_sources_and_deleted_ones_are_not_sent(db: Session, fake: FakeSalesforce) -> None:
    (kept, deleted) = mirrored_accounts(db, fake, 2)
    deleted.deleted = True
    make_account(db, source="hubspot", external_id="12345")
    review = make_review(db)

    result = write_back(db, review, config(fake))

    assert [record["id"] for call in composite_calls(fake) for record in call.json()["records"]] == [
        kept.external_id
    ]
    assert result.accounts == 1


def test_a_dry_run_sends_nothing_and_lists_what_would_change(db: Session, fake: FakeSalesforce) -> None:
    (account,) = mirrored_accounts(db, fake, 1)
    review = make_review(db)
    flag(db, review, account, 5)

    result = write_back(db, review, {"SALESFORCE_WRITEBACK_OBJECTIVE_LENGTH": 100}, dry_run=True)

    assert fake.requests == []
    assert result.dry_run and result.requests == 0
    assert result.changes == [
        {
            "attributes": {"type": "Account"},
            "id": account.external_id,
            "StratLink_Strategy_Status__c": "none",
            "StratLink_Objective__c": None,
            "StratLink_Uncovered_Activities__c": 5,
        }
    ]


def test_write_back_is_off_unless_the_deployment_turns_it_on(db: Session, fake: FakeSalesforce) -> None:
    mirrored_accounts(db, fake, 1)

    result = write_back(db, make_review(db), salesforce_config(fake))

    assert not result.enabled and result.message == "write-back is off: set SALESFORCE_WRITEBACK=1"
    assert fake.requests == []


def test_records_salesforce_refuses_are_reported_with_their_ids_while_the_rest_land(
    db: Session, fake: FakeSalesforce
) -> None:
    first, locked, gone = mirrored_accounts(db, fake, 3)
    fake.save_errors[locked.external_id] = {
        "statusCode": "UNABLE_TO_LOCK_ROW",
        "message": "unable to obtain lock",
    }
    fake.delete("Account", gone.external_id)

    result = write_back(db, make_review(db), config(fake))

    assert result.updated == 1
    assert [(error.external_id, error.message) for error in result.errors] == [
        (locked.external_id, "UNABLE_TO_LOCK_ROW: unable to obtain lock"),
        (gone.external_id, "ENTITY_IS_DELETED: entity is deleted"),
    ]
    assert fake.memory.get("Account", first.external_id)["StratLink_Strategy_Status__c"] == "none"  # type: ignore[index]


def test_a_field_salesforce_does_not_know_is_reported_per_record(db: Session, fake: FakeSalesforce) -> None:
    mirrored_accounts(db, fake, 1)

    result = write_back(db, make_review(db), config(fake, SALESFORCE_WRITEBACK_STATUS_FIELD="Nope__c"))

    assert result.errors[0].field == "Nope__c"
    assert result.errors[0].message.startswith("INVALID_FIELD")


def test_an_expired_session_stops_the_write_back_with_an_auth_error(
    db: Session, fake: FakeSalesforce
) -> None:
    mirrored_accounts(db, fake, 1)
    fake.expire_tokens()

    with pytest.raises(SourceAuthError):
        write_back(db, make_review(db), config(fake))


def test_the_check_command_signs_in_and_counts_rows(app: Flask, fake: FakeSalesforce) -> None:
    fake.add("Account", Name="Acme")
    app.config.update(salesforce_config(fake))

    result = app.test_cli_runner().invoke(args=["salesforce", "check"])

    assert result.exit_code == 0, result.output
    assert f"Connected to {fake.url} (API v62.0, access_token)." in result.output
    assert "  Account: 1 rows" in result.output
    assert "test-access-token" not in result.output


def test_the_check_command_reports_a_refused_session_without_a_traceback(
    app: Flask, fake: FakeSalesforce
) -> None:
    fake.expire_tokens()
    app.config.update(salesforce_config(fake))

    result = app.test_cli_runner().invoke(args=["salesforce", "check"])

    assert result.exit_code == 1
    assert "INVALID_SESSION_ID" in result.output and "Traceback" not in result.output


def test_the_writeback_command_dry_run_prints_each_change(
    app: Flask, db: Session, fake: FakeSalesforce
) -> None:
    (account,) = mirrored_accounts(db, fake, 1)
    make_review(db)
    db.commit()
    app.config.update(config(fake))

    result = app.test_cli_runner().invoke(args=["salesforce", "writeback", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert f"{account.external_id}: StratLink_Strategy_Status__c='none'" in result.output
    assert "Review of 2026-11-23: would update 1 of 1 Salesforce accounts." in result.output
    assert composite_calls(fake) == []


def test_the_writeback_command_sends_the_latest_review(app: Flask, db: Session, fake: FakeSalesforce) -> None:
    (account,) = mirrored_accounts(db, fake, 1)
    flag(db, make_review(db, date(2026, 11, 16)), account, 9)
    flag(db, make_review(db, date(2026, 11, 23)), account, 4)
    db.commit()
    app.config.update(config(fake))

    result = app.test_cli_runner().invoke(args=["salesforce", "writeback"])

    assert result.exit_code == 0, result.output
    assert "Review of 2026-11-23: updated 1 of 1 Salesforce accounts." in result.output
    assert fake.memory.get("Account", account.external_id)["StratLink_Uncovered_Activities__c"] == 4  # type: ignore[index]


def test_the_writeback_command_refuses_when_write_back_is_off(
    app: Flask, db: Session, fake: FakeSalesforce
) -> None:
    mirrored_accounts(db, fake, 1)
    make_review(db)
    db.commit()
    app.config.update(salesforce_config(fake, SALESFORCE_WRITEBACK=False))

    result = app.test_cli_runner().invoke(args=["salesforce", "writeback"])

    assert result.exit_code == 1
    assert "write-back is off" in result.output


def test_the_scheduled_job_writes_a_review_back_and_records_the_run(
    app: Flask, db: Session, fake: FakeSalesforce
) -> None:
    from jobs.models import JobRun
    from jobs.tasks import WRITEBACK_JOB, run_recorded, writeback_wanted, writeback_work

    app.config.update(config(fake), STRATLINK_SOURCE="salesforce")
    accounts = mirrored_accounts(db, fake, 3)
    review = make_review(db)
    flag(db, review, accounts[0], uncovered=7)
    db.commit()
    scheduled_for = datetime(2026, 11, 23, 7, tzinfo=UTC)

    assert writeback_wanted(app.config)
    run = run_recorded(db, WRITEBACK_JOB, scheduled_for, lambda session: writeback_work(session, review.id))

    assert run is not None and run.outcome == "succeeded"
    assert "3 of 3 accounts written back in 1 requests" in (run.message or "")
    sent = {record["id"]: record for record in composite_calls(fake)[0].json()["records"]}
    assert sent[accounts[0].external_id]["StratLink_Uncovered_Activities__c"] == 7
    assert sent[accounts[1].external_id]["StratLink_Uncovered_Activities__c"] == 0
    assert db.query(JobRun).filter_by(job=WRITEBACK_JOB).count() == 1


def test_write_back_is_not_wanted_unless_enabled_for_a_salesforce_source(app: Flask) -> None:
    from jobs.tasks import writeback_wanted

    assert not writeback_wanted({"SALESFORCE_WRITEBACK": True, "STRATLINK_SOURCE": "demo"})
    assert not writeback_wanted({"SALESFORCE_WRITEBACK": False, "STRATLINK_SOURCE": "salesforce"})
    assert writeback_wanted({"SALESFORCE_WRITEBACK": True, "STRATLINK_SOURCE": "salesforce"})
