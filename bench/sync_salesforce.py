"""Benchmark: a full Salesforce sync against just paging the same responses, plus an idle incremental sync.

    python bench/sync_salesforce.py --accounts 50000     # ~1,000,000 activities (20 per account)

The fake org runs in a separate process (so its memory and CPU are not counted as ours) and generates
its rows on the fly from their index, so it holds no data. In the same run the script measures:
1. the baseline: the same client (simple-salesforce over our transport) paging the same SOQL queries
   through `nextRecordsUrl` and discarding the rows;
2. the adapter alone: the same reads mapped to records, without a database (the source's own cost);
3. a full sync of every stream into a fresh database through `run_sync`;
4. an incremental sync with nothing changed: the requests it makes (target: one per object);
5. the baseline again: the ratio divides by the faster of its two runs;
6. the baseline once more with the garbage collector set as a sync sets it (`collecting_less`), for a
   second, stricter ratio: the sync's own collector setting also speeds up its JSON decoding;
and prints the figures (with the CPU seconds of this process and of the fake org), ending with one JSON
line. Targets: ratio <= 1.3, peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Per account: 14 tasks, 5 events and 1 contract make 20 activities; 1 opportunity.
TASKS_PER_ACCOUNT = 14
EVENTS_PER_ACCOUNT = 5
CONTRACTS_PER_ACCOUNT = 1
ACCOUNTS_PER_REP = 25
STEP = timedelta(milliseconds=1)
PREFIXES = {
    "User": "005",
    "Account": "001",
    "Opportunity": "006",
    "Task": "00T",
    "Event": "00U",
    "Contract": "800",
}


class GeneratedOrg:
    """A fake org's rows computed from their index: row k of an object is stamped `start + k ms`."""

    def __init__(self, accounts: int, start: datetime) -> None:
        self.accounts = accounts
        self.start = start
        reps = max(2, accounts // ACCOUNTS_PER_REP)
        managers = max(1, reps // 8)
        self.users = 1 + managers + reps
        self.managers = managers
        self.counts = {
            "User": self.users,
            "Account": accounts,
            "Opportunity": accounts,
            "Task": accounts * TASKS_PER_ACCOUNT,
            "Event": accounts * EVENTS_PER_ACCOUNT,
            "Contract": accounts * CONTRACTS_PER_ACCOUNT,
        }
        from tests.integrations.fake_salesforce import SCHEMA

        self.schema = SCHEMA

    def fields(self, sobject: str) -> set[str]:
        return self.schema.get(sobject, set())

    @staticmethod
    def key(sobject: str, number: int) -> str:
        return f"{PREFIXES[sobject]}{number:012d}AAA"

    def scan(self, sobject: str, since: datetime | None) -> Iterator[dict[str, Any]]:
        count = self.counts.get(sobject, 0)
        first = 0
        if since is not None:
            first = max(0, -(-(since - self.start) // STEP))
        build = getattr(self, f"_{sobject.lower()}")
        for number in range(first, count):
            yield build(number)

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        number = int(record_id[3:15])
        if not 0 <= number < self.counts.get(sobject, 0):
            return None
        return getattr(self, f"_{sobject.lower()}")(number)  # type: ignore[no-any-return]

    def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        raise NotImplementedError("the generated org is read-only")

    def _base(self, sobject: str, number: int) -> dict[str, Any]:
        stamp = self.start + number * STEP
        return {
            "Id": self.key(sobject, number),
            "SystemModstamp": stamp,
            "CreatedDate": stamp,
            "IsDeleted": False,
        }

    def _rep(self, account: int) -> str:
        return self.key("User", 1 + self.managers + account % (self.users - 1 - self.managers))

    def _user(self, number: int) -> dict[str, Any]:
        row = self._base("User", number)
        del row["IsDeleted"]
        if number == 0:
            manager = None
        elif number <= self.managers:
            manager = self.key("User", 0)
        else:
            manager = self.key("User", 1 + number % self.managers)
        row.update(
            Name=f"User {number}",
            Email=f"user{number}@example.com",
            ManagerId=manager,
            IsActive=True,
            UserType="Standard",
        )
        return row

    def _account(self, number: int) -> dict[str, Any]:
        row = self._base("Account", number)
        row.update(
            Name=f"Account {number}",
            OwnerId=self._rep(number),
            Industry=("Manufacturing", "Retail", "Software")[number % 3],
            AnnualRevenue=Decimal(1_000_000 + number * 10),
        )
        return row

    def _opportunity(self, number: int) -> dict[str, Any]:
        row = self._base("Opportunity", number)
        row.update(
            AccountId=self.key("Account", number),
            Name=f"Expansion {number}",
            OwnerId=self._rep(number),
            StageName="Proposal",
            Amount=Decimal(25_000 + number % 1000),
            CloseDate=date(2027, 3, 31),
            IsClosed=False,
            IsWon=False,
        )
        return row

    def _task(self, number: int) -> dict[str, Any]:
        account = number // TASKS_PER_ACCOUNT
        row = self._base("Task", number)
        subtype = ("Call", "Email", "Task")[number % 3]
        row.update(
            AccountId=self.key("Account", account),
            WhatId=self.key("Opportunity", account) if number % 5 == 0 else self.key("Account", account),
            OwnerId=self._rep(account),
            Subject=f"{subtype} {number}",
            TaskSubtype=subtype,
            CallType=("Outbound", "Inbound")[number % 2] if subtype == "Call" else None,
            ActivityDate=date(2026, 10, 1) + timedelta(days=number % 50),
        )
        return row

    def _event(self, number: int) -> dict[str, Any]:
        account = number // EVENTS_PER_ACCOUNT
        row = self._base("Event", number)
        row.update(
            AccountId=self.key("Account", account),
            WhatId=self.key("Account", account),
            OwnerId=self._rep(account),
            Subject=f"Meeting {number}",
            ActivityDateTime=datetime(2026, 10, 1, 15, tzinfo=UTC) + timedelta(hours=number % 1000),
            ActivityDate=date(2026, 10, 1),
            IsAllDayEvent=False,
        )
        return row

    def _contract(self, number: int) -> dict[str, Any]:
        row = self._base("Contract", number)
        row.update(
            AccountId=self.key("Account", number),
            OwnerId=self._rep(number),
            ContractNumber=f"{number:08d}",
            Status="Activated",
            StartDate=date(2027, 1, 1),
            ContractTerm=12,
            ActivatedDate=datetime(2026, 10, 15, 9, tzinfo=UTC),
        )
        return row


def serve(accounts: int, page_size: int) -> None:
    """Run the fake org until stdin closes; print its URL first."""
    from tests.integrations.fake_salesforce import FakeSalesforce

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    store = GeneratedOrg(accounts, start)
    with FakeSalesforce(store=store, page_size=page_size, exact_totals=False, record_bodies=False) as fake:
        print(fake.url, flush=True)
        sys.stdin.read()


class DriverClock:
    """Add up the time an engine spends inside its database driver: statements, and commits."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements = 0.0
        self.commits = 0.0
        self.by_kind: Counter[str] = Counter()  # seconds by the statement's first words
        self._started = 0.0
        self._do_commit = engine.dialect.do_commit

    @property
    def total(self) -> float:
        return self.statements + self.commits

    def __enter__(self) -> DriverClock:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._start)
        event.listen(self.engine, "after_cursor_execute", self._stop)
        self.engine.dialect.do_commit = self._timed_commit
        return self

    def __exit__(self, *_: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._start)
        event.remove(self.engine, "after_cursor_execute", self._stop)
        self.engine.dialect.do_commit = self._do_commit

    def _start(self, *_: object) -> None:
        self._started = time.perf_counter()

    def _stop(self, _connection: Any, _cursor: Any, statement: str, *_: object) -> None:
        seconds = time.perf_counter() - self._started
        self.statements += seconds
        self.by_kind[" ".join(statement.split()[:4])] += seconds

    def _timed_commit(self, dbapi_connection: Any) -> None:
        started = time.perf_counter()
        self._do_commit(dbapi_connection)
        self.commits += time.perf_counter() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """CPU seconds this process and another (the fake org) spend over a block."""

    def __init__(self, other_pid: int) -> None:
        self.other_pid = other_pid
        self.ours = 0.0
        self.theirs: float | None = None

    def __enter__(self) -> CpuClock:
        self._ours = time.process_time()
        self._theirs = cpu_seconds(self.other_pid)
        return self

    def __exit__(self, *_: object) -> None:
        self.ours = time.process_time() - self._ours
        theirs = cpu_seconds(self.other_pid)
        if theirs is not None and self._theirs is not None:
            self.theirs = theirs - self._theirs

    def __str__(self) -> str:
        theirs = "?" if self.theirs is None else f"{self.theirs:.1f}"
        return f"CPU: ours {self.ours:.1f} s, the fake org's {theirs} s"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from extensions import db
    from integrations.salesforce import SalesforceSource
    from integrations.salesforce_client import connect
    from integrations.salesforce_settings import SalesforceSettings
    from integrations.salesforce_streams import STREAM_OBJECTS, build_soql
    from integrations.sync import collecting_less, run_sync
    from tests.integrations.fake_salesforce import ACCESS_TOKEN

    # Our own interpreter running this very script: no outside input reaches the command line.
    server = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            __file__,
            "--serve",
            "--accounts",
            str(args.accounts),
            "--page-size",
            str(args.page_size),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        config = {
            "SALESFORCE_INSTANCE_URL": url,
            "SALESFORCE_ACCESS_TOKEN": ACCESS_TOKEN,
            "SALESFORCE_BULK_THRESHOLD": 0,
            "SYNC_BATCH_SIZE": args.batch_size,
        }
        objects = [spec for specs in STREAM_OBJECTS.values() for spec in specs]
        until = datetime.now(UTC).replace(microsecond=0)

        def page_everything() -> tuple[float, int, int]:
            """Page through the very same queries and throw the rows away: seconds, rows, requests."""
            connection = connect(SalesforceSettings.from_config(config))
            with CpuClock(server.pid) as cpu:
                started = time.perf_counter()
                count = 0
                for spec in objects:
                    soql = build_soql(spec, until=until)
                    for _ in connection.client.query_all_iter(soql, include_deleted=spec.deletable):
                        count += 1
                seconds = time.perf_counter() - started
            print(f"  ({cpu})", flush=True)
            return seconds, count, connection.state.request_count

        # 1. The baseline, once before and once after the syncs: this machine's speed drifts over
        # minutes, and the ratio is taken against the faster of the two (the less flattering one).
        first_seconds, baseline_rows, requests = page_everything()
        print(
            f"baseline: paged {baseline_rows:,} rows in {first_seconds:.1f} s ({requests} requests)",
            flush=True,
        )

        # 2. The adapter alone: the same pages mapped to records, no database, to tell its cost apart.
        alone = SalesforceSource.from_config(config)
        started = time.perf_counter()
        mapped = 0
        for stream in alone.streams():
            for batch in alone.read(stream, None, full=True):
                mapped += len(batch.records) + len(batch.errors)
        source_seconds = time.perf_counter() - started
        print(
            f"adapter alone (paging + mapping, no database): {mapped:,} rows in {source_seconds:.1f} s "
            f"(ratio to paging {source_seconds / first_seconds:.2f}); peak RSS so far {peak_rss_mb():.0f} MB",
            flush=True,
        )

        # 3. The full sync into a fresh database: by default a SQLite file in a folder removed at exit.
        database_url = args.database_url
        if database_url is None:
            workdir = tempfile.mkdtemp(prefix="bench-sync-salesforce-")
            atexit.register(shutil.rmtree, workdir, True)
            database_url = f"sqlite:///{workdir}/bench.sqlite3"
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "SECRET_KEY": "bench",
                "STRATLINK_SOURCE": "salesforce",
                **config,
            }
        )
        with app.app_context():
            if database_url.startswith("postgresql"):
                with db.engine.begin() as connection_:
                    connection_.execute(text("DROP SCHEMA public CASCADE"))
                    connection_.execute(text("CREATE SCHEMA public"))
            upgrade()
            source = SalesforceSource.from_config(app.config)
            with DriverClock(db.engine) as driver, CpuClock(server.pid) as sync_cpu:
                started = time.perf_counter()
                full = run_sync(db.session, source, batch_size=args.batch_size)
                seconds = time.perf_counter() - started
            rows = full.inserted + full.updated + full.unchanged + full.failed
            print(
                f"full sync: {full.status}, {rows:,} rows ({full.inserted:,} inserted, {full.failed} failed) "
                f"in {seconds:.1f} s ({source.requests_made} requests); "
                f"peak RSS so far {peak_rss_mb():.0f} MB",
                flush=True,
            )
            print(f"  ({sync_cpu})", flush=True)
            print(
                f"  of which inside the database driver: {driver.statements:.1f} s in statements, "
                f"{driver.commits:.1f} s in commits; the rest of the sync "
                f"{(seconds - driver.total) / first_seconds:.2f}x paging"
                # The engine streams PostgreSQL batches with COPY on the raw connection, unseen here.
                + (" (COPY streaming counted in the rest)" if database_url.startswith("postgresql") else ""),
                flush=True,
            )
            for kind, kind_seconds in driver.by_kind.most_common(6):
                print(f"    {kind_seconds:6.1f} s  {kind} ...", flush=True)
            if full.status != "succeeded":
                print(f"  message: {full.message}", flush=True)

            # 4. An incremental sync with nothing changed.
            idle = SalesforceSource.from_config(app.config)
            started = time.perf_counter()
            again = run_sync(db.session, idle, batch_size=args.batch_size)
            idle_seconds = time.perf_counter() - started
            written = again.inserted + again.updated
            print(
                f"incremental sync, nothing changed: {again.status}, {written} written, "
                f"{idle.requests_made} requests for {len(objects)} objects in {idle_seconds:.2f} s",
                flush=True,
            )
        second_seconds, _, _ = page_everything()
        baseline_seconds = min(first_seconds, second_seconds)
        print(
            f"baseline again after the syncs: {second_seconds:.1f} s; "
            f"the ratio uses the faster, {baseline_seconds:.1f} s",
            flush=True,
        )
        with collecting_less():
            tuned_seconds, _, _ = page_everything()
        print(f"baseline with the sync's garbage-collector setting: {tuned_seconds:.1f} s", flush=True)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)

    ratio = seconds / baseline_seconds
    strict_ratio = seconds / min(baseline_seconds, tuned_seconds)
    peak = peak_rss_mb()
    print(f"ratio (sync / paging): {ratio:.2f}  (target <= 1.3)")
    print(f"ratio against paging with the sync's collector setting: {strict_ratio:.2f}")
    print(f"peak RSS: {peak:.0f} MB  (target <= 300)")
    return {
        "bench": "sync_salesforce",
        "accounts": args.accounts,
        "activities": args.accounts * (TASKS_PER_ACCOUNT + EVENTS_PER_ACCOUNT + CONTRACTS_PER_ACCOUNT),
        "rows": rows,
        "seconds": round(seconds, 2),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_runs": [round(first_seconds, 2), round(second_seconds, 2)],
        "ratio": round(ratio, 3),
        "tuned_baseline_seconds": round(tuned_seconds, 2),
        "strict_ratio": round(strict_ratio, 3),
        "sync_cpu_seconds": round(sync_cpu.ours, 2),
        "source_seconds": round(source_seconds, 2),
        "source_ratio": round(source_seconds / baseline_seconds, 3),
        "incremental_requests": idle.requests_made,
        "incremental_requests_per_object": round(idle.requests_made / len(objects), 2),
        "incremental_seconds": round(idle_seconds, 2),
        "peak_rss_mb": round(peak, 1),
        "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--accounts", type=int, default=2000, help="accounts in the fake org (20 activities each)"
    )
    parser.add_argument(
        "--page-size", type=int, default=2000, help="rows per query page (Salesforce: up to 2000)"
    )
    parser.add_argument("--batch-size", type=int, default=2000, help="rows per sync batch")
    parser.add_argument(
        "--database-url", help="a database to fill (PostgreSQL: its public schema is dropped!)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.accounts, args.page_size)
        return
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
