"""Salesforce through the sync engine: full, incremental, deletions, faults, kills and reruns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from integrations.salesforce import SalesforceSource, decode_cursor
from integrations.sync import run_sync
from planning.models import (
    Account,
    Activity,
    Link,
    Opportunity,
    Role,
    Strategy,
    SyncCursor,
    SyncRun,
    User,
    UserIdentity,
)
from tests.factories import make_strategy
from tests.integrations.fake_salesforce import (
    RATE_LIMITED,
    UNAVAILABLE,
    FakeSalesforce,
    salesforce_config,
    seed_org,
)


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(page_size=3) as server:
        yield server


def make_source(fake: FakeSalesforce, **config: Any) -> SalesforceSource:
    settings = {"SYNC_BATCH_SIZE": 4, "SALESFORCE_MAX_RETRIES": 2, **config}
    return SalesforceSource.from_config(salesforce_config(fake, **settings), sleep=lambda seconds: None)


def sync(db: Session, fake: FakeSalesforce, *, full: bool = False, **config: Any) -> SyncRun:
    return run_sync(db, make_source(fake, **config), full=full, batch_size=4)


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a sync writes, by CRM id, without row ids or sync times."""
    owner = aliased(User)
    manager = aliased(User)
    parent = aliased(Account)
    deal = aliased(Opportunity)
    return {
        "users": sorted(
            db.execute(
                select(User.email, User.name, User.role, User.active, manager.email).outerjoin(
                    manager, User.manager_id == manager.id
                )
            ).all()
        ),
        "identities": sorted(
            db.execute(select(UserIdentity.external_id, UserIdentity.manager_external_id)).all()
        ),
        "accounts": sorted(
            db.execute(
                select(
                    Account.external_id,
                    Account.name,
                    owner.email,
                    Account.industry,
                    Account.annual_revenue,
                    Account.url,
                    Account.deleted,
                ).outerjoin(owner, Account.owner_id == owner.id)
            ).all()
        ),  # fmt: skip
        "opportunities": sorted(
            db.execute(
                select(
                    Opportunity.external_id,
                    parent.external_id,
                    Opportunity.name,
                    Opportunity.stage,
                    Opportunity.amount,
                    Opportunity.close_date,
                    Opportunity.is_closed,
                    Opportunity.deleted,
                ).join(parent, Opportunity.account_id == parent.id)
            ).all()
        ),  # fmt: skip
        "activities": sorted(
            db.execute(
                select(
                    Activity.external_id,
                    parent.external_id,
                    owner.email,
                    deal.external_id,
                    Activity.kind,
                    Activity.direction,
                    Activity.occurred_at,
                    Activity.subject,
                    Activity.url,
                    Activity.deleted,
                )
                .join(parent, Activity.account_id == parent.id)
                .outerjoin(owner, Activity.owner_id == owner.id)
                .outerjoin(deal, Activity.opportunity_id == deal.id)
            ).all()
        ),  # fmt: skip
    }


def forget_everything(db: Session) -> None:
    """Empty what a sync wrote, to replay the same org from scratch."""
    for model in (Link, Strategy, Activity, Opportunity, Account, UserIdentity, SyncCursor, SyncRun):
        db.execute(delete(model))
    db.execute(User.__table__.update().values(manager_id=None))
    db.execute(delete(User))
    db.commit()


def undisturbed(db: Session, fake: FakeSalesforce) -> dict[str, list[tuple[Any, ...]]]:
    forget_everything(db)
    run = sync(db, fake)
    assert run.status == "succeeded", run.message
    expected = snapshot(db)
    forget_everything(db)
    return expected


def cursors(db: Session) -> dict[str, str | None]:
    return {cursor.stream: cursor.value for cursor in db.scalars(select(SyncCursor))}


def test_a_full_sync_brings_in_users_accounts_opportunities_and_activities(
    db: Session, fake: FakeSalesforce
) -> None:
    org = seed_org(fake, accounts=3, tasks_per_account=4)

    run = sync(db, fake)

    assert (run.status, run.failed, run.message) == ("succeeded", 0, None)
    assert run.inserted == 4 + 3 + 3 + 3 * (4 + 1 + 1)
    assert run.api_usage == f"api-usage={fake.api_used}/15000"
    users = {user.email: user for user in db.scalars(select(User))}
    assert set(users) == {"vera@example.com", "mo@example.com", "ria@example.com", "tom@example.com"}
    assert users["ria@example.com"].manager is users["mo@example.com"]
    assert users["mo@example.com"].manager is users["vera@example.com"]
    assert (users["vera@example.com"].role, users["mo@example.com"].role) == (Role.MANAGER, Role.MANAGER)
    assert users["ria@example.com"].role == Role.REP
    kinds = sorted(kind for kind in db.scalars(select(Activity.kind)))
    assert kinds.count("call") == 6 and kinds.count("meeting") == 3 and kinds.count("contract") == 3
    deal = db.scalar(
        select(Opportunity.external_id)
        .join(Activity, Activity.opportunity_id == Opportunity.id)
        .where(Activity.external_id == org.tasks[0])
    )
    assert deal == org.opportunities[0]
    assert set(cursors(db)) == {"users", "accounts", "opportunities", "activities"}
    assert decode_cursor(cursors(db)["activities"])["Contract"].last_id == org.contracts[-1]


def test_an_incremental_sync_updates_changes_marks_deletions_and_keeps_links(
    db: Session, fake: FakeSalesforce
) -> None:
    org = seed_org(fake, accounts=2, tasks_per_account=4)
    sync(db, fake)
    account = db.scalar(select(Account).where(Account.external_id == org.accounts[0]))
    assert account is not None
    strategy = make_strategy(db, account=account)
    linked = db.scalar(select(Activity).where(Activity.external_id == org.tasks[1]))
    assert linked is not None
    db.add(Link(activity=linked, strategy=strategy))
    db.commit()
    fake.change("Account", org.accounts[1], Name="Renamed Co")
    fake.change("Task", org.tasks[2], Subject="Rescheduled", ActivityDate=None)
    fake.delete("Task", org.tasks[1])
    fake.delete("Opportunity", org.opportunities[1])
    added = fake.add(
        "Task", AccountId=org.accounts[1], OwnerId=org.reps[1], TaskSubtype="Call", CallType="Inbound"
    )

    run = sync(db, fake)

    assert (run.status, run.inserted, run.updated, run.failed) == ("succeeded", 1, 4, 0)
    assert db.scalar(select(Account.name).where(Account.external_id == org.accounts[1])) == "Renamed Co"
    gone = db.scalar(select(Activity).where(Activity.external_id == org.tasks[1]))
    assert gone is not None and gone.deleted
    assert gone.link is not None and gone.link.strategy_id == strategy.id
    assert (
        db.scalar(select(Opportunity.deleted).where(Opportunity.external_id == org.opportunities[1])) is True
    )
    assert db.scalar(select(Activity.subject).where(Activity.external_id == org.tasks[2])) == "Rescheduled"
    assert db.scalar(select(Activity.direction).where(Activity.external_id == added)) == "inbound"
    assert db.scalar(select(Activity.deleted).where(Activity.external_id == org.tasks[0])) is False


def test_an_incremental_sync_with_nothing_changed_asks_once_per_object_and_writes_nothing(
    db: Session, fake: FakeSalesforce
) -> None:
    seed_org(fake, accounts=3)
    sync(db, fake)
    before = len(fake.requests)

    run = sync(db, fake)

    assert (run.status, run.inserted, run.updated) == ("succeeded", 0, 0)
    assert len(fake.requests) - before == 6  # User, Account, Opportunity, Task, Event, Contract
    assert all(">=" in soql for soql in fake.queries()[-6:])


def test_a_full_sync_after_an_incremental_one_changes_nothing(db: Session, fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=2)
    sync(db, fake)
    before = snapshot(db)

    run = sync(db, fake, full=True)

    assert (run.status, run.inserted, run.updated) == ("succeeded", 0, 0)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("status", "body"),
    [(503, UNAVAILABLE), (403, RATE_LIMITED), (500, [{"message": "x", "errorCode": "UNKNOWN_EXCEPTION"}])],
    ids=["unavailable", "rate-limited", "server-error"],
)
@pytest.mark.parametrize("failing_request", [3, 9, 14])
def test_a_run_that_fails_mid_way_then_a_rerun_give_the_same_database_as_an_undisturbed_sync(
    db: Session, fake: FakeSalesforce, status: int, body: Any, failing_request: int
) -> None:
    seed_org(fake, accounts=4, tasks_per_account=4)
    expected = undisturbed(db, fake)
    first = len(fake.requests) + failing_request
    # Request `first` and every retry of it fail, more times than the source retries.
    fake.fail(status, body, times=3, match=lambda request: request.number >= first)

    failed = sync(db, fake)
    assert failed.status == "failed"
    assert failed.message
    rerun = sync(db, fake)

    assert rerun.status == "succeeded", rerun.message
    assert snapshot(db) == expected


def test_a_kill_between_batches_then_a_rerun_lose_and_duplicate_nothing(
    db: Session, fake: FakeSalesforce
) -> None:
    seed_org(fake, accounts=4, tasks_per_account=5)
    expected = undisturbed(db, fake)

    class Killed(Exception):
        pass

    batches: list[str] = []

    def kill_after_three_activity_batches(stream: str, handled: int) -> None:
        batches.append(stream)
        if batches.count("activities") == 3:
            raise Killed

    with pytest.raises(Killed):
        run_sync(db, make_source(fake), batch_size=4, progress=kill_after_three_activity_batches)
    partial = snapshot(db)
    stored = decode_cursor(cursors(db)["activities"])["Task"]
    assert len(partial["activities"]) == 12
    assert stored.last_id == sorted(row[0] for row in partial["activities"])[-1]

    rerun = sync(db, fake)

    assert rerun.status == "succeeded"
    assert rerun.inserted == len(expected["activities"]) - 12
    assert rerun.unchanged == 0  # the rows at each cursor's boundary were skipped, not written again
    assert snapshot(db) == expected


def test_rate_limit_exhaustion_fails_the_run_and_leaves_the_cursor_at_the_last_commit(
    db: Session, fake: FakeSalesforce
) -> None:
    org = seed_org(fake, accounts=3, tasks_per_account=4)
    sync(db, fake)
    kept = cursors(db)
    fake.change("Account", org.accounts[0], Name="Changed")
    fake.fail(403, RATE_LIMITED, times=100, match=lambda request: "Opportunity" in (request.soql or ""))

    run = sync(db, fake)

    assert run.status == "failed"
    assert "API limit" in (run.message or "") and "REQUEST_LIMIT_EXCEEDED" in (run.message or "")
    assert run.api_usage is not None
    after = cursors(db)
    assert after["opportunities"] == kept["opportunities"]
    assert after["activities"] == kept["activities"]
    assert after["accounts"] != kept["accounts"]  # the accounts batch committed before the failure


def test_rate_limits_that_clear_within_the_retries_leave_a_succeeded_run(
    db: Session, fake: FakeSalesforce
) -> None:
    seed_org(fake, accounts=2)
    fake.fail(403, RATE_LIMITED, times=2, match=lambda request: "/query/01g" in request.path)

    run = sync(db, fake)

    assert run.status == "succeeded"
    assert len(snapshot(db)["activities"]) == 2 * (4 + 1 + 1)


def test_an_expired_token_is_refreshed_mid_sync(db: Session, fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    fake.fail(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
              match=lambda request: "Task" in (request.soql or ""))  # fmt: skip
    oauth = {
        "SALESFORCE_CLIENT_ID": "test-client-id",
        "SALESFORCE_CLIENT_SECRET": "test-client-secret",
        "SALESFORCE_REFRESH_TOKEN": "test-refresh-token",
    }

    run = sync(db, fake, **oauth)

    assert run.status == "succeeded"
    assert {row[0] for row in snapshot(db)["activities"]} >= set(org.tasks)


def test_a_bulk_full_load_lands_the_same_rows_as_paging(db: Session, fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=3, tasks_per_account=4)
    expected = undisturbed(db, fake)

    run = sync(db, fake, full=True, SALESFORCE_BULK_THRESHOLD=3, SALESFORCE_BULK_POLL_SECONDS=0)

    assert run.status == "succeeded"
    assert any(request.path.endswith("/jobs/query") for request in fake.requests)
    assert snapshot(db) == expected


def test_the_sync_command_pulls_salesforce_incrementally(
    app: Flask, db: Session, fake: FakeSalesforce
) -> None:
    org = seed_org(fake, accounts=2)
    app.config.update(salesforce_config(fake))
    runner = app.test_cli_runner()

    first = runner.invoke(args=["sync", "--source", "salesforce"])
    fake.change("Account", org.accounts[0], Name="Renamed")
    second = runner.invoke(args=["sync", "--source", "salesforce"])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert [run.updated for run in db.scalars(select(SyncRun).order_by(SyncRun.id))] == [0, 1]
    assert db.scalar(select(Account.name).where(Account.external_id == org.accounts[0])) == "Renamed"


def test_the_sync_command_refuses_plain_http_to_a_remote_org(app: Flask) -> None:
    app.config.update(
        SALESFORCE_INSTANCE_URL="http://acme.my.salesforce.com", SALESFORCE_ACCESS_TOKEN="token"
    )

    result = app.test_cli_runner().invoke(args=["sync", "--source", "salesforce"])

    assert result.exit_code != 0
    assert "only a loopback host" in result.output
