"""The Salesforce source: SOQL via simple-salesforce, incremental by SystemModstamp, deletions via queryAll.

Each object is declared as data in `integrations.salesforce_streams`. A read asks for
`SystemModstamp >= cursor AND SystemModstamp <= start of this sync ORDER BY SystemModstamp, Id` through
`/queryAll`, so one request per object brings changes and deletions (rows with `IsDeleted = true`) alike.
The cursor of a batch is the (SystemModstamp, Id) of its last row; rows the previous run already
committed at the boundary are skipped by Id. A full load above `SALESFORCE_BULK_THRESHOLD` rows goes
through a Bulk API 2.0 query job instead; its rows come unordered, so its cursor lands with its last batch.

Vendor field names stop here and in `salesforce_streams`: what leaves is a record from `integrations.base`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integrations.base import Batch, Record, RecordError, RecordInvalid, SourceReport
from integrations.salesforce_client import SalesforceConnection, Sleep, connect, translate_errors
from integrations.salesforce_prefetch import chunked, prefetched
from integrations.salesforce_settings import SalesforceSettings
from integrations.salesforce_streams import STREAM_OBJECTS, Row, SObjectStream, build_soql

Clock = Callable[[], datetime]
# Salesforce answers a query with pages of up to 2,000 rows: the paging thread hands them over whole.
PAGE_ROWS = 2000


# Cursors --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """The last row a committed batch carried: its SystemModstamp and Id (no Id: nothing read yet)."""

    at: datetime
    last_id: str

    def encode(self) -> str:
        stamp = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.at.microsecond // 1000:03d}Z"
        return f"{stamp}/{self.last_id}"


def encode_cursor(positions: Mapping[str, Position]) -> str | None:
    """Write one stream's cursor: `Task=2026-10-20T14:00:00.000Z/00T...;Event=...`."""
    if not positions:
        return None
    return ";".join(f"{sobject}={position.encode()}" for sobject, position in positions.items())


def decode_cursor(cursor: str | None) -> dict[str, Position]:
    """Read a cursor written by `encode_cursor`; raise ValueError when it is not one."""
    positions: dict[str, Position] = {}
    if not cursor:
        return positions
    for part in cursor.split(";"):
        sobject, _, rest = part.partition("=")
        stamp, _, last_id = rest.partition("/")
        if not sobject or not stamp:
            raise ValueError(f"not a Salesforce cursor: {cursor!r}")
        positions[sobject] = Position(datetime.fromisoformat(stamp).astimezone(UTC), last_id)
    return positions


def skip_committed(rows: Iterable[Row], start: Position | None, cursor_field: str) -> Iterator[Row]:
    """Drop the rows a previous run committed: those before the cursor, and those at its time up to its Id.

    The query asks for `>=` the cursor's second (SOQL has no milliseconds), so the boundary comes back.
    Rows sharing the cursor's exact time are held until its Id shows up; should it never show up (the
    record changed since), they are all passed on, since nothing proves they were committed.
    """
    iterator = iter(rows)
    if start is None:
        yield from iterator
        return
    held: list[Row] = []
    for row in iterator:
        stamp = datetime.fromisoformat(str(row[cursor_field]))
        if stamp < start.at:
            continue
        if stamp == start.at:
            if row["Id"] == start.last_id:
                held.clear()
                break
            held.append(row)
            continue
        yield from held
        held.clear()
        yield row
        break
    yield from held
    yield from iterator


# The source -----------------------------------------------------------------------------------------


@dataclass
class _Mapped:
    """One chunk of rows as records and errors, with its last and its newest position."""

    records: list[Record] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    last: Position | None = None
    newest: Position | None = None


class SalesforceSource:
    """Users, accounts, opportunities and activities (tasks, events, contracts) from one Salesforce org."""

    name = "salesforce"

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock | None = None,
        prefetch: bool = True,
    ) -> None:
        self.settings = settings
        self.report = SourceReport()
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._prefetch = prefetch
        self._connection: SalesforceConnection | None = None
        self._until: datetime | None = None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        prefetch: bool = True,
        **_: Any,
    ) -> SalesforceSource:
        """Build the source from the app config (SALESFORCE_*); other options (e.g. path) do not apply."""
        return cls(
            SalesforceSettings.from_config(config),
            sleep=sleep if sleep is not None else time.sleep,
            clock=clock,
            prefetch=prefetch,
        )

    @property
    def connection(self) -> SalesforceConnection:
        """Sign in on first use, so a misconfigured org fails inside the sync run and is recorded there."""
        if self._connection is None:
            self._connection = connect(self.settings, sleep=self._sleep, on_usage=self._record_usage)
        return self._connection

    @property
    def requests_made(self) -> int:
        return self._connection.state.request_count if self._connection is not None else 0

    def _record_usage(self, usage: str) -> None:
        self.report.api_usage = usage

    def streams(self) -> Sequence[str]:
        return tuple(STREAM_OBJECTS)

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        """Yield batches of `stream` changed since `cursor` (everything when `full` or no cursor)."""
        objects = STREAM_OBJECTS[stream]
        positions: dict[str, Position] = {}
        if not full:
            try:
                positions = decode_cursor(cursor)
            except ValueError:
                self.report.notes.append(f"{stream}: unreadable cursor {cursor!r}, read everything again")
        if self._until is None:
            # The cursor never passes the moment this sync started; later changes wait for the next run.
            self._until = self._clock().astimezone(UTC).replace(microsecond=0)
        with translate_errors(f"reading {stream} from Salesforce"):
            for spec in objects:
                yield from self._read_object(stream, spec, positions)

    def _read_object(
        self, stream: str, spec: SObjectStream, positions: dict[str, Position]
    ) -> Iterator[Batch]:
        start = positions.get(spec.sobject)
        if start is None and self._use_bulk(spec):
            yield from self._read_bulk(stream, spec, positions)
            return
        # Mapping runs in the caller's thread, between the engine's writes. A thread of its own for it was
        # measured slower: mapping and the engine both hold the GIL, and SQLite hands the GIL over at every
        # row it inserts, so the two threads only took turns, paying for each switch.
        yield from self._query_batches(stream, spec, positions, start)

    def _query_batches(
        self, stream: str, spec: SObjectStream, positions: dict[str, Position], start: Position | None
    ) -> Iterator[Batch]:
        soql = build_soql(
            spec,
            until=self._until_time,
            since=start.at if start else None,
            record_types=self.settings.account_record_types,
        )
        client = self.connection.client
        pages: Iterable[Row] = client.query_all_iter(soql, include_deleted=spec.deletable)
        if self._prefetch:
            # One more thread asks for the next page as soon as the last one is parsed, so Salesforce
            # prepares it while this one is being mapped.
            pages = prefetched(pages, chunk=PAGE_ROWS, depth=2)
        rows = skip_committed(pages, start, spec.cursor_field)
        base_url = self.connection.instance_url + "/"
        empty = True
        for chunk in chunked(rows, self.settings.batch_size):
            empty = False
            mapped = _map_rows(stream, spec, chunk, base_url)
            if mapped.last is not None:
                positions[spec.sobject] = mapped.last
            yield Batch(stream, mapped.records, mapped.errors, cursor=encode_cursor(positions))
        if empty and start is None:
            # Nothing at all yet: remember that up to now, so the next run asks once and counts nothing.
            positions[spec.sobject] = Position(self._until_time, "")
            yield Batch(stream, [], [], cursor=encode_cursor(positions))

    @property
    def _until_time(self) -> datetime:
        assert self._until is not None
        return self._until

    def _use_bulk(self, spec: SObjectStream) -> bool:
        threshold = self.settings.bulk_threshold
        if threshold <= 0:
            return False
        soql = build_soql(
            spec, until=self._until_time, record_types=self.settings.account_record_types, count=True
        )
        result = self.connection.client.query(soql, include_deleted=spec.deletable)
        return int(result.get("totalSize", 0)) >= threshold

    def _read_bulk(self, stream: str, spec: SObjectStream, positions: dict[str, Position]) -> Iterator[Batch]:
        """Read a whole object through a Bulk API 2.0 query job; the cursor comes with the last batch."""
        soql = build_soql(
            spec, until=self._until_time, record_types=self.settings.account_record_types, ordered=False
        )
        job: Any = getattr(self.connection.client.bulk2, spec.sobject)
        operation = job.query_all if spec.deletable else job.query
        pages = operation(
            soql, max_records=max(self.settings.batch_size, 10_000), wait=self.settings.bulk_poll_seconds
        )
        base_url = self.connection.instance_url + "/"
        newest: Position | None = None
        pending: Batch | None = None
        for chunk in chunked(_csv_rows(pages), self.settings.batch_size):
            mapped = _map_rows(stream, spec, chunk, base_url, newest=True)
            if mapped.newest is not None and (newest is None or mapped.newest.at > newest.at):
                newest = mapped.newest
            if pending is not None:
                yield pending
            pending = Batch(stream, mapped.records, mapped.errors, cursor=None)
        if newest is not None:
            positions[spec.sobject] = newest
        if pending is not None:
            pending.cursor = encode_cursor(positions)
            yield pending


def _map_rows(
    stream: str, spec: SObjectStream, rows: Sequence[Row], base_url: str, *, newest: bool = False
) -> _Mapped:
    """Map rows to records; a row that does not map becomes a RecordError carrying its Id.

    `last` is the position of the last row (in answer order); `newest`, asked for only by the Bulk API
    reader whose answers come in no order, the position of the latest one.
    """
    mapped = _Mapped()
    to_record = spec.to_record
    append = mapped.records.append
    for row in rows:
        try:
            append(to_record(row, base_url))
        except RecordInvalid as error:
            mapped.errors.append(RecordError(stream, row.get("Id"), error.field, error.message))
        except (KeyError, TypeError, ValueError) as error:
            mapped.errors.append(RecordError(stream, row.get("Id"), None, f"cannot read the row: {error!r}"))
    cursor_field = spec.cursor_field

    def stamped(row: Row) -> bool:
        return bool(row.get(cursor_field) and row.get("Id"))

    last = next(filter(stamped, reversed(rows)), None)
    if last is not None:
        mapped.last = _position(last, cursor_field)
    if newest:
        stamped_rows = list(filter(stamped, rows))
        if stamped_rows:
            # One format per answer (REST or CSV), fixed width: the text order is the time order.
            mapped.newest = _position(max(stamped_rows, key=lambda row: str(row[cursor_field])), cursor_field)
    return mapped


def _position(row: Row, cursor_field: str) -> Position | None:
    try:
        return Position(datetime.fromisoformat(str(row[cursor_field])), str(row["Id"]))
    except ValueError:
        return None


def _csv_rows(pages: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Turn Bulk API 2.0 CSV result pages into rows; an empty field is a null there."""
    for page in pages:
        reader = csv.reader(io.StringIO(str(page)))
        header = next(reader, None)
        if header is None:
            continue
        for values in reader:
            yield {
                name: (value if value != "" else None) for name, value in zip(header, values, strict=False)
            }


def check_connection(settings: SalesforceSettings, *, sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Sign in and count each synced object's rows: a cheap proof that the credentials and fields work."""
    connection = connect(settings, sleep=sleep)
    until = datetime.now(UTC).replace(microsecond=0)
    counts: dict[str, int] = {}
    with translate_errors("checking the Salesforce connection"):
        for specs in STREAM_OBJECTS.values():
            for spec in specs:
                soql = build_soql(spec, until=until, record_types=settings.account_record_types, count=True)
                counts[spec.sobject] = int(connection.client.query(soql).get("totalSize", 0))
    return {
        "instance_url": settings.public_instance_url() or connection.instance_url,
        "auth_mode": settings.auth_mode,
        "api_version": settings.api_version,
        "api_usage": connection.state.api_usage,
        "counts": counts,
        "requests": connection.state.request_count,
    }
