"""The sync engine: batches of normalized records -> upserts, cursors and a sync run.

`run_sync(session, source)` pulls every stream of a source in order, writes each batch with one dialect
upsert (`INSERT ... ON CONFLICT DO UPDATE`, compiled once, executemany), records counts and errors on a
`SyncRun`, and stores each stream's cursor in the same transaction as the batch that carried it, so a
cursor never gets ahead of the rows it stands for. A record that fails validation or names an unknown
parent is reported on the run and skipped; the rest of its batch lands.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from operator import itemgetter
from typing import Any, TypeVar

import msgspec
from sqlalchemy import String, bindparam, delete, func, inspect, or_, select, true
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import AddConstraint, DropConstraint

from extensions import DbSession, upsert_insert
from integrations.base import (
    AccountRecord,
    ActivityRecord,
    Batch,
    OpportunityRecord,
    Record,
    RecordError,
    RecordInvalid,
    Source,
    SourceError,
    StrategyRecord,
    UserRecord,
    validate,
)
from jobs.lock import RunnerLock, lock_for
from planning.models import (
    STRATEGY_FIELDS,
    Account,
    Activity,
    Link,
    Opportunity,
    Role,
    Strategy,
    StrategyRevision,
    StrategyStatus,
    SyncCursor,
    SyncRun,
    User,
    UserIdentity,
)
from planning.strategies import activation_errors, current_values, strategy_snapshot

Progress = Callable[[str, int], None]

logger = logging.getLogger(__name__)

# A run keeps this many error entries; `failed` still counts every one.
MAX_STORED_ERRORS = 500
# CRM id -> row id entries kept per kind of parent; bounded so a 1M-row sync runs in flat memory.
REFERENCE_CACHE_SIZE = 100_000
# Keeps `IN (...)` lists below SQLite's bound-parameter limit (32,766) whatever the batch size.
LOOKUP_CHUNK = 5000
# Amounts are Numeric(18, 2): anything at or above this does not fit.
MONEY_LIMIT = Decimal(10) ** 16
CENT = Decimal("0.01")
# A run's notes name this many strategy fields kept against a changed import, then count the rest.
KEPT_LOCAL_SHOWN = 20

_Item = TypeVar("_Item")


class SyncNotStarted(Exception):  # noqa: N818  (a refusal, not a failure of the sync)
    """This sync did not start: its source's lock could not be taken (the message says why)."""


class SyncAlreadyRunning(SyncNotStarted):
    """Another sync of the same source is running (in this process or another); this one did not start."""


def run_sync(
    session: DbSession,
    source: Source,
    *,
    full: bool = False,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> SyncRun:
    """Pull every stream of `source` into the database and return the finished sync run.

    Raises SyncAlreadyRunning when another sync of the source holds its lock: two at once (the
    scheduler's and someone's `sync`, or the admin page's button) would both write every record, and
    the second of two first loads failed outright. Raises SyncNotStarted when the lock cannot be taken
    at all (the lock's own connection to PostgreSQL refused).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise RuntimeError(f"the sync engine supports SQLite and PostgreSQL, not {dialect}")
    lock = sync_lock(session, source.name)
    if not lock.acquire():
        if lock.problem is not None:
            raise SyncNotStarted(
                f"A sync from {source.name} did not start: its lock could not be taken ({lock.problem})."
            )
        raise SyncAlreadyRunning(_already_running(session, source.name))
    try:
        close_interrupted_syncs(session, source.name)
        return _run_locked(
            session, source, full=full, dialect=dialect, batch_size=batch_size, progress=progress
        )
    finally:
        lock.release()


def sync_lock(session: DbSession, source_name: str) -> RunnerLock:
    """Return the lock a sync of `source_name` holds while it runs (see jobs.lock)."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    return lock_for(url, name=f"sync-{source_name}")


def _already_running(session: DbSession, source_name: str) -> str:
    running = session.scalars(
        select(SyncRun)
        .where(SyncRun.source == source_name, SyncRun.status == "running")
        .order_by(SyncRun.started_at.desc())
        .limit(1)
    ).first()
    which = (
        ""
        if running is None
        else f" (sync run {running.id}, started {running.started_at:%Y-%m-%d %H:%M} UTC)"
    )
    return f"A sync from {source_name} is already running{which}; this one did not start."


def close_interrupted_syncs(session: DbSession, source_name: str) -> list[SyncRun]:
    """Mark as failed the runs of the source still "running": with its lock held, none can be, so the
    process running each stopped before it could record how it ended (killed, crashed, cut off)."""
    runs = list(
        session.scalars(select(SyncRun).where(SyncRun.source == source_name, SyncRun.status == "running"))
    )
    for run in runs:
        run.status = "failed"
        run.finished_at = datetime.now(UTC)
        run.message = (
            "Interrupted: the process running this sync stopped before it finished (killed, crashed or "
            "cut off from the database). What it committed stays; the next sync goes on from there."
        )
        logger.warning("sync run %s from %s was interrupted; recorded as failed", run.id, source_name)
    session.commit()
    return runs


def close_abandoned_syncs(session: DbSession) -> list[SyncRun]:
    """Mark as failed every run still "running" whose source's sync lock is free: nothing runs it now.

    A new scheduler leader calls this, so a sync its killed predecessor left "running" is recorded as
    interrupted at once rather than at the next sync of the source (which may be a while, or never when
    the scheduled sync is off). A source whose lock is held has a sync under way and is left alone.
    """
    sources = list(session.scalars(select(SyncRun.source).where(SyncRun.status == "running").distinct()))
    closed: list[SyncRun] = []
    for source_name in sources:
        lock = sync_lock(session, source_name)
        if not lock.acquire():
            continue
        try:
            closed.extend(close_interrupted_syncs(session, source_name))
        finally:
            lock.release()
    return closed


def _run_locked(
    session: DbSession,
    source: Source,
    *,
    full: bool,
    dialect: str,
    batch_size: int,
    progress: Progress | None,
) -> SyncRun:
    run = SyncRun(
        source=source.name,
        full=full,
        status="running",
        started_at=datetime.now(UTC),
        errors=[],
        cursor_before={},
        cursor_after={},
    )
    session.add(run)
    session.commit()
    run_id = run.id
    engine = _Engine(session, source, run, dialect=dialect, batch_size=batch_size, progress=progress)
    try:
        with collecting_less():
            engine.sync_all(full=full)
    except SourceError as error:
        engine.fail(str(error))
        return run
    except BaseException as error:
        try:
            engine.fail(_describe_unexpected(error))
        except Exception:
            # The database itself may be what failed; the original error is the one worth raising.
            logger.exception("could not mark sync run %s as failed", run_id)
        raise
    engine.succeed()
    return run


# Container allocations between two young-generation collections while a sync runs (Python's default: 700).
SYNC_GC_THRESHOLD = 50_000
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def collecting_less() -> Iterator[None]:
    """Let the garbage collector run rarely, and never over what lived before, for the block's duration.

    A sync allocates millions of dicts and records (every decoded page, every row) that all live until
    their batch is written. With Python's defaults the collector runs every 700 of them and walks the
    survivors again and again, the whole heap of the process (app, ORM, caches) included in its full
    collections: measured, a fifth of a big sync's CPU. Here the objects alive at the start are frozen out
    of collections and the young generation is collected every SYNC_GC_THRESHOLD allocations. The sync
    makes almost no reference cycles, so memory barely moves (peak 287 MB instead of 276 MB over the
    1.1M-row benchmark) while its CPU drops by a fifth. Overlapping syncs in one process share the
    setting, and the last to finish restores the thresholds and unfreezes.
    """
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(SYNC_GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()


def _describe_unexpected(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return f"internal error: {type(error).__name__}: {error}"[:1000]


_packer = msgspec.msgpack.Encoder(decimal_format="string")


def content_hash(values: Iterable[Any]) -> str:
    """Digest normalized values so that an unchanged record costs no write.

    The values are packed with msgpack (types kept apart: 1, True and "1" differ; an aware datetime
    packs as its instant), a tenth of what their repr cost.
    """
    return _digest(_packer.encode(tuple(values)))


def same_content(stored: str | None, digest: str, values: Sequence[Any]) -> bool:
    """Whether a stored digest stands for `values`, whose `content_hash` is `digest`.

    Rows stored before 2026-11 carry a digest of the values' repr: those still match, so an upgrade
    does not rewrite (and count as updated) every record a sync brings again. That digest is computed
    only when the current one differs.
    """
    if stored is None:
        return False
    if stored == digest:
        return True
    return stored == _digest(repr(tuple(values)).encode())


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class _Tally:
    """Counts and errors of a run; `checkpoint`/`restore` keep them in step with what was committed.

    `failed` counts records, not errors: a record the engine finds two faults in is one failed record.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, str | None]] = field(default_factory=list)
    # The records counted in `failed` so far, in order (a dict as an ordered set), for `restore`.
    _failed_records: dict[tuple[str, str], None] = field(default_factory=dict)
    _saved: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)

    def add_error(self, error: RecordError, *, whole_record: bool = False) -> None:
        """Keep `error`; count its record as failed unless an earlier error already did. A source's own
        error (`whole_record`) stands for one record it read and dropped, even where an id repeats."""
        if whole_record or error.external_id is None:
            self.failed += 1
        elif (error.stream, error.external_id) not in self._failed_records:
            self._failed_records[(error.stream, error.external_id)] = None
            self.failed += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append(error.as_dict())

    def checkpoint(self) -> None:
        self._saved = (
            self.inserted,
            self.updated,
            self.unchanged,
            self.failed,
            len(self.errors),
            len(self._failed_records),
        )

    def restore(self) -> None:
        self.inserted, self.updated, self.unchanged, self.failed, kept, records = self._saved
        del self.errors[kept:]
        for key in list(self._failed_records)[records:]:
            del self._failed_records[key]

    def write_to(self, run: SyncRun) -> None:
        run.inserted = self.inserted
        run.updated = self.updated
        run.unchanged = self.unchanged
        run.failed = self.failed
        run.errors = list(self.errors)


class _References:
    """Resolve CRM ids of parents (accounts, opportunities, users) to row ids within one source."""

    def __init__(
        self, session: DbSession, source: str, dialect: str, limit: int = REFERENCE_CACHE_SIZE
    ) -> None:
        self._session = session
        self._source = source
        self._dialect = dialect
        self._limit = limit
        self._known: dict[str, dict[str, int]] = {"account": {}, "opportunity": {}, "user": {}}

    def prefetch(self, kind: str, external_ids: Iterable[str | None]) -> None:
        """Look up, in as few queries as possible, the ids of `kind` not cached yet."""
        known = self._known[kind]
        missing = {key for key in external_ids if key is not None and key not in known}
        if not missing:
            return
        for chunk in _chunks(sorted(missing), LOOKUP_CHUNK):
            for external_id, row_id in self._session.execute(self._lookup(kind, chunk)):
                known[external_id] = row_id
        if len(known) > self._limit:
            # Oldest entries first (dicts keep insertion order); they are re-read if needed again.
            for key in list(islice(known, len(known) - self._limit)):
                del known[key]

    def _lookup(self, kind: str, external_ids: Sequence[str]) -> Any:
        if kind == "user":
            table, column = UserIdentity.__table__, UserIdentity.__table__.c.user_id
        else:
            table = Account.__table__ if kind == "account" else Opportunity.__table__
            column = table.c.id
        return stored_rows(self._dialect, table, self._source, external_ids, column)

    def required(self, kind: str, external_id: str, field_name: str, label: str) -> int:
        """Return the row id, or raise `RecordInvalid` naming `field_name` when the parent is unknown."""
        row_id = self._known[kind].get(external_id)
        if row_id is None:
            raise RecordInvalid(field_name, f"unknown {label} {external_id!r}")
        return row_id

    def optional(self, kind: str, external_id: str | None, field_name: str, label: str) -> int | None:
        """Like `required`, but no reference at all is fine."""
        if external_id is None:
            return None
        return self.required(kind, external_id, field_name, label)

    def lenient(self, kind: str, external_id: str | None) -> int | None:
        """Return the row id, or None when the reference is missing or unknown."""
        if external_id is None:
            return None
        return self._known[kind].get(external_id)


class _Engine:
    """One run of one source: the streams, the batches, and the run's bookkeeping."""

    def __init__(
        self,
        session: DbSession,
        source: Source,
        run: SyncRun,
        *,
        dialect: str,
        batch_size: int,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.source = source
        self.run = run
        self.batch_size = batch_size
        self.progress = progress
        self.tally = _Tally()
        self.references = _References(session, source.name, dialect)
        self.cursors: dict[str, str | None] = {}
        self.now = datetime.now(UTC)
        self.dialect = dialect
        self._upserts: dict[str, _BulkRows] = {}
        # Emails of users whose latest record left the role to us: they become managers if they manage.
        self._users_without_role: set[str] = set()
        # CRM ids of the users read in this run: only their records may clear a manager or report errors.
        self._users_seen: set[str] = set()
        # Users who were managers with no one above them (the VP) before this run's records changed them.
        self._users_at_top: set[int] = set()
        # Emails of users whose record in this run says they are reps: they may not be anyone's manager.
        self._users_made_reps: set[str] = set()
        # "<strategy's CRM id> <field>" of each field changed both in StratLink and in the import: kept.
        self._kept_local: list[str] = []

    # The run -------------------------------------------------------------------------------------

    def sync_all(self, *, full: bool) -> None:
        stored = {
            cursor.stream: cursor.value
            for cursor in self.session.scalars(
                select(SyncCursor).where(SyncCursor.source == self.source.name)
            )
        }
        self.cursors = dict(stored)
        self.run.cursor_before = dict(stored)
        self.run.cursor_after = dict(stored)
        self.session.commit()
        # An earlier first load killed before it rebuilt the activity indexes leaves them missing.
        restore_deferred(self.session, Activity.__table__)
        for stream in self.source.streams():
            handler = self._handler(stream)
            cursor = None if full else stored.get(stream)
            with self._first_load(stream):
                for batch in self.source.read(stream, cursor, full=full):
                    self._write_batch(stream, batch, handler)
            if stream == "users":
                self._finish_users()

    @contextmanager
    def _first_load(self, stream: str) -> Iterator[None]:
        """Load activities into an empty table without their secondary indexes, then build those at once.

        A CRM hands over activities in no useful order for our indexes (by account, by time), so each
        row of a first full load would update several b-trees at random places: on a million rows that
        is most of the sync. Building them after the load sorts each once. On PostgreSQL the foreign
        keys wait too: checked row by row they cost as much as the inserts themselves, while adding them
        back checks every row in one join. Only when the table holds no activity at all, so no reader
        loses an index it had; indexes and keys come back when the stream ends, fails or is
        interrupted, and at the start of the next run after a kill. The engine resolves every reference
        before it writes a row, so the keys find nothing to refuse.
        """
        table = Activity.__table__
        if stream != "activities" or self.session.scalar(select(Activity.id).limit(1)) is not None:
            yield
            return
        connection = self.session.connection()
        for index in table.indexes:
            if not index.unique:
                index.drop(connection, checkfirst=True)
        present, _ = _foreign_keys(connection, table)
        for constraint in present:
            connection.execute(DropConstraint(constraint))
        self.session.commit()
        try:
            yield
        except BaseException:
            # What was not committed is dropped either way (see `fail`); indexes and keys must come back,
            # and if even that fails, the error that stopped the load is the one to report.
            self.session.rollback()
            try:
                restore_deferred(self.session, table)
            except Exception:
                logger.exception("could not rebuild the activity indexes and keys; the next sync will")
            raise
        restore_deferred(self.session, table)

    def succeed(self) -> None:
        self._finish("partial" if self.tally.failed else "succeeded", self._notes())

    def fail(self, message: str) -> None:
        self.session.rollback()
        self.tally.restore()
        self._finish("failed", message)

    def _finish(self, status: str, message: str | None) -> None:
        self.tally.write_to(self.run)
        self.run.status = status
        self.run.message = message
        self.run.finished_at = datetime.now(UTC)
        self.run.cursor_after = dict(self.cursors)
        report = getattr(self.source, "report", None)
        self.run.api_usage = getattr(report, "api_usage", None)
        self.session.commit()

    def _notes(self) -> str | None:
        report = getattr(self.source, "report", None)
        notes = list(getattr(report, "notes", None) or [])
        if self._kept_local:
            shown = ", ".join(self._kept_local[:KEPT_LOCAL_SHOWN])
            more = len(self._kept_local) - KEPT_LOCAL_SHOWN
            notes.append(
                f"strategies: kept {len(self._kept_local)} field(s) edited in StratLink that the import also"
                f" changed ({shown}{f' and {more} more' if more > 0 else ''})"
            )
        return "; ".join(notes)[:2000] or None

    def _handler(self, stream: str) -> Callable[[str, Sequence[Record]], None]:
        handlers: dict[str, Callable[[str, Sequence[Record]], None]] = {
            "users": self._write_users,
            "accounts": self._write_accounts,
            "opportunities": self._write_opportunities,
            "activities": self._write_activities,
            "strategies": self._write_strategies,
        }
        if stream not in handlers:
            raise ValueError(f"source {self.source.name!r} yields an unknown stream {stream!r}")
        return handlers[stream]

    def _write_batch(
        self, stream: str, batch: Batch, handler: Callable[[str, Sequence[Record]], None]
    ) -> None:
        """Write one source batch in chunks of at most batch_size rows; its cursor goes with the last."""
        records = batch.records
        starts = list(range(0, len(records), self.batch_size)) or [0]
        for number, start in enumerate(starts):
            chunk = records[start : start + self.batch_size]
            handled = len(chunk)
            if number == 0:
                for error in batch.errors:
                    self.tally.add_error(error, whole_record=True)
                handled += len(batch.errors)
            if chunk:
                handler(stream, chunk)
            last = number == len(starts) - 1
            self._commit(stream, batch.cursor if last else None)
            if self.progress is not None:
                self.progress(stream, handled)

    def _commit(self, stream: str | None = None, cursor: str | None = None) -> None:
        """Commit the open batch, with the stream's new cursor in the same transaction when there is one."""
        cursors = dict(self.cursors)
        if stream is not None and cursor is not None:
            self._store_cursor(stream, cursor)
            cursors[stream] = cursor
        self.tally.write_to(self.run)
        self.run.cursor_after = cursors
        self.session.commit()
        self.cursors = cursors
        self.tally.checkpoint()

    def _store_cursor(self, stream: str, value: str) -> None:
        table: Any = SyncCursor.__table__
        statement = upsert_insert(self.dialect, table).values(
            source=self.source.name, stream=stream, value=value, updated_at=self.now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.source, table.c.stream],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        self.session.execute(statement)

    def _error(self, stream: str, external_id: str | None, field_name: str | None, message: str) -> None:
        self.tally.add_error(RecordError(stream, external_id, field_name, message))

    def _valid(self, stream: str, records: Sequence[Record], kind: type[_Item]) -> list[_Item]:
        """Keep the records that are of the stream's type and pass `validate`; report the others."""
        kept: list[_Item] = []
        for record in records:
            external_id = getattr(record, "external_id", None)
            if not isinstance(record, kind):
                self._error(
                    stream, external_id, None, f"expected a {kind.__name__}, got {type(record).__name__}"
                )
                continue
            try:
                if not isinstance(external_id, str):
                    raise RecordInvalid("id", f"must be a string, got {external_id!r}")
                validate(record)
                if len(external_id) > 64:
                    raise RecordInvalid("id", "is longer than 64 characters")
            except RecordInvalid as error:
                self._error(stream, external_id, error.field, error.message)
                continue
            kept.append(record)
        return kept

    # Synced tables: accounts, opportunities, activities ------------------------------------------

    def _write_accounts(self, stream: str, records: Sequence[Record]) -> None:
        accounts = self._valid(stream, records, AccountRecord)
        self.references.prefetch("user", (record.owner_external_id for record in accounts))
        self._upsert_synced(stream, Account.__table__, accounts, self._account_row)

    def _account_row(self, record: AccountRecord) -> dict[str, Any]:
        references = self.references
        return {
            "name": _text(record.name, 255),
            "owner_id": references.optional("user", record.owner_external_id, "owner_id", "owner"),
            "industry": _text(record.industry, 100),
            "annual_revenue": _money(record.annual_revenue, "annual_revenue"),
            "url": _url(record.url),
            "deleted": record.deleted,
        }

    def _write_opportunities(self, stream: str, records: Sequence[Record]) -> None:
        opportunities = self._valid(stream, records, OpportunityRecord)
        self.references.prefetch("account", (record.account_external_id for record in opportunities))
        self.references.prefetch("user", (record.owner_external_id for record in opportunities))
        self._upsert_synced(stream, Opportunity.__table__, opportunities, self._opportunity_row)

    def _opportunity_row(self, record: OpportunityRecord) -> dict[str, Any]:
        references = self.references
        return {
            "account_id": references.required("account", record.account_external_id, "account_id", "account"),
            "owner_id": references.optional("user", record.owner_external_id, "owner_id", "owner"),
            "name": _text(record.name, 255),
            "stage": _text(record.stage, 100),
            "amount": _money(record.amount, "amount"),
            "close_date": record.close_date,
            "is_closed": record.is_closed,
            "is_won": record.is_won,
            "url": _url(record.url),
            "deleted": record.deleted,
        }

    def _write_activities(self, stream: str, records: Sequence[Record]) -> None:
        activities = self._valid(stream, records, ActivityRecord)
        references = self.references
        references.prefetch("account", (record.account_external_id for record in activities))
        references.prefetch("user", (record.owner_external_id for record in activities))
        references.prefetch("opportunity", (record.opportunity_external_id for record in activities))
        self._upsert_synced(stream, Activity.__table__, activities, self._activity_row)

    def _activity_row(self, record: ActivityRecord) -> dict[str, Any]:
        references = self.references
        return {
            "account_id": references.required("account", record.account_external_id, "account_id", "account"),
            "owner_id": references.optional("user", record.owner_external_id, "owner_id", "owner"),
            # An activity may point at a deal we never sync (closed long ago, another pipeline): no error.
            "opportunity_id": references.lenient("opportunity", record.opportunity_external_id),
            "kind": record.kind,
            "direction": record.direction,
            "occurred_at": _utc(record.occurred_at),
            "subject": _text(record.subject, 500),
            "url": _url(record.url),
            "deleted": record.deleted,
        }

    def _upsert_synced(
        self,
        stream: str,
        table: Any,
        records: Sequence[Any],
        build: Callable[[Any], dict[str, Any]],
    ) -> None:
        """Classify the records against what is stored, then write the new and changed ones at once."""
        candidates: dict[str, tuple[dict[str, Any], datetime | None]] = {}
        for record in records:
            try:
                row = build(record)
            except RecordInvalid as error:
                self._error(stream, record.external_id, error.field, error.message)
                continue
            modified_at = _utc(record.modified_at) if record.modified_at is not None else None
            earlier = candidates.get(record.external_id)
            if earlier is not None:
                # The same record twice in one batch: one statement cannot touch a row twice on PostgreSQL.
                self.tally.unchanged += 1
                if _older(modified_at, earlier[1]):
                    continue
            candidates[record.external_id] = (row, modified_at)
        if not candidates:
            return

        stored: dict[str, tuple[str | None, datetime | None]] = {}
        columns = (table.c.content_hash, table.c.crm_modified_at)
        for chunk in _chunks(list(candidates), LOOKUP_CHUNK):
            statement = stored_rows(self.dialect, table, self.source.name, chunk, *columns)
            for external_id, digest, modified_at in self.session.execute(statement):
                stored[external_id] = (digest, modified_at)

        source = self.source.name
        now = self.now
        writes: list[dict[str, Any]] = []
        for external_id, (row, modified_at) in candidates.items():
            values = tuple(row.values())
            digest = content_hash(values)
            previous = stored.get(external_id)
            if previous is None:
                self.tally.inserted += 1
            elif _older(modified_at, previous[1]) or same_content(previous[0], digest, values):
                # Same content, or an out-of-order older version: the stored row stays as it is.
                self.tally.unchanged += 1
                continue
            else:
                self.tally.updated += 1
            row["source"] = source
            row["external_id"] = external_id
            row["content_hash"] = digest
            row["crm_modified_at"] = modified_at
            row["synced_at"] = now
            writes.append(row)
        if writes:
            self._upsert(table, writes[0].keys()).execute(self.session, writes)

    def _upsert(self, table: Any, columns: Iterable[str]) -> _BulkRows:
        """Build (once per table) the dialect upsert that never lets an older version overwrite a newer."""
        statement = self._upserts.get(table.name)
        if statement is None:
            # A batch's commit need not wait for the disk: a database crash right after it loses the
            # batch and its cursor together, so the next run reads those records again.
            statement = bulk_upsert(self.session.get_bind().dialect, table, columns, durable=False)
            self._upserts[table.name] = statement
        return statement

    # Users ---------------------------------------------------------------------------------------

    def _write_users(self, stream: str, records: Sequence[Record]) -> None:
        users = self._valid(stream, records, UserRecord)
        latest: dict[str, UserRecord] = {}
        for record in users:
            earlier = latest.get(record.external_id)
            if earlier is not None:
                self.tally.unchanged += 1
                if _older(record.modified_at, earlier.modified_at):
                    continue
            latest[record.external_id] = record
        if not latest:
            return
        session = self.session
        identities = {
            identity.external_id: identity
            for identity in session.scalars(
                select(UserIdentity).where(
                    UserIdentity.source == self.source.name, UserIdentity.external_id.in_(list(latest))
                )
            )
        }
        emails = {record.email.strip().lower() for record in latest.values()}
        by_email = {
            user.email.lower(): user
            for user in session.scalars(select(User).where(func.lower(User.email).in_(emails)))
        }
        for record in latest.values():
            self._write_user(stream, record, identities.get(record.external_id), by_email)
        session.flush()

    def _write_user(
        self, stream: str, record: UserRecord, identity: UserIdentity | None, by_email: dict[str, User]
    ) -> None:
        email = record.email.strip().lower()
        name = _text(record.name, 200) or ""
        values = (email, name, record.role, record.manager_external_id, record.active)
        digest = content_hash(values)
        modified_at = _utc(record.modified_at) if record.modified_at is not None else None
        if len(email) > 320:
            self._error(stream, record.external_id, "email", "is longer than 320 characters")
            return
        if record.role == Role.REP:
            self._users_made_reps.add(email)
        if identity is not None:
            self._users_seen.add(record.external_id)
            if identity.user.role == Role.MANAGER and identity.user.manager_id is None:
                self._users_at_top.add(identity.user_id)
            unchanged = same_content(identity.content_hash, digest, values)
            if unchanged or _older(modified_at, identity.crm_modified_at):
                if unchanged and record.role is None:
                    self._users_without_role.add(identity.user.email.lower())
                self.tally.unchanged += 1
                return
            user = identity.user
            if user.email != email:
                holder = by_email.get(email)
                if holder is not None and holder is not user:
                    self._error(
                        stream, record.external_id, "email", f"{email!r} already belongs to another user"
                    )
                    return
                user.email = email
                by_email[email] = user
            self.tally.updated += 1
        else:
            found = by_email.get(email)
            if found is not None:
                conflict = self._conflicting_identity(found, record)
                if conflict is not None:
                    self._error(
                        stream,
                        record.external_id,
                        "email",
                        f"{email!r} is already {conflict}'s, with another role or manager",
                    )
                    return
            if found is None:
                found = User(email=email, name=name, role=Role(record.role or Role.REP), active=record.active)
                self.session.add(found)
                by_email[email] = found
            user = found
            identity = UserIdentity(user=user, source=self.source.name, external_id=record.external_id)
            self.session.add(identity)
            self._users_seen.add(record.external_id)
            self.tally.inserted += 1
        user.name = name
        if record.role is not None and user.role != Role.ADMIN:
            user.role = Role(record.role)
        if user.role != Role.ADMIN:
            # A CRM deactivation means the person left; an admin keeps access to fix things.
            user.active = record.active
        identity.manager_external_id = record.manager_external_id
        identity.content_hash = digest
        identity.crm_modified_at = modified_at
        identity.synced_at = self.now
        if record.role is None:
            self._users_without_role.add(email)
        else:
            self._users_without_role.discard(email)

    def _conflicting_identity(self, user: User, record: UserRecord) -> str | None:
        """Return the CRM id of another record of this source that is `user` but disagrees with `record`.

        Two CRM users with one email are one StratLink user (a person with two logins); but when they
        disagree on role or manager, merging them would let the later one silently make a manager
        someone's rep, or move them to another team.
        """
        for identity in user.identities:
            if identity.source != self.source.name or identity.external_id == record.external_id:
                continue
            other_role = (
                record.role is not None and user.role != Role.ADMIN and Role(record.role) != user.role
            )
            if other_role or identity.manager_external_id != record.manager_external_id:
                return identity.external_id
        return None

    def _finish_users(self) -> None:
        """Set each user's manager from the CRM ids, then make managers of role-less users who manage.

        A manager_id that names no user, the user themselves, or someone the record made a rep is
        reported and not applied. A manager left with none above them that way would read as the VP
        and see every account: unless they were at the top before this run, they are kept from signing
        in until a record names their manager, and their record is applied again on the next sync.
        """
        session = self.session
        identities = list(
            session.scalars(select(UserIdentity).where(UserIdentity.source == self.source.name))
        )
        user_of = {identity.external_id: identity.user_id for identity in identities}
        users = {
            user.id: user for user in session.scalars(select(User).where(User.id.in_(set(user_of.values()))))
        }
        refused: list[tuple[UserIdentity, str]] = []
        for identity in identities:
            seen = identity.external_id in self._users_seen
            manager_external_id = identity.manager_external_id
            user = users[identity.user_id]
            if manager_external_id is None:
                # Only a record read in this run may clear a manager; others keep what they have.
                if seen:
                    user.manager_id = None
                continue
            manager_id = user_of.get(manager_external_id)
            problem = self._manager_problem(user, manager_external_id, users.get(manager_id or 0))
            if problem is not None:
                if seen:
                    refused.append((identity, problem))
                continue
            user.manager_id = manager_id
        managing = {user.manager_id for user in users.values() if user.manager_id is not None}
        for user in users.values():
            if (
                user.id in managing
                and user.role == Role.REP
                and user.email.lower() in self._users_without_role
            ):
                user.role = Role.MANAGER
        for identity, problem in refused:
            user = users[identity.user_id]
            if user.role == Role.MANAGER and user.manager_id is None and user.id not in self._users_at_top:
                user.active = False
                problem += (
                    "; imported without sign-in until a record names their manager, since a manager"
                    " with no one above them sees every account, as the VP"
                )
            identity.content_hash = None  # applied again next time, whatever it then says
            self._error("users", identity.external_id, "manager_id", problem)
        for identity, loop in self._manager_loops(identities, users):
            self._error("users", identity.external_id, "manager_id", f"managers in a loop: {loop}")
        self._commit()

    def _manager_problem(self, user: User, manager_external_id: str, manager: User | None) -> str | None:
        """Say why `user` may not report to the user with CRM id `manager_external_id`, if they may not."""
        if manager is None:
            return f"unknown manager {manager_external_id!r}"
        if manager is user:
            return "a user cannot be their own manager"
        if manager.role == Role.REP and manager.email.lower() in self._users_made_reps:
            return f"{manager_external_id!r} is a rep: a manager must be a manager or an admin"
        return None

    def _manager_loops(
        self, identities: Sequence[UserIdentity], users: Mapping[int, User]
    ) -> list[tuple[UserIdentity, str]]:
        """Find the users read in this run who are their own manager's manager, at any depth.

        Each comes with the loop in CRM ids ("C1 → C2 → C1"). Nobody in a loop is at its top, so a loop
        gives no one the VP's view; it is reported so that the file or the CRM gets fixed.
        """
        external_of = {identity.user_id: identity.external_id for identity in identities}
        found: list[tuple[UserIdentity, str]] = []
        for identity in identities:
            if identity.external_id not in self._users_seen:
                continue
            chain = [identity.user_id]
            manager_id = users[identity.user_id].manager_id
            while manager_id is not None and manager_id not in chain:
                chain.append(manager_id)
                manager = users.get(manager_id)
                manager_id = manager.manager_id if manager is not None else None
            if manager_id == identity.user_id:
                names = [
                    external_of.get(user_id, f"user {user_id}") for user_id in [*chain, identity.user_id]
                ]
                found.append((identity, " → ".join(names)))
        return found

    # Strategies (import files and the demo only; CRMs do not hold them) --------------------------

    def _write_strategies(self, stream: str, records: Sequence[Record]) -> None:
        """Create new strategies; apply to existing ones only what changed in the import since its last.

        A re-import is a three-way update against the strategy's `last_import`: see `_update_strategy`
        for the fields and `_apply_links` for the links. A record equal to its last import touches
        nothing, whatever people did to the strategy since.
        """
        strategies = self._valid(stream, records, StrategyRecord)
        latest = {record.external_id: record for record in strategies}
        self.tally.unchanged += len(strategies) - len(latest)
        if not latest:
            return
        session = self.session
        source = self.source.name
        self.references.prefetch("account", (record.account_external_id for record in latest.values()))
        self.references.prefetch("user", (record.author_external_id for record in latest.values()))
        existing = {
            strategy.external_id: strategy
            for strategy in session.scalars(
                select(Strategy).where(Strategy.source == source, Strategy.external_id.in_(list(latest)))
            )
        }
        current_links: dict[int, dict[int, Link]] = {strategy.id: {} for strategy in existing.values()}
        if current_links:
            for found in session.scalars(select(Link).where(Link.strategy_id.in_(list(current_links)))):
                current_links[found.strategy_id][found.activity_id] = found
        # The activities the records list, and those their last imports listed (which may be unlinked).
        activity_ids = {key for record in latest.values() for key in record.activity_external_ids}
        for stored in existing.values():
            activity_ids.update((stored.last_import or {}).get("activity_ids", ()))
        activities: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(sorted(activity_ids), LOOKUP_CHUNK):
            statement = stored_rows(
                self.dialect, Activity.__table__, source, chunk, Activity.id, Activity.account_id
            )
            for external_id, activity_id, account_id in session.execute(statement):
                activities[external_id] = (activity_id, account_id)
        serving: dict[int, int] = {}
        found_ids = [activity_id for activity_id, _ in activities.values()]
        for id_chunk in _chunks(found_ids, LOOKUP_CHUNK):
            statement = select(Link.activity_id, Link.strategy_id).where(Link.activity_id.in_(id_chunk))
            serving.update(
                {activity_id: strategy_id for activity_id, strategy_id in session.execute(statement)}
            )
        links = _LinkIndex(activities, serving, current_links)
        for record in latest.values():
            try:
                account_id = self.references.required(
                    "account", record.account_external_id, "account_id", "account"
                )
                author_id = self.references.optional("user", record.author_external_id, "author_id", "author")
            except RecordInvalid as error:
                self._error(stream, record.external_id, error.field, error.message)
                continue
            incoming = _imported(record)
            strategy = existing.get(record.external_id)
            if strategy is None:
                if self._lacks_substance(stream, record, _strategy_values(record)):
                    continue
                strategy = self._create_strategy(record, account_id, author_id)
                _, remembered = self._apply_links(stream, record, strategy, links, before=[])
                strategy.last_import = {**incoming, "activity_ids": remembered}
                self.tally.inserted += 1
                continue
            if strategy.last_import == incoming:
                self.tally.unchanged += 1
                continue
            before = strategy.last_import or _assumed_last_import(strategy, incoming)
            changed = self._update_strategy(record, strategy, account_id, author_id, incoming, before, stream)
            if changed is None:
                continue
            relinked, remembered = self._apply_links(
                stream, record, strategy, links, before=before["activity_ids"]
            )
            strategy.last_import = {**incoming, "activity_ids": remembered}
            if changed or relinked:
                self.tally.updated += 1
            else:
                self.tally.unchanged += 1
        session.flush()

    def _create_strategy(self, record: StrategyRecord, account_id: int, author_id: int | None) -> Strategy:
        """Add a version-1 strategy and its first revision, listing every field the record sets."""
        strategy = Strategy(
            source=self.source.name,
            external_id=record.external_id,
            account_id=account_id,
            author_id=author_id,
            version=1,
            created_at=self.now,
            updated_at=self.now,
            **_strategy_values(record),
        )
        self.session.add(strategy)
        self.session.flush()
        snapshot = strategy_snapshot(strategy)
        fields_set = [name for name in STRATEGY_FIELDS if snapshot[name] not in (None, "")]
        self._add_revision(strategy, fields_set, snapshot, author_id)
        return strategy

    def _update_strategy(
        self,
        record: StrategyRecord,
        strategy: Strategy,
        account_id: int,
        author_id: int | None,
        incoming: dict[str, Any],
        before: dict[str, Any],
        stream: str,
    ) -> bool | None:
        """Apply the fields whose value in the import changed since `before`; return whether any did, or
        None when the result would lack what an active or achieved strategy needs (reported; no change).

        A field whose import value is the same as last time is left as people left it. A field the
        import changed takes the new value when the strategy still holds the import's previous one;
        when people changed it too, their value stays and the run's notes name the field. Applied
        changes make a new version whose revision has no author: the import wrote it, not a person.
        The account and the author follow the record (people cannot change them in StratLink).
        """
        stored = strategy_snapshot(strategy)
        changed = []
        kept_local = []
        for name in IMPORTED_FIELDS:
            if incoming[name] == before[name] or incoming[name] == stored[name]:
                continue
            if stored[name] == before[name]:
                changed.append(name)
            else:
                kept_local.append(f"{record.external_id} {name}")
        values = _strategy_values(record)
        if self._lacks_substance(
            stream, record, {**current_values(strategy), **{name: values[name] for name in changed}}
        ):
            return None
        self._kept_local.extend(kept_local)
        moved = strategy.account_id != account_id or strategy.author_id != author_id
        strategy.account_id = account_id
        strategy.author_id = author_id
        if changed:
            for name in changed:
                setattr(strategy, name, values[name])
            strategy.version += 1
            strategy.updated_at = self.now
            self._add_revision(strategy, changed, strategy_snapshot(strategy), None)
        return bool(changed) or moved

    def _lacks_substance(self, stream: str, record: StrategyRecord, values: Mapping[str, Any]) -> bool:
        """Report and tell whether the strategy a record would leave is active or achieved without what the
        editor requires of one (an objective, an approach, an active one's review date): such a strategy
        would cover its activities in the review and never come up for review itself."""
        problems = activation_errors(values)
        if problems:  # one error for the one record skipped, naming every field
            self._error(stream, record.external_id, ", ".join(problems), " ".join(problems.values()))
        return bool(problems)

    def _add_revision(
        self, strategy: Strategy, changed: list[str], snapshot: dict[str, Any], author_id: int | None
    ) -> None:
        self.session.add(
            StrategyRevision(
                strategy_id=strategy.id,
                version=strategy.version,
                author_id=author_id,
                created_at=self.now,
                changed_fields=changed,
                snapshot=snapshot,
            )
        )

    def _apply_links(
        self, stream: str, record: StrategyRecord, strategy: Strategy, links: _LinkIndex, *, before: list[str]
    ) -> tuple[bool, list[str]]:
        """Apply what changed in the record's activity_ids since `before`, the last import's.

        Link the activities the record lists and `before` did not; unlink those `before` listed and the
        record no longer does, if the strategy still holds them. Every other link stays as people left it.

        Return whether any link changed, and the activity ids to remember as imported: all the record
        lists except those that could not be linked for want of the activity (unknown, or on another
        account), so those are tried, and reported, again next time. An activity that already serves
        another strategy stays there: reported once, not on every sync.
        """
        listed = list(dict.fromkeys(record.activity_external_ids))
        remembered = set(listed)
        before_set = set(before)
        current = links.current.setdefault(strategy.id, {})
        dropped = []
        for activity_external_id in sorted(before_set - remembered):
            found = links.activities.get(activity_external_id)
            if found is not None and found[0] in current:
                dropped.append(found[0])
        for activity_id in dropped:
            self.session.delete(current.pop(activity_id))
            links.serving.pop(activity_id, None)
        if dropped:
            # Deletes must reach the database before another strategy may take these activities.
            self.session.flush()
        added = []
        for activity_external_id in listed:
            if activity_external_id in before_set:
                continue
            found = links.activities.get(activity_external_id)
            if found is None:
                message = f"unknown activity {activity_external_id!r}"
                remembered.discard(activity_external_id)
            elif found[1] != strategy.account_id:
                message = f"activity {activity_external_id!r} belongs to another account"
                remembered.discard(activity_external_id)
            elif links.serving.get(found[0], strategy.id) != strategy.id:
                message = f"activity {activity_external_id!r} already serves another strategy"
            else:
                if found[0] not in current:
                    added.append(found[0])
                continue
            self._error(stream, record.external_id, "activity_ids", message)
        for activity_id in added:
            new_link = Link(
                activity_id=activity_id,
                strategy_id=strategy.id,
                created_by_id=None,  # made by the import, not by a person
                created_at=self.now,
            )
            self.session.add(new_link)
            current[activity_id] = new_link
            links.serving[activity_id] = strategy.id
        return bool(dropped or added), sorted(remembered)


@dataclass
class _LinkIndex:
    """What one chunk of strategies needs to know about activities and their links."""

    activities: dict[str, tuple[int, int]]  # CRM id -> (activity id, account id)
    serving: dict[int, int]  # activity id -> the strategy it serves
    current: dict[int, dict[int, Link]]  # strategy id -> its links by activity id


# The strategy fields an import writes (the opportunity is chosen in StratLink only).
IMPORTED_FIELDS = tuple(name for name in STRATEGY_FIELDS if name != "opportunity_id")


def _strategy_values(record: StrategyRecord) -> dict[str, Any]:
    return {
        "objective": record.objective,
        "customer_view": record.customer_view,
        "approach": record.approach,
        "success_measure": record.success_measure,
        "target_date": record.target_date,
        "review_date": record.review_date,
        "status": StrategyStatus(record.status),
    }


def _imported(record: StrategyRecord) -> dict[str, Any]:
    """The record as a strategy's `last_import` keeps it: JSON values, the activity ids sorted."""
    snapshot = strategy_snapshot(_strategy_values(record))
    return {
        **{name: snapshot[name] for name in IMPORTED_FIELDS},
        "account_id": record.account_external_id,
        "author_id": record.author_external_id,
        "activity_ids": sorted(set(record.activity_external_ids)),
    }


def _assumed_last_import(strategy: Strategy, incoming: dict[str, Any]) -> dict[str, Any]:
    """What to take as the last import of a strategy imported before migration 0009 kept it.

    Links do not say whether the import or a person made them, so the record's activity_ids are taken
    as the last import's: no link changes. At version 1 nobody has saved the strategy since the import
    created it, so its fields are that import's and the record's changes apply. At a later version a
    person may have edited any field (earlier re-imports' versions look the same), so the record is
    taken as the last import and every stored value stays.
    """
    if strategy.version != 1:
        return dict(incoming)
    stored = strategy_snapshot(strategy)
    return {**incoming, **{name: stored[name] for name in IMPORTED_FIELDS}}


class _BulkRows:
    """Rows written many at a time to one table: their columns, and the values' conversions.

    `session.execute(statement, rows)` builds a parameter dict per row and converts every value through
    its type in Python, which costs a big sync more than the database does. The writers below convert
    only the columns whose type needs it on this database (dates on SQLite, say), in one pass. The rows
    must all carry the same keys as `columns`; their values are converted in place.
    """

    def __init__(self, table: Any, columns: Iterable[str], dialect: Any) -> None:
        self.names = list(columns)
        self.converted = [
            (name, converter)
            for name in self.names
            if (converter := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def _parameters(
        self, rows: Sequence[dict[str, Any]], values: Callable[[dict[str, Any]], tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """Convert the rows' values in place and return each row's `values` (a tuple)."""
        count = len(self.names)
        try:
            if any(len(row) != count for row in rows):
                raise KeyError(count)
            for name, converter in self.converted:
                # A value shared by consecutive rows (the sync time, say) is converted once.
                last: Any = None
                converted: Any = None
                for row in rows:
                    value = row[name]
                    if value is not None:
                        if value is not last:
                            last, converted = value, converter(value)
                        row[name] = converted
            return list(map(values, rows))
        except KeyError:
            raise ValueError("every row of a bulk statement must carry the same columns") from None

    def execute(self, session: DbSession, rows: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError


class BulkStatement(_BulkRows):
    """A statement compiled once and executed with many rows through the driver's executemany."""

    def __init__(self, statement: Any, table: Any, columns: Iterable[str], dialect: Any) -> None:
        super().__init__(table, columns, dialect)
        compiled = statement.compile(dialect=dialect, column_keys=self.names)
        if not compiled.positional:  # SQLite's driver is; PostgreSQL takes the StagedUpsert instead
            raise NotImplementedError(f"{dialect.name}: bulk statements need positional parameters")
        self.sql = str(compiled)
        self.ordered = _tuple_getter(list(compiled.positiontup))  # a row's parameters in statement order

    def execute(self, session: DbSession, rows: Sequence[dict[str, Any]]) -> None:
        """Execute the statement once per row (the driver's executemany), all in the session's transaction."""
        session.connection().exec_driver_sql(self.sql, self._parameters(rows, self.ordered))


class StagedUpsert(_BulkRows):
    """The upsert on PostgreSQL: COPY the rows into a temporary table, then one INSERT ... SELECT.

    Executing an upsert once per row costs PostgreSQL a round of bind and execute for each; COPY streams
    the batch in one go and the server then upserts it as one statement, with the same ON CONFLICT rule.
    The staging table lives as long as the database connection and is emptied after each batch (and at
    every commit). Each batch takes three round trips: create-if-missing, COPY, upsert-and-empty. With
    `durable=False` the transaction's commit does not wait for its WAL to reach the disk
    (`synchronous_commit` off for that transaction only): a database crash may lose the last commits,
    never corrupt anything.
    """

    def __init__(self, table: Any, columns: Iterable[str], dialect: Any, *, durable: bool = True) -> None:
        super().__init__(table, columns, dialect)
        quote = dialect.identifier_preparer.quote
        # One staging table per column list: a connection outlives this object and may meet another.
        digest = hashlib.blake2b(",".join(self.names).encode(), digest_size=4).hexdigest()
        stage_name = f"stratlink_stage_{table.name}_{digest}"
        stage = sa_table(stage_name, *(sa_column(name) for name in self.names))
        # Only our own table and column names, quoted, go into these two statements: no outside input.
        listed = ", ".join(quote(name) for name in self.names)
        relaxed = "" if durable else "SET LOCAL synchronous_commit TO OFF; "
        self.create_sql = (
            f"{relaxed}CREATE TEMPORARY TABLE IF NOT EXISTS {quote(stage_name)} ON COMMIT DELETE ROWS "  # noqa: S608
            f"AS SELECT {listed} FROM {quote(table.name)} WITH NO DATA"
        )
        self.copy_sql = f"COPY {quote(stage_name)} ({listed}) FROM STDIN"
        self.values = _tuple_getter(self.names)  # a row's values in column order
        statement = upsert_statement("postgresql", table, rows=(self.names, select(*stage.c)))
        # Several statements in one text go out in one round trip (no parameters: the simple protocol).
        self.upsert_sql = f"{statement.compile(dialect=dialect)}; {delete(stage).compile(dialect=dialect)}"

    def execute(self, session: DbSession, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert `rows` in the session's transaction."""
        parameters = self._parameters(rows, self.values)
        connection = session.connection()
        connection.exec_driver_sql(self.create_sql, execution_options=_NO_PARAMETERS)
        raw: Any = connection.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(self.copy_sql) as copy:
            for values in parameters:
                copy.write_row(values)
        connection.exec_driver_sql(self.upsert_sql, execution_options=_NO_PARAMETERS)


_NO_PARAMETERS = {"no_parameters": True}


def _tuple_getter(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Return a function giving a row's values for `names` as a tuple (one C call per row)."""
    getter = itemgetter(*names)
    if len(names) == 1:
        return lambda row: (getter(row),)
    return getter


def bulk_upsert(dialect: Any, table: Any, columns: Iterable[str], *, durable: bool = True) -> _BulkRows:
    """Return the fastest way this database has to run `upsert_statement` over many rows.

    `durable=False` lets PostgreSQL commit without waiting for the disk (SQLite runs with
    synchronous=NORMAL anyway).
    """
    if dialect.name == "postgresql":
        return StagedUpsert(table, columns, dialect, durable=durable)
    return BulkStatement(upsert_statement(dialect.name, table), table, columns, dialect)


def restore_deferred(session: DbSession, table: Any) -> None:
    """Create the table's declared indexes, and on PostgreSQL its foreign keys, missing from the database.

    Commits. Adding a foreign key back checks all rows at once.
    """
    connection = session.connection()
    for index in table.indexes:
        index.create(connection, checkfirst=True)
    _, missing = _foreign_keys(connection, table)
    for constraint in missing:
        connection.execute(AddConstraint(constraint))
    session.commit()


def _foreign_keys(connection: Any, table: Any) -> tuple[list[Any], list[Any]]:
    """The table's declared foreign keys the database has, and those it lacks, in name order.

    Only on PostgreSQL, where they can be dropped and added back: SQLite keeps foreign keys inside the
    table's definition (and does not enforce them unless asked), so there both lists are empty.
    """
    if connection.dialect.name != "postgresql":
        return [], []
    names = {key["name"] for key in inspect(connection).get_foreign_keys(table.name)}
    declared = sorted(table.foreign_key_constraints, key=lambda constraint: str(constraint.name))
    present = [constraint for constraint in declared if constraint.name in names]
    return present, [constraint for constraint in declared if constraint.name not in names]


def upsert_statement(dialect: str, table: Any, *, rows: tuple[list[str], Any] | None = None) -> Any:
    """`INSERT ... ON CONFLICT (source, external_id) DO UPDATE` unless the stored row is newer.

    With `rows` (column names and a SELECT), the rows come from that query instead of parameters.
    """
    statement = upsert_insert(dialect, table)
    if rows is not None:
        statement = statement.from_select(*rows)
    excluded = statement.excluded
    keys = {"id", "source", "external_id"}
    return statement.on_conflict_do_update(
        index_elements=[table.c.source, table.c.external_id],
        set_={column.name: excluded[column.name] for column in table.c if column.name not in keys},
        where=or_(
            table.c.crm_modified_at.is_(None),
            excluded.crm_modified_at.is_(None),
            table.c.crm_modified_at <= excluded.crm_modified_at,
        ),
    )


def stored_rows(dialect: str, table: Any, source: str, external_ids: Sequence[str], *columns: Any) -> Any:
    """Select `(external_id, *columns)` of the source's rows whose CRM id is among `external_ids`.

    The ids travel as one parameter (a JSON array on SQLite, an array on PostgreSQL), so the statement
    text stays the same whatever their number: it is compiled and prepared once, not once per batch
    with thousands of placeholders.

    On PostgreSQL each id is looked up through a LATERAL subquery on the unique (source, external_id)
    index. A plain `source = :s AND external_id IN (...)` lets the planner, while a freshly loaded
    table has no statistics yet, scan every row of the source and filter: quadratic over a big
    initial sync. An equality on every column of a unique index is planned as one index probe per id.
    """
    if dialect != "postgresql":
        ids_json = msgspec.json.encode(list(external_ids)).decode()
        listed = func.json_each(bindparam(None, ids_json, type_=String))
        wanted_ids = select(listed.table_valued("value").c.value)
        return select(table.c.external_id, *columns).where(
            table.c.source == source, table.c.external_id.in_(wanted_ids)
        )
    wanted = (
        func.unnest(bindparam(None, list(external_ids), type_=postgresql.ARRAY(String)))
        .table_valued("external_id")
        .render_derived(name="wanted")
    )
    found = (
        select(*columns)
        .where(table.c.source == source, table.c.external_id == wanted.c.external_id)
        .limit(1)
        .lateral("found")
    )
    return select(wanted.c.external_id, *(found.c[column.name] for column in columns)).join_from(
        wanted, found, true()
    )


def _older(candidate: datetime | None, reference: datetime | None) -> bool:
    """Whether `candidate` is known to be strictly older than `reference`."""
    return candidate is not None and reference is not None and candidate < reference


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _text(value: str | None, limit: int) -> str | None:
    """Fit free text to its column: PostgreSQL refuses NUL characters and over-long values."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def _url(value: str | None) -> str | None:
    if value is not None and len(value) > 500:
        raise RecordInvalid("url", "is longer than 500 characters")
    return value


def _money(value: Decimal | None, field_name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        if not value.is_finite() or abs(value) >= MONEY_LIMIT:
            raise RecordInvalid(field_name, "must be a finite number below 10^16")
        return value.quantize(CENT)
    except InvalidOperation as error:
        raise RecordInvalid(field_name, "is not a number") from error


def _chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
