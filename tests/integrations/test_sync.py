"""The sync engine against an in-memory source: upserts, ordering, references, cursors, users, strategies."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import tempfile
import threading
from datetime import date, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import DropConstraint

from extensions import Base
from integrations.base import (
    AccountRecord,
    ActivityRecord,
    Batch,
    OpportunityRecord,
    RecordError,
    SourceRateLimited,
    StrategyRecord,
    UserRecord,
)
from integrations.demo import DemoSource
from integrations.sync import (
    MAX_STORED_ERRORS,
    SYNC_GC_THRESHOLD,
    SyncAlreadyRunning,
    SyncNotStarted,
    bulk_upsert,
    collecting_less,
    content_hash,
    run_sync,
    upsert_statement,
)
from planning.links import link_activities, unlink_activities
from planning.models import (
    Account,
    Activity,
    Link,
    Opportunity,
    Role,
    Strategy,
    StrategyRevision,
    SyncCursor,
    SyncRun,
    User,
    UserIdentity,
)
from planning.strategies import create_strategy, update_strategy
from planning.users import issue_api_token
from tests.factories import make_user, utc
from tests.integrations.conftest import MemorySource, memory_source

REP = UserRecord("U3", "rita@example.com", "Rita Rep", role="rep", manager_external_id="U2")
MANAGER = UserRecord("U2", "mo@example.com", "Mo Manager", role="manager", manager_external_id="U1")
VP = UserRecord("U1", "vera@example.com", "Vera VP", role="manager")
ACME = AccountRecord("A1", "Acme Corp", owner_external_id="U3", industry="Manufacturing")
GLOBEX = AccountRecord("A2", "Globex", owner_external_id="U3", annual_revenue=Decimal("12000000"))
DEMO_DAY = date(2026, 11, 24)
DEAL = OpportunityRecord(
    "O1", "A1", "Acme expansion", owner_external_id="U3", stage="Proposal", amount=Decimal(50000),
    close_date=date(2026, 12, 15),
)  # fmt: skip


def call(external_id: str, account: str = "A1", **fields: object) -> ActivityRecord:
    values: dict[str, object] = {
        "owner_external_id": "U3",
        "direction": "outbound",
        "subject": f"Call {external_id}",
        "occurred_at": utc(2026, 10, 20, 14),
    }
    values.update(fields)
    return ActivityRecord(external_id, account, "call", **values)  # type: ignore[arg-type]


def org(**streams: object) -> MemorySource:
    """The three users, two accounts and a deal, plus whatever the test adds."""
    base: dict[str, object] = {
        "users": [VP, MANAGER, REP],
        "accounts": [ACME, GLOBEX],
        "opportunities": [DEAL],
    }
    base.update(streams)
    return memory_source(**base)


def state(db) -> list[tuple]:
    rows = db.execute(
        select(
            Activity.external_id, Activity.account_id, Activity.owner_id, Activity.subject, Activity.deleted
        ).order_by(Activity.external_id)
    ).all()
    accounts = db.execute(
        select(Account.external_id, Account.name, Account.owner_id).order_by(Account.id)
    ).all()
    return [*rows, *accounts]


def linked(db) -> dict[str, str]:
    statement = (
        select(Activity.external_id, Strategy.external_id)
        .select_from(Link)
        .join(Activity, Link.activity_id == Activity.id)
        .join(Strategy, Link.strategy_id == Strategy.id)
    )
    return dict(db.execute(statement).all())


def test_the_same_batch_twice_gives_the_same_state(db):
    activities = [call("T1"), call("T2", "A2", opportunity_external_id="O1")]
    first = run_sync(db, org(activities=activities))
    before = state(db)
    synced_at = db.scalar(select(Activity.synced_at).where(Activity.external_id == "T1"))

    second = run_sync(db, org(activities=activities))

    assert (first.status, first.inserted, first.updated, first.unchanged, first.failed) == (
        "succeeded", 8, 0, 0, 0
    )  # fmt: skip
    assert (second.status, second.inserted, second.updated, second.unchanged) == ("succeeded", 0, 0, 8)
    assert state(db) == before
    # Unchanged rows are not written at all.
    assert db.scalar(select(Activity.synced_at).where(Activity.external_id == "T1")) == synced_at


def test_rows_stored_with_the_earlier_digest_are_still_recognised_unchanged(db, monkeypatch):
    def repr_digest(values):  # what content_hash was before msgpack
        return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=16).hexdigest()

    activities = [call("T1"), call("T2", "A2", opportunity_external_id="O1")]
    with monkeypatch.context() as patched:
        patched.setattr("integrations.sync.content_hash", repr_digest)
        run_sync(db, org(activities=activities))
    synced_at = db.scalar(select(Activity.synced_at).where(Activity.external_id == "T1"))

    again = run_sync(db, org(activities=activities))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 8)
    assert db.scalar(select(Activity.synced_at).where(Activity.external_id == "T1")) == synced_at

    changed = run_sync(db, org(activities=[call("T1", subject="Call about the renewal"), activities[1]]))
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 7)
    assert db.scalar(select(Activity.subject).where(Activity.external_id == "T1")) == "Call about the renewal"


def test_the_content_digest_tells_types_apart_and_reads_an_instant_in_any_zone():
    assert len({content_hash((1,)), content_hash((True,)), content_hash(("1",)), content_hash((1.0,))}) == 4
    assert content_hash((Decimal("1.50"),)) != content_hash((Decimal("1.5"),))
    assert content_hash((None, "a")) != content_hash(("a", None))
    paris = utc(2026, 10, 20, 14).astimezone(timezone(timedelta(hours=2)))
    assert content_hash((paris,)) == content_hash((utc(2026, 10, 20, 14),))


def test_records_land_with_their_references_resolved(db):
    run_sync(db, org(activities=[call("T1", opportunity_external_id="O1")]))
    activity = db.scalars(select(Activity)).one()
    assert activity.account.name == "Acme Corp"
    assert activity.owner.email == "rita@example.com"
    assert activity.opportunity_id == db.scalar(select(Opportunity.id))
    assert (activity.kind, activity.direction, activity.occurred_at) == (
        "call",
        "outbound",
        utc(2026, 10, 20, 14),
    )
    assert db.scalar(select(Account.annual_revenue).where(Account.external_id == "A2")) == Decimal("12000000")


def test_a_changed_record_is_updated_in_place(db):
    run_sync(db, org(activities=[call("T1")]))
    run = run_sync(db, org(activities=[call("T1", subject="Pricing objection follow-up")]))
    assert (run.inserted, run.updated, run.unchanged) == (0, 1, 6)
    assert db.scalars(select(Activity.subject)).all() == ["Pricing objection follow-up"]


def test_an_older_version_arriving_later_never_overwrites_the_newer(db):
    newer = call("T1", subject="newer", modified_at=utc(2026, 10, 21))
    older = call("T1", subject="older", modified_at=utc(2026, 10, 20))

    run = run_sync(db, org(activities=[[newer], [older]]))

    assert (run.inserted, run.updated, run.unchanged) == (7, 0, 0 + 1)
    assert db.scalars(select(Activity.subject)).all() == ["newer"]
    # The other order: the newer version replaces the older one.
    run = run_sync(
        db, org(activities=[[call("T1", subject="newest", modified_at=utc(2026, 10, 22))], [older]])
    )
    assert (run.updated, db.scalars(select(Activity.subject)).all()) == (1, ["newest"])


def test_the_upsert_itself_refuses_an_older_version(db):
    run_sync(db, org(activities=[call("T1", subject="newer", modified_at=utc(2026, 10, 21))]))
    row = {
        column.name: getattr(db.scalars(select(Activity)).one(), column.name)
        for column in Activity.__table__.c
        if column.name != "id"
    }
    replay = dict(row, subject="older", crm_modified_at=utc(2026, 10, 20), content_hash="x")
    # A concurrent writer that classified before us: the statement's own WHERE keeps the newer row.
    db.execute(upsert_statement(db.get_bind().dialect.name, Activity.__table__), [replay])
    db.commit()
    db.expire_all()
    assert db.scalars(select(Activity.subject)).all() == ["newer"]


def test_the_same_record_twice_in_one_batch_keeps_the_newer(db):
    records = [
        call("T1", subject="newer", modified_at=utc(2026, 10, 21)),
        call("T1", subject="older", modified_at=utc(2026, 10, 20)),
    ]
    run = run_sync(db, org(activities=records))
    assert db.scalars(select(Activity.subject)).all() == ["newer"]
    assert (run.inserted, run.unchanged) == (7, 1)


def test_unknown_references_are_reported_and_skipped_while_the_rest_land(db):
    run = run_sync(
        db,
        org(
            accounts=[ACME, GLOBEX, AccountRecord("A3", "Initech", owner_external_id="U9")],
            opportunities=[DEAL, OpportunityRecord("O2", "A9", "Ghost deal")],
            activities=[
                call("T1"),
                call("T2", "A9"),
                call("T3", owner_external_id="U9"),
                call("T4", opportunity_external_id="O9"),
            ],
        ),
    )
    assert run.status == "partial"
    assert (run.inserted, run.failed) == (3 + 2 + 1 + 2, 4)
    assert run.errors == [
        {"stream": "accounts", "external_id": "A3", "field": "owner_id", "message": "unknown owner 'U9'"},
        {
            "stream": "opportunities",
            "external_id": "O2",
            "field": "account_id",
            "message": "unknown account 'A9'",
        },
        {
            "stream": "activities",
            "external_id": "T2",
            "field": "account_id",
            "message": "unknown account 'A9'",
        },
        {"stream": "activities", "external_id": "T3", "field": "owner_id", "message": "unknown owner 'U9'"},
    ]
    landed = dict(db.execute(select(Activity.external_id, Activity.opportunity_id)).all())
    # An unknown opportunity is not an error: the activity lands without it.
    assert landed == {"T1": None, "T4": None}


def test_invalid_records_are_reported_with_their_field(db):
    bad = ActivityRecord("T2", "A1", "fax", occurred_at=utc(2026, 10, 20))
    run = run_sync(db, org(activities=[call("T1"), bad, call("T3", direction="sideways")]))
    assert run.status == "partial"
    assert [(error["external_id"], error["field"]) for error in run.errors] == [
        ("T2", "kind"),
        ("T3", "direction"),
    ]
    assert run.errors[0]["message"] == "must be one of call, email, meeting, task, note, contract, got 'fax'"
    assert db.scalars(select(Activity.external_id)).all() == ["T1"]


def test_errors_reported_by_the_source_are_recorded_and_counted(db):
    error = RecordError("activities", "T9", "occurred_at", "'yesterday' is not an ISO 8601 time")
    run = run_sync(db, org(activities=[Batch("activities", [call("T1")], errors=[error])]))
    assert run.failed == 1
    assert run.errors == [error.as_dict()]


def test_a_deleted_record_keeps_its_row_and_its_link(db):
    strategy = StrategyRecord("S1", "A1", "U3", objective="Win the plant", activity_external_ids=("T1",))
    run_sync(db, org(activities=[call("T1")], strategies=[strategy]))

    run = run_sync(db, org(activities=[call("T1", deleted=True)]))

    assert run.updated == 1
    activity = db.scalars(select(Activity)).one()
    assert activity.deleted is True
    assert activity.link is not None and activity.link.strategy.external_id == "S1"


def test_a_cursor_is_stored_only_after_its_batch_commits(db):
    run_sync(db, org())
    source = MemorySource(
        activities=[
            Batch("activities", [call("T1"), call("T2")], cursor="2026-10-20T14:00:00Z/T2"),
            SourceRateLimited("the CRM's API budget ran out"),
        ]
    )

    run = run_sync(db, source)

    assert (run.status, run.message) == ("failed", "the CRM's API budget ran out")
    assert run.finished_at is not None
    assert run.inserted == 2
    assert run.cursor_after == {"activities": "2026-10-20T14:00:00Z/T2"}
    assert db.scalars(select(Activity.external_id).order_by(Activity.external_id)).all() == ["T1", "T2"]
    assert db.get(SyncCursor, ("file", "activities")).value == "2026-10-20T14:00:00Z/T2"

    # The next run resumes where the committed batch left off.
    retry = MemorySource(activities=[Batch("activities", [call("T3")], cursor="2026-10-21T09:00:00Z/T3")])
    run = run_sync(db, retry)
    assert retry.reads == [("activities", "2026-10-20T14:00:00Z/T2", False)]
    assert (run.cursor_before, run.cursor_after) == (
        {"activities": "2026-10-20T14:00:00Z/T2"},
        {"activities": "2026-10-21T09:00:00Z/T3"},
    )


def test_a_batch_that_fails_to_write_leaves_the_cursor_where_it_was(db):
    run_sync(db, org())
    source = MemorySource(
        activities=[
            Batch("activities", [call("T1")], cursor="c1"),
            Batch("activities", [call("T2")], cursor="c2"),
        ]
    )
    calls = []

    def progress(stream: str, handled: int) -> None:
        calls.append((stream, handled))
        if len(calls) == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_sync(db, source, progress=progress)
    run = db.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
    assert run.status == "failed"
    assert run.message == "internal error: RuntimeError: disk full"
    # The second batch had committed before the progress callback failed: its cursor stands.
    assert db.get(SyncCursor, ("file", "activities")).value == "c2"


def test_an_unexpected_error_rolls_back_the_open_batch_and_is_raised(db):
    run_sync(db, org())

    class Broken(MemorySource):
        def read(self, stream, cursor, *, full):
            yield Batch(stream, [call("T1")], cursor="c1")
            yield Batch(stream, [call("T2")], cursor="c2")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        run_sync(db, Broken(activities=[]))
    run = db.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
    assert (run.status, run.inserted) == ("failed", 2)
    assert run.message == "internal error: KeyError: 'boom'"
    assert db.get(SyncCursor, ("file", "activities")).value == "c2"


class GcWatching(MemorySource):
    """Notes the collector's thresholds and frozen objects while each batch is read."""

    def __init__(self, *, fail: bool = False, **streams: object) -> None:
        super().__init__(**streams)  # type: ignore[arg-type]
        self.fail = fail
        self.seen: list[tuple[tuple[int, int, int], bool]] = []

    def read(self, stream, cursor, *, full):
        for batch in super().read(stream, cursor, full=full):
            self.seen.append((gc.get_threshold(), gc.get_freeze_count() > 0))
            yield batch
        if self.fail and stream == "accounts":
            raise SourceRateLimited("the org is out of API calls")


@pytest.mark.parametrize("fail", [False, True])
def test_a_sync_collects_garbage_rarely_and_restores_the_collector_after(db, fail):
    before = gc.get_threshold()
    source = GcWatching(fail=fail, users=[[VP, MANAGER, REP]], accounts=[[ACME], [GLOBEX]])
    run = run_sync(db, source)
    assert run.status == ("failed" if fail else "succeeded")
    assert source.seen == [((SYNC_GC_THRESHOLD, *before[1:]), True)] * 3
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_syncs_restore_the_collector_when_the_last_one_ends():
    before = gc.get_threshold()
    first_in, second_done = threading.Event(), threading.Event()
    during_first: list[tuple[int, int, int]] = []

    def first() -> None:
        with collecting_less():
            first_in.set()
            second_done.wait(timeout=30)
            during_first.append(gc.get_threshold())

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(timeout=30)
    with collecting_less():
        pass
    second_done.set()
    thread.join(timeout=30)
    # The second sync ended first: the first still ran with the sync's threshold, and the end restored it.
    assert during_first == [(SYNC_GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_sync_does_not_start_while_another_sync_of_its_source_runs(db, another_sync_of):
    running = SyncRun(source="file", status="running", started_at=utc(2026, 11, 25, 2, 30))
    db.add(running)
    db.commit()
    another_sync_of("file")

    message = r"A sync from file is already running \(sync run \d+, started 2026-11-25 02:30 UTC\); this one"
    with pytest.raises(SyncAlreadyRunning, match=message):
        run_sync(db, org())

    assert db.scalar(select(func.count()).select_from(Account)) == 0
    assert db.scalars(select(SyncRun.status)).all() == ["running"]  # the other one's, left alone


@pytest.mark.postgres
def test_a_sync_whose_lock_cannot_be_taken_says_so_rather_than_that_another_runs(db, postgres, caplog):
    # The lock takes a connection of its own (PostgreSQL at max_connections, a pooler refusing it): its
    # failure is no sign of another sync, and the scheduler must not record the period as skipped.
    # The session's engine names a port nothing listens on (with a password) but connects for real.
    real = make_url(postgres)
    _, parameters = db.get_bind().dialect.create_connect_args(real)
    unreachable = real.set(port=1, password="hunter2")
    engine = create_engine(unreachable, creator=lambda: psycopg.connect(**parameters))
    try:
        with Session(engine) as session, pytest.raises(SyncNotStarted) as refused:
            run_sync(session, org())
    finally:
        engine.dispose()

    assert not isinstance(refused.value, SyncAlreadyRunning)
    assert str(refused.value).startswith("A sync from file did not start: its lock could not be taken (")
    assert "hunter2" not in str(refused.value) and "hunter2" not in caplog.text
    assert db.scalar(select(func.count()).select_from(SyncRun)) == 0


def test_a_sync_of_another_source_runs_alongside(db, another_sync_of):
    another_sync_of("salesforce")

    assert run_sync(db, org()).status == "succeeded"
    assert db.scalar(select(func.count()).select_from(Account)) == 2


def test_a_sync_marks_the_runs_its_source_left_running_as_interrupted(db):
    killed = SyncRun(source="file", status="running", started_at=utc(2026, 11, 25, 2, 30))
    other_source = SyncRun(source="salesforce", status="running", started_at=utc(2026, 11, 25, 2, 30))
    db.add_all([killed, other_source])
    db.commit()

    run = run_sync(db, org())

    db.expire_all()
    assert run.status == "succeeded"
    assert killed.status == "failed" and killed.finished_at is not None
    assert killed.message.startswith("Interrupted: the process running this sync stopped before it finished")
    assert other_source.status == "running"  # its own sync will tell


def test_a_sync_lets_go_of_its_lock_however_it_ends(db):
    with pytest.raises(ZeroDivisionError):
        run_sync(db, org(accounts=[ZeroDivisionError("boom")]))

    assert run_sync(db, org()).status == "succeeded"


def test_a_sync_into_a_database_in_memory_leaves_no_file_behind(tmp_path, monkeypatch):
    # Its lock is the process's own: nothing else can reach such a database, and a lock file would stay.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    engine = create_engine("sqlite://", poolclass=StaticPool)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            assert run_sync(session, org()).status == "succeeded"
            assert session.scalar(select(func.count()).select_from(Account)) == 2
    finally:
        engine.dispose()

    assert list(tmp_path.iterdir()) == []


def test_a_full_sync_reads_from_the_start_but_keeps_track_of_cursors(db):
    run_sync(db, org(activities=[Batch("activities", [call("T1")], cursor="c1")]))
    source = org(activities=[Batch("activities", [call("T1")], cursor="c2")])

    run = run_sync(db, source, full=True)

    assert ("activities", None, True) in source.reads
    assert run.full is True
    assert (run.cursor_before, run.cursor_after) == ({"activities": "c1"}, {"activities": "c2"})


def test_big_source_batches_are_written_in_chunks_of_batch_size(db):
    run_sync(db, org())
    statements: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO ACTIVITIES"):
            statements.append(len(parameters) if executemany else 1)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        progress: list[tuple[str, int]] = []
        source = MemorySource(activities=[[call(f"T{n:02d}") for n in range(25)], [call("T99")]])
        run = run_sync(db, source, batch_size=10, progress=lambda stream, n: progress.append((stream, n)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert run.inserted == 26
    assert progress == [("activities", 10), ("activities", 10), ("activities", 5), ("activities", 1)]
    if engine.dialect.name == "postgresql":
        # Each chunk is COPied into the staging table, then upserted by one INSERT ... SELECT.
        assert statements == [1, 1, 1, 1]
    else:
        # One executemany per chunk.
        assert statements == [10, 10, 5, 1]


def test_only_500_errors_are_kept_but_all_are_counted(db):
    run_sync(db, org())
    records = [call(f"T{n}", "A9") for n in range(MAX_STORED_ERRORS + 20)]
    run = run_sync(db, MemorySource(activities=[records]))
    assert run.failed == MAX_STORED_ERRORS + 20
    assert len(run.errors) == MAX_STORED_ERRORS
    assert run.status == "partial"


def test_the_sources_api_usage_and_notes_are_recorded(db):
    source = org()
    source.report.api_usage = "1520/15000"
    source.report.notes.append("skipped 3 archived calls")
    run = run_sync(db, source)
    assert (run.api_usage, run.message) == ("1520/15000", "skipped 3 archived calls")


def test_an_unknown_stream_fails_the_run(db):
    with pytest.raises(ValueError, match="unknown stream 'contacts'"):
        run_sync(db, MemorySource(contacts=[]))


def test_a_crm_sync_never_touches_strategies_written_in_the_app(db):
    run_sync(db, org(activities=[call("T1")], strategies=[StrategyRecord("S1", "A1", objective="Imported")]))
    account = db.scalars(select(Account).where(Account.external_id == "A1")).one()
    db.add(Strategy(account=account, objective="Written in StratLink"))
    db.commit()

    run_sync(db, MemorySource("salesforce", accounts=[[ACME]], activities=[[call("T1")]]))

    assert sorted(db.scalars(select(Strategy.objective))) == ["Imported", "Written in StratLink"]


# Users ---------------------------------------------------------------------------------------------


def test_users_get_their_manager_from_the_crm_ids(db):
    run = run_sync(db, memory_source(users=[REP, MANAGER, VP]))
    users = {user.email: user for user in db.scalars(select(User))}
    assert run.inserted == 3
    assert users["rita@example.com"].manager is users["mo@example.com"]
    assert users["mo@example.com"].manager is users["vera@example.com"]
    assert users["vera@example.com"].manager is None
    assert {identity.external_id for identity in users["rita@example.com"].identities} == {"U3"}


def test_users_are_matched_by_email_whatever_its_case(db):
    existing = make_user(db, email="Rita@Example.com", role=Role.REP)
    db.commit()
    run_sync(db, memory_source(users=[UserRecord("U3", "rita@EXAMPLE.com", "Rita R.")]))
    user = db.scalars(select(User)).one()
    assert user.id == existing.id
    assert user.name == "Rita R."
    assert db.scalars(select(UserIdentity.external_id)).all() == ["U3"]


def test_a_user_without_a_role_who_manages_someone_becomes_a_manager(db):
    records = [
        UserRecord("U1", "vera@example.com", "Vera VP"),
        UserRecord("U2", "mo@example.com", "Mo", manager_external_id="U1"),
        UserRecord("U3", "rita@example.com", "Rita", manager_external_id="U2"),
    ]
    run_sync(db, memory_source(users=records))
    roles = dict(db.execute(select(User.email, User.role)).all())
    assert roles == {
        "vera@example.com": Role.MANAGER,
        "mo@example.com": Role.MANAGER,
        "rita@example.com": Role.REP,
    }
    # Running again (all unchanged) keeps the derived roles.
    run = run_sync(db, memory_source(users=records))
    assert run.unchanged == 3
    assert dict(db.execute(select(User.email, User.role)).all()) == roles


def test_a_local_role_changes_only_when_the_record_carries_one_and_never_from_admin(db):
    make_user(db, email="ada@example.com", role=Role.ADMIN)
    make_user(db, email="mo@example.com", role=Role.MANAGER)
    db.commit()
    run_sync(
        db,
        memory_source(
            users=[
                UserRecord("U1", "ada@example.com", "Ada", role="rep"),
                UserRecord("U2", "mo@example.com", "Mo", role=None),
                UserRecord("U3", "rita@example.com", "Rita", role="manager"),
            ]
        ),
    )
    roles = dict(db.execute(select(User.email, User.role)).all())
    assert roles == {
        "ada@example.com": Role.ADMIN,
        "mo@example.com": Role.MANAGER,
        "rita@example.com": Role.MANAGER,
    }

    run_sync(db, memory_source(users=[UserRecord("U3", "rita@example.com", "Rita", role="rep")]))
    assert db.scalar(select(User.role).where(User.email == "rita@example.com")) == Role.REP


def test_an_unknown_manager_is_reported_and_the_user_still_lands(db):
    run = run_sync(
        db, memory_source(users=[UserRecord("U3", "rita@example.com", "Rita", manager_external_id="U7")])
    )
    assert run.errors == [
        {"stream": "users", "external_id": "U3", "field": "manager_id", "message": "unknown manager 'U7'"}
    ]
    assert db.scalar(select(User.manager_id)) is None
    assert run.status == "partial"


def test_a_manager_whose_manager_is_unknown_does_not_become_the_vp(db, client):
    """A typo in a manager's manager_id used to leave them with no one above them: the VP's view of
    every account. They land, reported, kept from signing in until a record names their manager."""
    lina = UserRecord("U2", "lina@example.com", "Lina", role="manager", manager_external_id="U_VPX")
    records = [VP, lina, UserRecord("U3", "rita@example.com", "Rita", role="rep", manager_external_id="U2")]

    run = run_sync(db, memory_source(users=records))

    assert [(e["external_id"], e["message"]) for e in run.errors] == [
        (
            "U2",
            "unknown manager 'U_VPX'; imported without sign-in until a record names their manager, since a"
            " manager with no one above them sees every account, as the VP",
        )
    ]
    users = {user.email: user for user in db.scalars(select(User))}
    assert (users["lina@example.com"].manager, users["lina@example.com"].active) == (None, False)
    assert users["rita@example.com"].manager is users["lina@example.com"]  # her team lands whole
    token = issue_api_token(db, users["lina@example.com"])
    db.commit()
    assert client.get("/api/accounts", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # The same file again, unchanged: still refused (her record is applied again, not skipped as unchanged).
    again = run_sync(db, memory_source(users=records))
    assert [e["external_id"] for e in again.errors] == ["U2"]
    # Fixed: she reports to the VP and signs in again.
    fixed = run_sync(db, memory_source(users=[VP, dataclasses.replace(lina, manager_external_id="U1")]))
    assert fixed.errors == []
    db.expire_all()
    lina_now = db.scalars(select(User).where(User.email == "lina@example.com")).one()
    assert (lina_now.manager.email, lina_now.active) == ("vera@example.com", True)


def test_the_vp_stays_the_vp_when_a_record_names_an_unknown_manager(db):
    run_sync(db, memory_source(users=[VP]))

    run = run_sync(db, memory_source(users=[dataclasses.replace(VP, manager_external_id="U9")]))

    assert [(e["external_id"], e["message"]) for e in run.errors] == [("U1", "unknown manager 'U9'")]
    vera = db.scalars(select(User)).one()
    assert (vera.role, vera.manager, vera.active) == (Role.MANAGER, None, True)


def test_a_rep_cannot_be_someones_manager_and_loops_are_reported(db):
    records = [
        VP,
        UserRecord("D1", "dan@example.com", "Dan", role="rep", manager_external_id="U1"),
        UserRecord("E1", "eve@example.com", "Eve", role="rep", manager_external_id="D1"),
        UserRecord("C1", "cy@example.com", "Cy", role="manager", manager_external_id="C2"),
        UserRecord("C2", "cleo@example.com", "Cleo", role="manager", manager_external_id="C1"),
        UserRecord("S1", "sam@example.com", "Sam", role="manager", manager_external_id="S1"),
    ]

    run = run_sync(db, memory_source(users=records))

    assert sorted((e["external_id"], e["message"]) for e in run.errors) == [
        ("C1", "managers in a loop: C1 → C2 → C1"),
        ("C2", "managers in a loop: C2 → C1 → C2"),
        ("E1", "'D1' is a rep: a manager must be a manager or an admin"),
        (
            "S1",
            "a user cannot be their own manager; imported without sign-in until a record names their"
            " manager, since a manager with no one above them sees every account, as the VP",
        ),
    ]
    users = {user.email: user for user in db.scalars(select(User))}
    assert users["eve@example.com"].manager is None  # a rep with no manager sees only her own accounts
    assert users["cy@example.com"].manager is users["cleo@example.com"]  # no one at the top: no VP made


def test_two_crm_users_with_one_email_merge_only_when_they_agree(db):
    records = [
        VP,
        UserRecord("E1", "ann@example.com", "Ann", role="manager", manager_external_id="U1"),
        UserRecord("E2", "Ann@Example.com", "Ann (second login)", role="manager", manager_external_id="U1"),
        UserRecord("E3", "ANN@example.com", "Ann again", role="rep"),
        UserRecord("B1", "bob@example.com", "Bob", role="rep", manager_external_id="E1"),
    ]

    run = run_sync(db, memory_source(users=records))

    assert [(e["external_id"], e["field"], e["message"]) for e in run.errors] == [
        ("E3", "email", "'ann@example.com' is already E1's, with another role or manager")
    ]
    ann = db.scalars(select(User).where(User.email == "ann@example.com")).one()
    assert (ann.role, ann.manager.email) == (Role.MANAGER, "vera@example.com")  # not made a rep
    assert sorted(identity.external_id for identity in ann.identities) == ["E1", "E2"]
    assert db.scalar(select(User.manager_id).where(User.email == "bob@example.com")) == ann.id


def test_a_manager_arriving_in_a_later_sync_is_attached(db):
    run_sync(db, memory_source(users=[REP]))
    run_sync(db, memory_source(users=[MANAGER]))
    rep = db.scalars(select(User).where(User.email == "rita@example.com")).one()
    assert rep.manager is not None and rep.manager.email == "mo@example.com"


def test_a_user_who_changes_email_in_the_crm_keeps_their_account(db):
    run_sync(db, memory_source(users=[REP]))
    user_id = db.scalar(select(User.id))
    run = run_sync(
        db, memory_source(users=[UserRecord("U3", "rita.rep@example.com", "Rita Rep", role="rep")])
    )
    assert run.updated == 1
    assert db.execute(select(User.id, User.email)).all() == [(user_id, "rita.rep@example.com")]


def test_a_deactivated_crm_user_is_deactivated(db):
    run_sync(db, memory_source(users=[REP]))
    run_sync(
        db, memory_source(users=[UserRecord("U3", "rita@example.com", "Rita Rep", role="rep", active=False)])
    )
    assert db.scalar(select(User.active)) is False


# Strategies ----------------------------------------------------------------------------------------

PLAN = StrategyRecord(
    "S1",
    "A1",
    "U3",
    objective="Acme runs a second shift without new hires",
    customer_view="Their COO fears overtime costs",
    approach="Pilot on line 2, then the COO",
    success_measure="Second shift live by March",
    target_date=date(2027, 3, 31),
    review_date=date(2026, 12, 1),
    status="active",
    activity_external_ids=("T1", "T2"),
)


def test_a_new_strategy_gets_version_1_its_revision_and_its_links(db):
    run = run_sync(db, org(activities=[call("T1"), call("T2"), call("T3")], strategies=[PLAN]))
    strategy = db.scalars(select(Strategy)).one()
    assert (run.status, strategy.version, strategy.status) == ("succeeded", 1, "active")
    assert strategy.author.email == "rita@example.com"
    assert sorted(link.activity.external_id for link in strategy.links) == ["T1", "T2"]
    revision = db.scalars(select(StrategyRevision)).one()
    assert revision.version == 1
    assert revision.changed_fields == [
        "objective", "customer_view", "approach", "success_measure", "target_date", "review_date", "status"
    ]  # fmt: skip
    assert revision.snapshot == {
        "objective": "Acme runs a second shift without new hires",
        "customer_view": "Their COO fears overtime costs",
        "approach": "Pilot on line 2, then the COO",
        "success_measure": "Second shift live by March",
        "target_date": "2027-03-31",
        "review_date": "2026-12-01",
        "status": "active",
        "opportunity_id": None,
    }


def test_reimporting_a_changed_strategy_bumps_its_version_and_lists_the_changes(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    changed = dataclasses.replace(
        PLAN, approach="Go to the COO now", review_date=date(2027, 1, 15), activity_external_ids=("T2", "T3")
    )

    run = run_sync(db, org(activities=activities, strategies=[changed]))

    assert (run.inserted, run.updated) == (0, 1)
    strategy = db.scalars(select(Strategy)).one()
    assert strategy.version == 2
    assert [(r.version, r.changed_fields) for r in strategy.revisions] == [
        (1, PLAN_FIELDS),
        (2, ["approach", "review_date"]),
    ]
    assert strategy.revisions[1].snapshot["review_date"] == "2027-01-15"
    assert sorted(link.activity.external_id for link in strategy.links) == ["T2", "T3"]

    again = run_sync(db, org(activities=activities, strategies=[changed]))
    assert (again.updated, again.unchanged) == (0, 10)
    assert db.scalar(select(Strategy.version)) == 2


PLAN_FIELDS = [
    "objective",
    "customer_view",
    "approach",
    "success_measure",
    "target_date",
    "review_date",
    "status",
]


def test_a_strategy_record_active_or_achieved_without_its_substance_is_reported_and_skipped(db):
    # The editor refuses these: an empty active or achieved strategy would cover its activities in the
    # review, and an active one without a review date would never come up as overdue.
    empty = StrategyRecord(
        "S2", "A1", "U3", objective="", approach="", status="active", activity_external_ids=("T3",)
    )
    done = dataclasses.replace(
        PLAN, external_id="S3", approach="", status="achieved", activity_external_ids=()
    )
    run = run_sync(db, org(activities=[call("T1"), call("T2"), call("T3")], strategies=[PLAN, empty, done]))

    assert [(error["external_id"], error["field"], error["message"]) for error in run.errors] == [
        (
            "S2",
            "objective, approach, review_date",
            "An active strategy needs an objective: the outcome you want for the customer. "
            "An active strategy needs an approach: how you will spend your time and energy. "
            "An active strategy needs a review date, so that it gets looked at again.",
        ),
        (
            "S3",
            "approach",
            "An achieved strategy needs an approach: how you will spend your time and energy.",
        ),
    ]
    assert run.failed == 2
    assert db.scalars(select(Strategy.external_id)).all() == ["S1"]
    assert linked(db) == {"T1": "S1", "T2": "S1"}


def test_a_reimport_that_would_empty_an_active_strategy_changes_nothing_and_says_why(db):
    activities = [call("T1"), call("T2")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    emptied = dataclasses.replace(PLAN, approach="", review_date=None, success_measure="Live by April")

    run = run_sync(db, org(activities=activities, strategies=[emptied]))

    assert [(error["field"], error["message"]) for error in run.errors] == [
        (
            "approach, review_date",
            "An active strategy needs an approach: how you will spend your time and energy. "
            "An active strategy needs a review date, so that it gets looked at again.",
        )
    ]
    strategy = db.scalars(select(Strategy)).one()
    assert (strategy.version, strategy.approach, strategy.success_measure) == (
        1,
        PLAN.approach,
        PLAN.success_measure,
    )
    # Drafting it in the CRM first is the way: a draft needs none of it.
    drafted = run_sync(
        db, org(activities=activities, strategies=[dataclasses.replace(emptied, status="draft")])
    )
    assert drafted.failed == 0
    db.refresh(strategy)
    assert (strategy.version, strategy.status, strategy.approach) == (2, "draft", "")


def test_an_activity_serves_at_most_one_strategy_on_import(db):
    other = StrategyRecord("S2", "A1", "U3", objective="Another plan", activity_external_ids=("T2", "T3"))
    run = run_sync(db, org(activities=[call("T1"), call("T2"), call("T3")], strategies=[PLAN, other]))
    assert run.errors == [
        {
            "stream": "strategies",
            "external_id": "S2",
            "field": "activity_ids",
            "message": "activity 'T2' already serves another strategy",
        }
    ]
    links = linked(db)
    assert links == {"T1": "S1", "T2": "S1", "T3": "S2"}


def test_a_link_released_by_one_strategy_can_be_taken_by_another_in_the_same_import(db):
    activities = [call("T1"), call("T2")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    released = StrategyRecord("S1", "A1", "U3", objective=PLAN.objective, activity_external_ids=("T1",))
    taker = StrategyRecord("S2", "A1", "U3", objective="Other", activity_external_ids=("T2",))
    run = run_sync(db, org(activities=activities, strategies=[released, taker]))
    assert run.failed == 0
    links = linked(db)
    assert links == {"T1": "S1", "T2": "S2"}


def test_strategy_references_that_do_not_resolve_are_reported(db):
    strategies = [
        StrategyRecord("S1", "A9", "U3", objective="x"),
        StrategyRecord("S2", "A1", "U9", objective="x"),
        StrategyRecord("S3", "A1", "U3", objective="x", activity_external_ids=("T404", "T1", "T9")),
    ]
    run = run_sync(db, org(activities=[call("T1"), call("T9", "A2")], strategies=strategies))
    assert [(e["external_id"], e["field"], e["message"]) for e in run.errors] == [
        ("S1", "account_id", "unknown account 'A9'"),
        ("S2", "author_id", "unknown author 'U9'"),
        ("S3", "activity_ids", "unknown activity 'T404'"),
        ("S3", "activity_ids", "activity 'T9' belongs to another account"),
    ]
    assert run.failed == 3  # records, not errors: S3's two refused links are one record with faults
    assert db.scalars(select(Strategy.external_id)).all() == ["S3"]
    assert db.scalars(select(Activity.external_id).join(Link)).all() == ["T1"]


# Re-imports are three-way: the import changes only what changed in it since its last import --------


def rita(db) -> User:
    return db.scalars(select(User).where(User.email == "rita@example.com")).one()


def imported(db) -> Strategy:
    return db.scalars(select(Strategy).where(Strategy.external_id == "S1")).one()


def activity(db, external_id: str) -> Activity:
    return db.scalars(select(Activity).where(Activity.external_id == external_id)).one()


def edit(db, strategy: Strategy, **fields: object) -> None:
    """Save `fields` as Rita does in StratLink (the same function the page and the API call)."""
    update_strategy(db, rita(db), strategy, fields, version=strategy.version)
    db.commit()


def test_links_the_import_makes_are_made_by_nobody_and_links_people_make_by_them(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    link_activities(db, rita(db), imported(db), [activity(db, "T3").id])
    db.commit()

    made_by = dict(db.execute(select(Activity.external_id, Link.created_by_id).join(Link)).all())

    assert made_by == {"T1": None, "T2": None, "T3": rita(db).id}


def test_an_unchanged_reimport_keeps_local_edits_and_local_link_changes(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    strategy = imported(db)
    edit(db, strategy, success_measure="EDITED")
    unlink_activities(db, rita(db), strategy, [activity(db, "T1").id])
    link_activities(db, rita(db), strategy, [activity(db, "T3").id])
    db.commit()

    run = run_sync(db, org(activities=activities, strategies=[PLAN]))

    # The record is the same as last time: the strategy counts as unchanged and keeps what Rita did.
    assert (run.status, run.updated, run.failed) == ("succeeded", 0, 0)
    strategy = imported(db)
    assert (strategy.success_measure, strategy.version) == ("EDITED", 2)
    assert [revision.author_id for revision in strategy.revisions] == [rita(db).id, rita(db).id]
    assert linked(db) == {"T2": "S1", "T3": "S1"}


def test_a_field_changed_in_the_import_updates_that_field_only_as_a_revision_by_the_import(db):
    activities = [call("T1"), call("T2")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    edit(db, imported(db), success_measure="EDITED")
    changed = dataclasses.replace(PLAN, approach="Go to the COO now")

    run = run_sync(db, org(activities=activities, strategies=[changed]))

    assert (run.status, run.updated) == ("succeeded", 1)
    strategy = imported(db)
    assert (strategy.approach, strategy.success_measure, strategy.version) == (
        "Go to the COO now", "EDITED", 3
    )  # fmt: skip
    revision = strategy.revisions[-1]
    # Written by the import, not by Rita: no author.
    assert (revision.version, revision.changed_fields, revision.author_id) == (3, ["approach"], None)
    assert (revision.snapshot["approach"], revision.snapshot["success_measure"]) == (
        "Go to the COO now", "EDITED"
    )  # fmt: skip


def test_a_field_changed_on_both_sides_keeps_the_local_edit_and_notes_it_once(db):
    activities = [call("T1"), call("T2")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    edit(db, imported(db), success_measure="EDITED")
    changed = dataclasses.replace(PLAN, success_measure="Second shift live by June")

    run = run_sync(db, org(activities=activities, strategies=[changed]))

    # The edit made in StratLink stays; the run is not a failure, and its notes name the field.
    assert (run.status, run.updated, run.failed) == ("succeeded", 0, 0)
    assert run.message == (
        "strategies: kept 1 field(s) edited in StratLink that the import also changed (S1 success_measure)"
    )
    assert (imported(db).success_measure, imported(db).version) == ("EDITED", 2)
    again = run_sync(db, org(activities=activities, strategies=[changed]))
    assert (again.message, imported(db).success_measure) == (None, "EDITED")


def test_changed_activity_ids_add_and_drop_only_the_imports_own_links(db):
    activities = [call("T1"), call("T2"), call("T3"), call("T4")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))  # links T1 and T2
    strategy = imported(db)
    unlink_activities(db, rita(db), strategy, [activity(db, "T1").id])
    link_activities(db, rita(db), strategy, [activity(db, "T3").id])
    db.commit()
    changed = dataclasses.replace(PLAN, activity_external_ids=("T1", "T4"))

    run = run_sync(db, org(activities=activities, strategies=[changed]))

    # T2, no longer listed, was the import's and goes; T4 is new and comes; T1 (listed both times) stays
    # unlinked as Rita left it; T3, linked by Rita, stays.
    assert (run.status, run.updated) == ("succeeded", 1)
    assert linked(db) == {"T3": "S1", "T4": "S1"}


def test_moving_an_imported_link_to_another_strategy_does_not_fail_later_syncs(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    own = create_strategy(db, rita(db), imported(db).account, {"objective": "Rita's own plan"})
    link_activities(db, rita(db), own, [activity(db, "T2").id], move=True)
    db.commit()

    runs = [run_sync(db, org(activities=activities, strategies=[PLAN])) for _ in range(2)]

    assert [(run.status, run.failed, run.errors) for run in runs] == [("succeeded", 0, [])] * 2
    assert activity(db, "T2").link.strategy_id == own.id
    assert activity(db, "T1").link.strategy_id == imported(db).id


def test_a_newly_listed_activity_a_person_filed_elsewhere_stays_there_reported_once(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    own = create_strategy(db, rita(db), imported(db).account, {"objective": "Rita's own plan"})
    link_activities(db, rita(db), own, [activity(db, "T3").id])
    db.commit()
    changed = dataclasses.replace(PLAN, activity_external_ids=("T1", "T2", "T3"))

    first = run_sync(db, org(activities=activities, strategies=[changed]))
    second = run_sync(db, org(activities=activities, strategies=[changed]))

    assert [(e["external_id"], e["message"]) for e in first.errors] == [
        ("S1", "activity 'T3' already serves another strategy")
    ]
    assert (second.status, second.failed) == ("succeeded", 0)
    assert activity(db, "T3").link.strategy_id == own.id


def test_the_first_reimport_of_a_strategy_imported_before_0009_keeps_its_local_edits(db):
    activities = [call("T1"), call("T2"), call("T3")]
    run_sync(db, org(activities=activities, strategies=[PLAN]))
    edit(db, imported(db), success_measure="EDITED")
    unlink_activities(db, rita(db), imported(db), [activity(db, "T1").id])
    imported(db).last_import = None  # as the rows stored before migration 0009 are
    db.commit()
    changed = dataclasses.replace(PLAN, success_measure="Second shift live by June")

    run_sync(db, org(activities=activities, strategies=[changed]))

    # Saved since its import (version 2), so every stored value stays; its links stay as they are.
    assert (imported(db).success_measure, imported(db).version) == ("EDITED", 2)
    assert linked(db) == {"T2": "S1"}
    # From then on it is a three-way update like any other.
    run_sync(db, org(activities=activities, strategies=[dataclasses.replace(changed, approach="COO now")]))
    assert (imported(db).approach, imported(db).success_measure) == ("COO now", "EDITED")


def test_a_demo_resync_leaves_a_users_edit_and_unlink_and_moves_only_the_demo_dates(db, client):
    run_sync(db, DemoSource(accounts=30, today=DEMO_DAY))
    strategy = db.scalars(
        select(Strategy).join(Link).where(Strategy.review_date.is_not(None)).order_by(Strategy.id).limit(1)
    ).one()
    unlinked = strategy.links[0].activity_id
    api = {"Authorization": f"Bearer {issue_api_token(db, strategy.account.owner)}"}
    db.commit()
    patched = client.patch(
        f"/api/strategies/{strategy.id}", json={"version": 1, "success_measure": "EDITED"}, headers=api
    )
    removed = client.delete(
        f"/api/strategies/{strategy.id}/links", json={"activity_ids": [unlinked]}, headers=api
    )
    assert (patched.status_code, removed.status_code) == (200, 200)
    review_date = strategy.review_date

    # The scheduler's next sync the same day, then the next day's (the demo's dates move with the day).
    same_day = run_sync(db, DemoSource(accounts=30, today=DEMO_DAY))
    next_day = run_sync(db, DemoSource(accounts=30, today=DEMO_DAY + timedelta(days=1)))

    assert (same_day.status, same_day.updated, next_day.status) == ("succeeded", 0, "succeeded")
    db.expire_all()
    strategy = db.get(Strategy, strategy.id)
    assert strategy.success_measure == "EDITED"
    assert strategy.review_date == review_date + timedelta(days=1)
    assert unlinked not in {link.activity_id for link in strategy.links}
    assert [(revision.version, revision.author_id) for revision in strategy.revisions] == [
        (1, strategy.author_id), (2, strategy.account.owner_id), (3, None)
    ]  # fmt: skip


def test_a_bulk_statement_converts_values_as_the_orm_would_and_upserts(db):
    owner = make_user(db)
    db.commit()
    table = Account.__table__
    dialect = db.get_bind().dialect
    columns = ["source", "external_id", "name", "owner_id", "annual_revenue", "deleted", "synced_at",
               "crm_modified_at", "content_hash"]  # fmt: skip
    bulk = bulk_upsert(dialect, table, columns)  # COPY + INSERT ... SELECT on PostgreSQL
    first = {"source": "crm", "external_id": "A1", "name": "Acme", "owner_id": owner.id,
             "annual_revenue": Decimal("1250000.50"), "deleted": False, "synced_at": utc(2026, 11, 1, 9),
             "crm_modified_at": utc(2026, 11, 1, 8), "content_hash": "h1"}  # fmt: skip
    second = {**first, "external_id": "A2", "name": "Globex", "annual_revenue": None, "crm_modified_at": None}
    bulk.execute(db, [dict(first), dict(second)])
    # In the same transaction: the same key again, newer, updates in place; an older one is ignored.
    bulk.execute(db, [{**first, "name": "Acme Corp", "crm_modified_at": utc(2026, 11, 2, 8)}])
    bulk.execute(db, [{**first, "name": "Acme (old)", "crm_modified_at": utc(2026, 10, 1, 8)}])
    db.commit()
    db.expire_all()
    stored = {account.external_id: account for account in db.scalars(select(Account))}
    assert set(stored) == {"A1", "A2"}
    assert stored["A1"].name == "Acme Corp"
    assert stored["A1"].annual_revenue == Decimal("1250000.50")
    assert stored["A1"].crm_modified_at == utc(2026, 11, 2, 8)
    assert stored["A1"].synced_at == utc(2026, 11, 1, 9)
    assert stored["A2"].annual_revenue is None
    # Stored times compare correctly in SQL against times bound the ordinary way.
    later = db.scalars(select(Account.external_id).where(Account.crm_modified_at > utc(2026, 11, 1, 12)))
    assert list(later) == ["A1"]


def test_a_bulk_statement_refuses_rows_with_other_columns(db):
    table = Account.__table__
    dialect = db.get_bind().dialect
    bulk = bulk_upsert(dialect, table, ["source", "external_id", "name"])
    with pytest.raises(ValueError, match="same columns"):
        bulk.execute(db, [{"source": "crm", "external_id": "A1", "name": "Acme", "deleted": False}])
    assert db.scalar(select(func.count()).select_from(Account)) == 0


def test_bulk_upserts_of_one_table_with_other_columns_do_not_share_rows(db):
    table = Account.__table__
    dialect = db.get_bind().dialect
    short = bulk_upsert(dialect, table, ["source", "external_id", "name", "deleted", "synced_at"])
    long = bulk_upsert(dialect, table, ["source", "external_id", "name", "deleted", "synced_at", "industry"])
    base = {"source": "crm", "deleted": False, "synced_at": utc(2026, 11, 1, 9)}
    short.execute(db, [{**base, "external_id": "A1", "name": "Acme"}])
    long.execute(db, [{**base, "external_id": "A2", "name": "Globex", "industry": "Retail"}])
    db.commit()
    stored = {
        account.external_id: (account.name, account.industry) for account in db.scalars(select(Account))
    }
    assert stored == {"A1": ("Acme", None), "A2": ("Globex", "Retail")}


def _deferred_activity_parts(db) -> set[str]:
    """The activities' non-unique indexes, and on PostgreSQL their foreign keys, the database has now."""
    inspector = inspect(db.connection())  # a fresh inspector: no cache
    present = {index["name"] for index in inspector.get_indexes("activities") if not index["unique"]}
    if db.get_bind().dialect.name == "postgresql":
        present |= {key["name"] for key in inspector.get_foreign_keys("activities")}
    return present


def _declared_activity_parts(db) -> set[str]:
    declared = {index.name for index in Activity.__table__.indexes if not index.unique}
    if db.get_bind().dialect.name == "postgresql":
        declared |= {str(key.name) for key in Activity.__table__.foreign_key_constraints}
    return declared


class IndexProbingSource(MemorySource):
    """Notes which activity indexes (and keys) exist each time the engine asks for the next activities."""

    def __init__(self, db, **streams):
        super().__init__(**streams)
        self.db = db
        self.seen: list[set[str]] = []

    def read(self, stream, cursor, *, full):
        for batch in super().read(stream, cursor, full=full):
            if stream == "activities":
                self.seen.append(_deferred_activity_parts(self.db))
            yield batch


def test_a_first_load_of_activities_builds_their_indexes_after_the_rows(db):
    declared = _declared_activity_parts(db)
    assert len(declared) >= (5 if db.get_bind().dialect.name == "postgresql" else 2)
    source = IndexProbingSource(
        db, users=[[VP, MANAGER, REP]], accounts=[[ACME, GLOBEX]], activities=[[call("T1")], [call("T2")]]
    )
    run = run_sync(db, source)
    assert run.status == "succeeded" and run.inserted == 7
    assert source.seen == [set(), set()]  # loaded without them...
    assert _deferred_activity_parts(db) == declared  # ...and built afterwards


def test_a_first_load_that_fails_still_gets_its_indexes_back(db):
    source = IndexProbingSource(
        db,
        users=[[VP, MANAGER, REP]],
        accounts=[[ACME]],
        activities=[[call("T1")], SourceRateLimited("slow down"), [call("T2")]],
    )
    run = run_sync(db, source)
    assert run.status == "failed"
    assert source.seen == [set()]
    assert db.scalars(select(Activity.external_id)).all() == ["T1"]  # the committed batch stays
    assert _deferred_activity_parts(db) == _declared_activity_parts(db)


def test_later_syncs_keep_the_indexes_and_a_sync_restores_any_a_kill_left_missing(db):
    run_sync(db, org(activities=[call("T1")]))
    dropped: list[str] = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("DROP INDEX", "ALTER TABLE")):
            dropped.append(statement)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", watch)
    try:
        source = IndexProbingSource(db, activities=[[call("T2")]])
        assert run_sync(db, source).status == "succeeded"
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert dropped == []
    declared = _declared_activity_parts(db)
    assert source.seen == [declared]

    # A first load killed mid-way (no `finally` ran) leaves an index (and on PostgreSQL the keys)
    # missing; the next run rebuilds them.
    victim = next(index for index in Activity.__table__.indexes if not index.unique)
    victim.drop(db.connection())
    if db.get_bind().dialect.name == "postgresql":
        for key in Activity.__table__.foreign_key_constraints:
            db.execute(DropConstraint(key))
    db.commit()
    assert victim.name not in _deferred_activity_parts(db)
    assert run_sync(db, org()).status == "succeeded"
    assert _deferred_activity_parts(db) == declared


def test_on_postgresql_batches_commit_without_waiting_for_the_disk_and_nothing_else_does(db):
    postgres = db.get_bind().dialect.name == "postgresql"
    during: list[str] = []
    statements: list[str] = []

    def watch(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)
        if postgres and statement.lstrip().startswith(("INSERT INTO accounts", "INSERT INTO activities")):
            # Asked on the driver's own connection, inside the batch's transaction.
            during.append(cursor.connection.execute("SHOW synchronous_commit").fetchone()[0])

    engine = db.get_bind()
    event.listen(engine, "after_cursor_execute", watch)
    try:
        assert run_sync(db, org(activities=[call("T1"), call("T2")])).status == "succeeded"
    finally:
        event.remove(engine, "after_cursor_execute", watch)

    if postgres:
        assert len(during) >= 2 and set(during) == {"off"}
        assert db.execute(text("SHOW synchronous_commit")).scalar() == "on"  # SET LOCAL: this batch only
        db.rollback()
    else:
        assert not any("synchronous_commit" in statement for statement in statements)
