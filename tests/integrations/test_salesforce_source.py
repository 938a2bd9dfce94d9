"""The Salesforce source read on its own: real simple-salesforce against the local fake org."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.base import ActivityRecord, Batch, OpportunityRecord, UserRecord
from integrations.salesforce import Position, SalesforceSource, decode_cursor, encode_cursor
from tests.integrations.fake_salesforce import FakeSalesforce, salesforce_config, seed_org


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(page_size=3) as server:
        yield server


def make_source(fake: FakeSalesforce, **config: Any) -> SalesforceSource:
    return SalesforceSource.from_config(salesforce_config(fake, **config), sleep=lambda seconds: None)


def read_all(
    source: SalesforceSource, stream: str, cursor: str | None = None, *, full: bool = False
) -> list[Batch]:
    return list(source.read(stream, cursor, full=full))


def records(batches: list[Batch]) -> list[Any]:
    return [record for batch in batches for record in batch.records]


def test_users_become_records_with_their_manager_and_no_role(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    users = {user.external_id: user for user in records(read_all(make_source(fake), "users"))}

    assert set(users) == {org.vp, org.manager, *org.reps}  # the automated user is not a person
    rep = users[org.reps[0]]
    assert rep == UserRecord(
        external_id=org.reps[0],
        email="ria@example.com",
        name="Ria Shah",
        role=None,
        manager_external_id=org.manager,
        active=True,
        modified_at=rep.modified_at,
    )
    assert rep.modified_at is not None and rep.modified_at.tzinfo is not None


def test_tasks_events_and_contracts_become_activities_of_the_right_kind(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1, tasks_per_account=4)
    activities = {record.external_id: record for record in records(read_all(make_source(fake), "activities"))}

    outbound_call, inbound_call, email, task = (activities[key] for key in org.tasks)
    assert (outbound_call.kind, outbound_call.direction) == ("call", "outbound")
    assert (inbound_call.kind, inbound_call.direction) == ("call", "inbound")
    assert (email.kind, email.direction) == ("email", "unknown")
    assert task.kind == "task"
    # A task's date has no time: it sits at noon UTC on that day.
    assert outbound_call.occurred_at == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    assert outbound_call.opportunity_external_id == org.opportunities[0]
    assert inbound_call.opportunity_external_id is None
    assert outbound_call.url == f"{fake.url}/{org.tasks[0]}"

    meeting = activities[org.events[0]]
    assert (meeting.kind, meeting.occurred_at) == ("meeting", datetime(2026, 11, 3, 15, 30, tzinfo=UTC))
    contract = activities[org.contracts[0]]
    assert contract == ActivityRecord(
        external_id=org.contracts[0],
        account_external_id=org.accounts[0],
        kind="contract",
        occurred_at=datetime(2026, 11, 4, 9, 0, tzinfo=UTC),
        owner_external_id=org.reps[0],
        subject="Contract 00000100: Activated, 12 months from 2026-12-01",
        url=f"{fake.url}/{org.contracts[0]}",
        modified_at=contract.modified_at,
    )


def test_opportunities_keep_amounts_exact_and_dates_as_dates(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    (opportunity,) = records(read_all(make_source(fake), "opportunities"))

    assert opportunity == OpportunityRecord(
        external_id=org.opportunities[0],
        account_external_id=org.accounts[0],
        name="Expansion 0",
        owner_external_id=org.reps[0],
        stage="Proposal",
        amount=Decimal("50000"),
        close_date=date(2027, 1, 31),
        url=f"{fake.url}/{org.opportunities[0]}",
        modified_at=opportunity.modified_at,
    )


def test_an_all_day_event_sits_at_noon_on_its_day(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    event = fake.add(
        "Event",
        AccountId=org.accounts[0],
        OwnerId=org.reps[0],
        IsAllDayEvent=True,
        ActivityDate=date(2026, 11, 9),
    )
    activities = {record.external_id: record for record in records(read_all(make_source(fake), "activities"))}

    assert activities[event].occurred_at == datetime(2026, 11, 9, 12, 0, tzinfo=UTC)


def test_pages_are_followed_through_next_records_url_into_batches(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2, tasks_per_account=5)
    batches = read_all(make_source(fake, SYNC_BATCH_SIZE=4), "activities")

    assert [record.external_id for record in records(batches)] == org.tasks + org.events + org.contracts
    assert [len(batch.records) for batch in batches] == [4, 4, 2, 2, 2]
    more = [request.path for request in fake.requests if "/query/01g" in request.path]
    assert more and all(path.rsplit("-", 1)[1] in {"3", "6", "9"} for path in more)


def test_each_batch_carries_the_position_of_its_last_row(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2, tasks_per_account=3)
    batches = read_all(make_source(fake, SYNC_BATCH_SIZE=4), "activities")

    first = decode_cursor(batches[0].cursor)
    assert first["Task"].last_id == org.tasks[3]
    assert first["Task"].at == fake.memory.get("Task", org.tasks[3])["SystemModstamp"]  # type: ignore[index]
    last = decode_cursor(batches[-1].cursor)
    assert set(last) == {"Task", "Event", "Contract"}
    assert last["Contract"].last_id == org.contracts[-1]


def test_the_query_never_reaches_past_the_start_of_the_sync(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    started = fake.memory.now + timedelta(seconds=30)
    fake.memory.now = started + timedelta(minutes=5)
    late = fake.add("Account", Name="Created after the sync began", OwnerId=org.reps[0])
    source = SalesforceSource.from_config(salesforce_config(fake), clock=lambda: started)

    accounts = records(read_all(source, "accounts"))

    assert late not in {account.external_id for account in accounts}
    assert f"SystemModstamp <= {started.isoformat()}" in fake.queries()[-1]
    assert decode_cursor(read_all(source, "accounts")[-1].cursor)["Account"].at <= started


def test_an_incremental_read_asks_from_the_cursor_and_skips_rows_committed_at_the_boundary(
    fake: FakeSalesforce,
) -> None:
    org = seed_org(fake, accounts=1)
    fake.memory.frozen = True
    fake.memory.now += timedelta(seconds=1, milliseconds=250)
    same_moment = [fake.add("Account", Name=f"Twin {n}", OwnerId=org.reps[0]) for n in range(3)]
    fake.memory.frozen = False
    later = fake.add("Account", Name="Later", OwnerId=org.reps[0])
    cursor = encode_cursor(
        {"Account": Position(fake.memory.get("Account", same_moment[1])["SystemModstamp"], same_moment[1])}
    )  # type: ignore[index]

    accounts = records(read_all(make_source(fake), "accounts", cursor))

    assert [account.external_id for account in accounts] == [same_moment[2], later]
    stamp = decode_cursor(cursor)["Account"].at.replace(microsecond=0)
    assert f"SystemModstamp >= {stamp.isoformat()}" in fake.queries()[-1]


def test_rows_held_at_the_boundary_are_released_when_the_cursor_row_moved_on(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    fake.memory.frozen = True
    fake.memory.now += timedelta(seconds=1)
    twins = [fake.add("Account", Name=f"Twin {n}", OwnerId=org.reps[0]) for n in range(3)]
    fake.memory.frozen = False
    boundary = fake.memory.get("Account", twins[1])["SystemModstamp"]  # type: ignore[index]
    fake.change("Account", twins[1], Name="Twin 1, renamed")  # it leaves the boundary for a later time
    cursor = encode_cursor({"Account": Position(boundary, twins[1])})

    accounts = records(read_all(make_source(fake), "accounts", cursor))

    assert [account.external_id for account in accounts] == [twins[0], twins[2], twins[1]]


def test_deletions_come_through_query_all_marked_deleted(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    source = make_source(fake)
    cursor = read_all(source, "activities")[-1].cursor
    fake.delete("Task", org.tasks[0])
    fake.delete("Contract", org.contracts[1])

    changed = records(read_all(make_source(fake), "activities", cursor))

    assert {(record.external_id, record.deleted) for record in changed} == {
        (org.tasks[0], True),
        (org.contracts[1], True),
    }
    assert all(request.path.rstrip("/").endswith("/queryAll") for request in fake.requests[-3:])


def test_a_full_read_ignores_the_cursor(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    cursor = read_all(make_source(fake), "accounts")[-1].cursor

    again = records(read_all(make_source(fake), "accounts", cursor, full=True))

    assert [account.external_id for account in again] == org.accounts
    assert "SystemModstamp >=" not in fake.queries()[-1]


def test_an_object_with_no_rows_stores_the_sync_start_so_the_next_run_asks_once(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=0)
    source = make_source(fake, SALESFORCE_BULK_THRESHOLD=50)
    batches = read_all(source, "opportunities")
    assert [batch.records for batch in batches] == [[]]
    assert decode_cursor(batches[0].cursor)["Opportunity"].last_id == ""
    before = len(fake.requests)

    assert (
        records(read_all(make_source(fake, SALESFORCE_BULK_THRESHOLD=50), "opportunities", batches[0].cursor))
        == []
    )
    assert len(fake.requests) - before == 1


def test_a_row_that_does_not_map_is_reported_with_its_id_and_the_rest_carry_on(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    undated = fake.add("Event", AccountId=org.accounts[0], OwnerId=org.reps[0], Subject="When?")
    garbled = fake.add("Task", AccountId=org.accounts[0], OwnerId=org.reps[0], ActivityDate="yesterday")
    batches = read_all(make_source(fake, SYNC_BATCH_SIZE=100), "activities")

    errors = {error.external_id: error for batch in batches for error in batch.errors}
    assert set(errors) == {undated, garbled}
    assert (errors[undated].stream, errors[undated].field) == ("activities", "occurred_at")
    assert errors[garbled].message == "'yesterday' is not a date"
    assert len(records(batches)) == len(org.tasks) + len(org.events) + len(org.contracts)
    # The cursor still moves past the rows that failed, so they are not read again and again.
    assert decode_cursor(batches[-1].cursor)["Task"].last_id == garbled


def test_record_type_filters_arrive_quoted_and_escaped_in_the_soql(fake: FakeSalesforce) -> None:
    enterprise = fake.add("RecordType", DeveloperName="Enterprise", SobjectType="Account")
    smb = fake.add("RecordType", DeveloperName="SMB", SobjectType="Account")
    owner = fake.add("User", Name="Ria Shah", Email="ria@example.com", IsActive=True, UserType="Standard")
    kept = fake.add("Account", Name="Big Co", OwnerId=owner, RecordTypeId=enterprise)
    fake.add("Account", Name="Small Co", OwnerId=owner, RecordTypeId=smb)
    hostile = "x') OR (Name != 'y"
    source = make_source(fake, SALESFORCE_ACCOUNT_RECORD_TYPES=f"Enterprise,{hostile}")

    accounts = records(read_all(source, "accounts"))

    assert [account.external_id for account in accounts] == [kept]
    soql = fake.queries()[-1]
    assert "RecordType.DeveloperName IN ('Enterprise','x\\') OR (Name != \\'y')" in soql
    records(read_all(source, "activities"))
    assert "Account.RecordType.DeveloperName IN ('Enterprise','x\\') OR (Name != \\'y')" in fake.queries()[-1]


def test_a_full_load_above_the_bulk_threshold_goes_through_a_bulk_query_job(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=3, tasks_per_account=4)
    fake.delete("Task", org.tasks[5])
    source = make_source(
        fake, SALESFORCE_BULK_THRESHOLD=10, SALESFORCE_BULK_POLL_SECONDS=0, SYNC_BATCH_SIZE=5
    )

    batches = [batch for batch in source.read("activities", None, full=True)]

    paths = [(request.method, request.path.split("/v62.0/")[-1]) for request in fake.requests]
    assert ("POST", "jobs/query") in paths
    job_request = next(request for request in fake.requests if request.path.endswith("/jobs/query"))
    assert job_request.json()["operation"] == "queryAll"
    assert "ORDER BY" not in job_request.json()["query"]
    tasks = {record.external_id: record for record in records(batches) if record.external_id in org.tasks}
    assert set(tasks) == set(org.tasks)
    assert tasks[org.tasks[5]].deleted and not tasks[org.tasks[4]].deleted
    assert (tasks[org.tasks[0]].kind, tasks[org.tasks[0]].direction) == ("call", "outbound")
    assert tasks[org.tasks[0]].opportunity_external_id == org.opportunities[0]
    # Bulk rows arrive in no order: only the last batch of the job may move the cursor.
    task_batches = batches[: (len(org.tasks) + 4) // 5]
    assert [batch.cursor is None for batch in task_batches] == [True] * (len(task_batches) - 1) + [False]
    assert decode_cursor(task_batches[-1].cursor)["Task"].last_id == org.tasks[5]


def test_an_unreadable_cursor_is_noted_and_everything_is_read_again(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    source = make_source(fake)

    accounts = records(read_all(source, "accounts", "not a cursor"))

    assert [account.external_id for account in accounts] == org.accounts
    assert source.report.notes == ["accounts: unreadable cursor 'not a cursor', read everything again"]


def test_sforce_limit_info_is_reported_as_api_usage(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=1)
    source = make_source(fake)
    read_all(source, "accounts")

    assert source.report.api_usage == f"api-usage={fake.api_used}/15000"
