"""Benchmark: N normalized activities through the sync engine vs a bare dialect upsert of the same rows.

    python bench/ingest.py --rows 100000 [--database-url URL] [--batch-size 2000]

Builds a fresh database (a SQLite file in a temporary directory, or a fresh schema in the PostgreSQL
database given), preloads the users and accounts the activities refer to, then times
1. the engine: `run_sync` over a generator source yielding N `ActivityRecord`s (validation, reference
   resolution, classification against stored rows, content hashing, upsert, cursor, sync run), and
2. the baseline: the same N rows as pre-built dicts, written with the same `INSERT ... ON CONFLICT DO
   UPDATE` statement executed with a list of dicts per batch, into an emptied activities table.
Each part runs in its own process, so the engine's peak RSS is its own. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCE = "bench"
USERS = 40
BASE_TIME = datetime(2026, 5, 1, tzinfo=UTC)
KINDS = ("call", "email", "meeting", "task", "note", "call")
DIRECTIONS = ("outbound", "inbound", "unknown")


def main() -> None:
    options = parse_arguments()
    if options.part:
        run_part(options)
        return
    url, schema, cleanup = prepare_database(options.database_url)
    try:
        accounts = options.accounts or max(10, options.rows // 20)
        print(f"ingest: {options.rows:,} activities, {accounts:,} accounts, {USERS} users")
        print(f"batch size: {options.batch_size}")
        print(f"database: {describe(url)}{f' (schema {schema})' if schema else ''}")
        with AppOnDatabase(url, schema) as app:
            build_schema(app)
            preload(app, accounts)
        engine = run_child("engine", options, url, schema, accounts)
        print(
            f"engine:   {engine['seconds']:8.2f} s  {options.rows / engine['seconds']:>10,.0f} rows/s  "
            f"peak RSS {engine['peak_rss_mb']:.0f} MB  "
            f"(generating the records alone: {engine['generation_seconds']:.2f} s)"
        )
        with AppOnDatabase(url, schema) as app:
            empty_activities(app)
        baseline = run_child("baseline", options, url, schema, accounts)
        print(
            f"baseline: {baseline['seconds']:8.2f} s  {options.rows / baseline['seconds']:>10,.0f} rows/s  "
            f"peak RSS {baseline['peak_rss_mb']:.0f} MB"
        )
        ratio = baseline["seconds"] / engine["seconds"]
        print(f"ratio (engine throughput / bare upsert throughput): {ratio:.2f}  (target >= 0.5)")
        print(
            json.dumps(
                {
                    "bench": "ingest",
                    "rows": options.rows,
                    "seconds": round(engine["seconds"], 3),
                    "baseline_seconds": round(baseline["seconds"], 3),
                    "ratio": round(ratio, 3),
                    "rows_per_second": round(options.rows / engine["seconds"]),
                    "baseline_rows_per_second": round(options.rows / baseline["seconds"]),
                    "peak_rss_mb": round(engine["peak_rss_mb"], 1),
                    "database": "postgresql" if url.startswith("postgresql") else "sqlite",
                }
            )
        )
    finally:
        cleanup()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="activities to ingest (default 20,000)")
    parser.add_argument("--database-url", help="a PostgreSQL URL; default: a temporary SQLite file")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--accounts", type=int, help="default: rows / 20, as in the scaled demo org")
    # Internal: the child processes that time one part each.
    parser.add_argument("--part", choices=("engine", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    return parser.parse_args()


def describe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# The database ------------------------------------------------------------------------------------


def prepare_database(database_url: str | None) -> tuple[str, str | None, Any]:
    """Return (url, schema, cleanup): a temp SQLite file, or a fresh schema in the given PostgreSQL db."""
    if not database_url:
        directory = tempfile.mkdtemp(prefix="stratlink-bench-")
        return (
            f"sqlite:///{directory}/ingest.sqlite3",
            None,
            lambda: shutil.rmtree(directory, ignore_errors=True),
        )
    if not database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL (postgresql+psycopg://...)")
    from sqlalchemy import create_engine, text

    schema = f"bench_ingest_{os.getpid()}"
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()

    return database_url, schema, drop


class AppOnDatabase:
    """An app context on the benchmark database (and schema), as a context manager."""

    def __init__(self, url: str, schema: str | None) -> None:
        from app import create_app

        engine_options: dict[str, Any] = {}
        if schema:
            engine_options["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
                "SECRET_KEY": "bench",
            }
        )
        self.context = self.app.app_context()

    def __enter__(self) -> Any:
        self.context.push()
        return self.app

    def __exit__(self, *exc: object) -> None:
        from extensions import db

        db.session.remove()
        db.engine.dispose()
        self.context.pop()


def build_schema(app: Any) -> None:
    import logging

    from flask_migrate import upgrade

    upgrade()
    # Alembic's logging config would otherwise announce every migration on each run.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def preload(app: Any, accounts: int) -> None:
    """Insert the users (with their CRM identities) and accounts the activities refer to."""
    from extensions import db
    from planning.models import Account, User, UserIdentity

    now = datetime.now(UTC)
    session = db.session
    session.execute(
        User.__table__.insert(),
        [
            {
                "email": f"rep{n}@bench.example",
                "name": f"Rep {n}",
                "role": "rep",
                "active": True,
                "created_at": now,
            }
            for n in range(USERS)
        ],
    )
    ids = dict(session.execute(db.select(User.email, User.id)).all())
    session.execute(
        UserIdentity.__table__.insert(),
        [
            {
                "user_id": ids[f"rep{n}@bench.example"],
                "source": SOURCE,
                "external_id": f"U{n}",
                "synced_at": now,
            }
            for n in range(USERS)
        ],
    )
    for start in range(0, accounts, 10_000):
        session.execute(
            Account.__table__.insert(),
            [
                {
                    "source": SOURCE,
                    "external_id": f"A{n}",
                    "name": f"Account {n}",
                    "owner_id": ids[f"rep{n % USERS}@bench.example"],
                    "deleted": False,
                    "synced_at": now,
                }
                for n in range(start, min(accounts, start + 10_000))
            ],
        )
    session.commit()


def empty_activities(app: Any) -> None:
    """Give the baseline the same empty activities table the engine started from."""
    from sqlalchemy import text

    from extensions import db

    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("TRUNCATE activities, sync_cursors, sync_runs RESTART IDENTITY CASCADE"))
        db.session.commit()
        return
    for table in ("activities", "sync_cursors", "sync_runs"):
        db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()
    with db.engine.connect() as connection:
        connection.exec_driver_sql("VACUUM")


# The two parts, each in its own process -------------------------------------------------------------


def run_child(
    part: str, options: argparse.Namespace, url: str, schema: str | None, accounts: int
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--url",
        url,
        "--rows",
        str(options.rows),
        "--batch-size",
        str(options.batch_size),
        "--accounts",
        str(accounts),
    ]
    if schema:
        command += ["--schema", schema]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"the {part} part failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_part(options: argparse.Namespace) -> None:
    timer = time_engine if options.part == "engine" else time_baseline
    with AppOnDatabase(options.url, options.schema) as app:
        figures = timer(app, options)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def activity_records(rows: int, accounts: int) -> Iterator[Any]:
    """The N activities, generated lazily (the same every time)."""
    from integrations.base import ActivityRecord

    step = timedelta(seconds=15)
    moment = BASE_TIME
    for n in range(rows):
        moment += step
        yield ActivityRecord(
            external_id=f"T{n:09d}",
            account_external_id=f"A{n % accounts}",
            kind=KINDS[n % 6],
            occurred_at=moment,
            owner_external_id=f"U{n % USERS}",
            direction=DIRECTIONS[n % 3],
            subject=f"Follow-up on the proposal #{n}",
            url=f"https://crm.example.com/activities/T{n:09d}",
            modified_at=moment,
        )


class GeneratedSource:
    """A source over `activity_records`, in batches with a cursor like a CRM adapter's."""

    name = SOURCE

    def __init__(self, rows: int, accounts: int, batch_size: int) -> None:
        from integrations.base import SourceReport

        self.rows, self.accounts, self.batch_size = rows, accounts, batch_size
        self.report = SourceReport()

    def streams(self) -> list[str]:
        return ["activities"]

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Any]:
        from integrations.base import Batch

        batch: list[Any] = []
        for record in activity_records(self.rows, self.accounts):
            batch.append(record)
            if len(batch) == self.batch_size:
                yield Batch(stream, batch, cursor=f"{record.modified_at.isoformat()}/{record.external_id}")
                batch = []
        if batch:
            yield Batch(stream, batch, cursor=f"{batch[-1].modified_at.isoformat()}/{batch[-1].external_id}")


def time_engine(app: Any, options: argparse.Namespace) -> dict[str, Any]:
    from extensions import db
    from integrations.sync import run_sync

    source = GeneratedSource(options.rows, options.accounts, options.batch_size)
    started = time.perf_counter()
    for _ in source.read("activities", None, full=True):
        pass
    generation = time.perf_counter() - started

    started = time.perf_counter()
    run = run_sync(db.session(), source, batch_size=options.batch_size)
    seconds = time.perf_counter() - started
    if (run.status, run.inserted) != ("succeeded", options.rows):
        raise SystemExit(
            f"engine run {run.status}: {run.inserted} inserted, {run.failed} failed: {run.errors[:3]}"
        )
    return {"seconds": seconds, "generation_seconds": generation}


def time_baseline(app: Any, options: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select

    from extensions import db
    from integrations.sync import content_hash, upsert_statement
    from planning.models import Account, Activity, UserIdentity

    engine = db.engine
    with engine.connect() as connection:
        account_ids = dict(connection.execute(select(Account.external_id, Account.id)).all())
        user_ids = dict(connection.execute(select(UserIdentity.external_id, UserIdentity.user_id)).all())
    statement = upsert_statement(engine.dialect.name, Activity.__table__)
    now = datetime.now(UTC)
    seconds = 0.0
    with engine.connect() as connection:
        records = activity_records(options.rows, options.accounts)
        while True:
            rows = []
            for record in records:
                row = {
                    "account_id": account_ids[record.account_external_id],
                    "owner_id": user_ids[record.owner_external_id],
                    "opportunity_id": None,
                    "kind": record.kind,
                    "direction": record.direction,
                    "occurred_at": record.occurred_at,
                    "subject": record.subject,
                    "url": record.url,
                    "deleted": False,
                }
                row.update(
                    source=SOURCE,
                    external_id=record.external_id,
                    content_hash=content_hash(row.values()),
                    crm_modified_at=record.modified_at,
                    synced_at=now,
                )
                rows.append(row)
                if len(rows) == options.batch_size:
                    break
            if not rows:
                break
            # Only the write is timed: the rows are pre-built, as a hand-written loader's would be.
            started = time.perf_counter()
            connection.execute(statement, rows)
            connection.commit()
            seconds += time.perf_counter() - started
        written = connection.scalar(select(db.func.count()).select_from(Activity))
    if written != options.rows:
        raise SystemExit(f"baseline wrote {written} rows, expected {options.rows}")
    return {"seconds": seconds}


if __name__ == "__main__":
    main()
