"""Benchmark the tactics review against the bare SQL aggregate it is built on.

    python bench/review.py                        # SQLite, 5,000 then 50,000 accounts (~1M activities)
    python bench/review.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/stratlink_e_bench

Builds a scaled org straight into the database with bulk inserts (about 20 activities per account over
six months, a third of them linked to a strategy), first at a tenth of --accounts, then at --accounts.
At each size it times `run_review` (queries, findings written, committed) against two baselines:
- the bare SQL aggregate: one GROUP BY counting each account's uncovered activities in the window;
- the bare SQL of both rules: that GROUP BY, then the stale rule's query alone (the ids of the active
  strategies past their review date or with no linked activity in 60 days, probed the way the review
  probes them). The review computes both rules; this measures what it adds to them (figures, reasons,
  statuses, resolved findings, writing the findings).
It also times a floor that no review storing its findings can go below: the bare SQL of both rules,
then writing as many finding rows as the review wrote (copied from it, so with no rule, figure or
status to work out), and prints that floor's ratio to the bare aggregate: where it is above 1.5, so is
every review that stores these findings.
The three take turns (--repeat rounds, five by default; four times as many at the tenth size, where a
run takes a few hundredths of a second and a single stall would decide the tenfold figure) and the
fastest run of each counts: on this kind of machine one query's time comes in two modes about 35% apart,
and back-to-back runs of one often all land in the slow one. It prints the times, the review's ratio to
each baseline (target <= 1.5), how the review's time grew with tenfold data (target <= 10x), the peak
RSS, and ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import Connection, and_, func, insert, literal, or_, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app  # noqa: E402
from extensions import db  # noqa: E402
from planning.models import (  # noqa: E402
    COVERING_STATUSES,
    Account,
    Activity,
    Finding,
    Link,
    Opportunity,
    Review,
    Strategy,
    StrategyStatus,
    User,
)
from planning.review import day_window, run_review, tune_transaction  # noqa: E402

AS_OF = date(2026, 10, 31)
WINDOW_DAYS = 30
STALE_DAYS = 60
HISTORY_DAYS = 180
CHUNK = 20_000
KINDS = ["call"] * 40 + ["email"] * 30 + ["meeting"] * 12 + ["task"] * 10 + ["note"] * 7 + ["contract"]
STATUSES = ["active"] * 7 + ["draft", "achieved", "abandoned"]
SMALL_REPEAT_FACTOR = 4  # more rounds at the tenth size: its runs are short, so noise weighs more
ACCOUNTS_PER_REP = 25
REPS_PER_MANAGER = 8


def say(message: str) -> None:
    print(message, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class OrgBuilder:
    """Appends accounts (with their owners, opportunity, strategy, activities and links) in bulk."""

    # Link ids reuse their activity's id: both are unique, and it saves a counter.

    def __init__(self, connection: Connection, seed: int, per_account: int) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.rng = random.Random(seed)
        self.per_account = per_account
        self.accounts = 0
        self.activities = 0  # activities so far; ids run 1..activities
        self.users = 0
        self.reps: list[int] = []
        self.managers: list[int] = []
        self.end = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        self._vp = self._user("manager", None)

    def _user(self, role: str, manager_id: int | None) -> int:
        self.users += 1
        self.connection.execute(
            insert(User.__table__),
            [
                {
                    "id": self.users,
                    "email": f"user{self.users}@bench.invalid",
                    "name": f"{role.title()} {self.users}",
                    "role": role,
                    "manager_id": manager_id,
                    "active": True,
                    "created_at": self.end,
                }
            ],
        )
        return self.users

    def _owner_for(self, account_id: int) -> int:
        while len(self.reps) * ACCOUNTS_PER_REP < account_id:
            if len(self.reps) % REPS_PER_MANAGER == 0:
                self.managers.append(self._user("manager", self._vp))
            self.reps.append(self._user("rep", self.managers[-1]))
        return self.reps[(account_id - 1) // ACCOUNTS_PER_REP]

    def grow_to(self, accounts: int) -> None:
        """Add accounts until there are `accounts` of them."""
        first, last = self.accounts + 1, accounts
        owners = {account_id: self._owner_for(account_id) for account_id in range(first, last + 1)}
        # Half the accounts have a strategy; two thirds of their activities are linked: a third in all.
        strategies = {
            account_id: account_id for account_id in range(first, last + 1) if self.rng.random() < 0.5
        }
        self._copy(Account.__table__, self._accounts(first, last, owners))
        self._copy(Opportunity.__table__, self._opportunities(first, last, owners))
        self._copy(Strategy.__table__, self._strategies(strategies, owners))
        # A CRM sync delivers activities roughly in time order, so ids grow with occurred_at.
        count = (last - first + 1) * self.per_account
        ages = array("l", (self.rng.randrange(HISTORY_DAYS * 86400) for _ in range(count)))
        in_time_order = sorted(range(count), key=ages.__getitem__, reverse=True)
        self._copy(Activity.__table__, self._activities(first, in_time_order, ages, owners))
        self._copy(Link.__table__, self._links(first, in_time_order, strategies))
        self.activities += count
        self.accounts = last
        self.connection.commit()
        self.connection.execute(text("ANALYZE"))
        self.connection.commit()

    def _accounts(self, first: int, last: int, owners: dict[int, int]) -> Iterator[dict[str, Any]]:
        for account_id in range(first, last + 1):
            yield {
                "id": account_id,
                "source": "bench",
                "external_id": f"BA{account_id:07d}",
                "url": None,
                "deleted": False,
                "content_hash": None,
                "crm_modified_at": None,
                "synced_at": self.end,
                "name": f"Account {account_id}",
                "owner_id": owners[account_id],
                "industry": None,
                "annual_revenue": None,
            }

    def _opportunities(self, first: int, last: int, owners: dict[int, int]) -> Iterator[dict[str, Any]]:
        for account_id in range(first, last + 1):
            closed = self.rng.random() < 0.5
            yield {
                "id": account_id,
                "source": "bench",
                "external_id": f"BO{account_id:07d}",
                "url": None,
                "deleted": False,
                "content_hash": None,
                "crm_modified_at": None,
                "synced_at": self.end,
                "account_id": account_id,
                "owner_id": owners[account_id],
                "name": f"Deal {account_id}",
                "stage": "Closed Won" if closed else "Proposal",
                "amount": self.rng.choice([5000, 25000, 80000, 250000]),
                "close_date": AS_OF + timedelta(days=60),
                "is_closed": closed,
                "is_won": closed,
            }

    def _strategies(self, strategies: dict[int, int], owners: dict[int, int]) -> Iterator[dict[str, Any]]:
        for account_id, strategy_id in strategies.items():
            yield {
                "id": strategy_id,
                "account_id": account_id,
                "author_id": owners[account_id],
                "opportunity_id": None,
                "objective": "Cut the customer's order-to-cash time in half",
                "customer_view": "",
                "approach": "",
                "success_measure": "",
                "target_date": AS_OF + timedelta(days=120),
                "review_date": AS_OF + timedelta(days=self.rng.randint(-60, 90)),
                "status": self.rng.choice(STATUSES),
                "version": 1,
                "created_at": self.end,
                "updated_at": self.end,
                "source": None,
                "external_id": None,
                "last_import": None,
            }

    def _activities(
        self, first: int, in_time_order: list[int], ages: array[int], owners: dict[int, int]
    ) -> Iterator[dict[str, Any]]:
        for position, index in enumerate(in_time_order):
            activity_id = self.activities + position + 1
            account_id = first + index // self.per_account
            yield {
                "id": activity_id,
                "source": "bench",
                "external_id": f"BT{activity_id:09d}",
                "url": None,
                "deleted": self.rng.random() < 0.02,
                "content_hash": None,
                "crm_modified_at": None,
                "synced_at": self.end,
                "account_id": account_id,
                "owner_id": owners[account_id],
                "opportunity_id": None,
                "kind": self.rng.choice(KINDS),
                "direction": "outbound",
                "occurred_at": self.end - timedelta(seconds=ages[index]),
                "subject": "Follow-up",
            }

    def _links(
        self, first: int, in_time_order: list[int], strategies: dict[int, int]
    ) -> Iterator[dict[str, Any]]:
        # Two activities in three of an account with a strategy are linked to it: a third of all.
        for position, index in enumerate(in_time_order):
            strategy_id = strategies.get(first + index // self.per_account)
            if strategy_id is not None and index % 3:
                activity_id = self.activities + position + 1
                yield {
                    "id": activity_id,
                    "activity_id": activity_id,
                    "strategy_id": strategy_id,
                    "created_by_id": None,
                    "created_at": self.end,
                }

    def _copy(self, table: Any, rows: Iterator[dict[str, Any]]) -> None:
        if self.postgres:
            self._pg_copy(table, rows)
            return
        for batch in chunks(rows):
            self.connection.execute(insert(table), batch)

    def _pg_copy(self, table: Any, rows: Iterator[dict[str, Any]]) -> None:
        # COPY is several times faster than executemany on PostgreSQL; values go through psycopg's adapters.
        self.connection.commit()
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        columns = [column.name for column in table.columns]
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row([row[name] for name in columns])
        raw.commit()


def baseline_query() -> Any:
    """One GROUP BY counting each account's uncovered activities in the window: the floor for the review."""
    start, end = day_window(AS_OF, WINDOW_DAYS, "UTC")
    covering = and_(
        Strategy.id == Link.strategy_id,
        Strategy.account_id == Activity.account_id,
        Strategy.status.in_(COVERING_STATUSES),
    )
    return (
        select(Activity.account_id, func.count())
        .outerjoin(Link, Link.activity_id == Activity.id)
        .outerjoin(Strategy, covering)
        .where(
            Activity.deleted.is_(False),
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
            Strategy.id.is_(None),
        )
        .group_by(Activity.account_id)
    )


def stale_query() -> Any:
    """The stale rule alone: active strategies past their review date or with no linked activity lately.

    Written as the review's own probe (the account's activities in the 60 days, each one's link looked up
    by activity), so the baseline gets the fastest form of the rule, not a slower one.
    """
    start, end = day_window(AS_OF, STALE_DAYS, "UTC")
    linked_strategy = select(Link.strategy_id).where(Link.activity_id == Activity.id).scalar_subquery()
    recent = (
        select(literal(1))
        .where(
            Activity.account_id == Strategy.account_id,
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
            Activity.deleted.is_(False),
            linked_strategy == Strategy.id,
        )
        .limit(1)
        .correlate(Strategy)
        .scalar_subquery()
    )
    return select(Strategy.id).where(
        Strategy.status == StrategyStatus.ACTIVE,
        or_(Strategy.review_date < AS_OF, recent.is_(None)),
    )


class StatementClock:
    """Record how long each statement an engine runs takes, named by what it does."""

    NAMES = (
        ("DELETE FROM findings", "delete the day's old findings"),
        ("SELECT", "select"),
        ("UPDATE", "update"),
        ("INSERT", "insert"),
    )

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.steps: list[tuple[str, float]] = []
        self._started = 0.0

    def __enter__(self) -> StatementClock:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._start)
        event.listen(self.engine, "after_cursor_execute", self._stop)
        return self

    def __exit__(self, *_: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._start)
        event.remove(self.engine, "after_cursor_execute", self._stop)

    def _start(self, *_: object) -> None:
        self._started = time.perf_counter()

    def _stop(self, _connection: Any, _cursor: Any, statement: str, *_: object) -> None:
        seconds = time.perf_counter() - self._started
        opening = statement.lstrip()
        name = next((label for prefix, label in self.NAMES if opening.startswith(prefix)), "other")
        if "INSERT INTO findings" in statement:  # it opens with its WITH clause
            name = "insert findings (both rules, statuses, resolved)"
        self.steps.append((name, seconds))


def best_of_alternating(
    repeat: int, *works: Callable[[], Any], between: Callable[[], None] | None = None
) -> list[tuple[float, Any]]:
    """Run the works in turn, `repeat` rounds; return each one's shortest time with what that run returned.

    Taking turns, rather than all runs of one and then all of the other, keeps a drift in the machine's
    speed over the measurement from landing on one side of the ratio. `between` runs, untimed, before
    each round.
    """
    best: list[tuple[float, Any]] = [(float("inf"), None) for _ in works]
    for _ in range(repeat):
        if between is not None:
            between()
        for position, work in enumerate(works):
            started = time.perf_counter()
            outcome = work()
            seconds = time.perf_counter() - started
            if seconds < best[position][0]:
                best[position] = (seconds, outcome)
    return best


FINDING_COPY = (
    "review_id, rule, reason, status, account_id, owner_id, strategy_id, uncovered, uncovered_total, "
    "oldest_uncovered_at, strategy_review_date, open_pipeline"
)


def measure(repeat: int) -> dict[str, Any]:
    session = db.session

    # The baselines run with the settings the review gives its own transaction (on PostgreSQL, JIT off:
    # left on, compiling the stale rule's query took longer than running it).
    def baseline() -> int:
        tune_transaction(session)
        rows = session.execute(baseline_query()).all()
        session.rollback()
        return len(rows)

    def rules_baseline() -> int:
        tune_transaction(session)
        rows = session.execute(baseline_query()).all()
        stale = session.execute(stale_query()).all()
        session.rollback()
        return len(rows) + len(stale)

    def floor() -> int:  # how many findings it wrote
        # Both rules' bare SQL, then the review's findings written again as plain rows, under a review
        # row of their own (dated long before, so it is no one's previous review), all rolled back.
        tune_transaction(session)
        session.execute(baseline_query()).all()
        session.execute(stale_query()).all()
        scratch = session.execute(
            insert(Review.__table__)
            .values(as_of=date(1900, 1, 1), window_days=WINDOW_DAYS, min_activities=5, stale_days=STALE_DAYS)
            .returning(Review.__table__.c.id)
        ).scalar_one()
        copied = session.execute(
            text(
                f"INSERT INTO findings ({FINDING_COPY}) SELECT :scratch, {FINDING_COPY.split(', ', 1)[1]} "
                "FROM findings WHERE review_id = (SELECT id FROM reviews WHERE as_of = :as_of)"
            ),
            {"scratch": scratch, "as_of": AS_OF},
        ).rowcount
        session.rollback()
        return int(copied)

    def review() -> list[tuple[str, float]]:
        # Each timed run replaces the review of AS_OF, as a rerun on the same day would.
        with StatementClock(db.engine) as clock:
            run_review(session, AS_OF, window_days=WINDOW_DAYS, stale_days=STALE_DAYS)
            started = time.perf_counter()
            session.commit()
            clock.steps.append(("commit", time.perf_counter() - started))
        session.expire_all()
        return clock.steps

    def vacuum() -> None:
        # Each timed run replaces the day's findings, leaving the old rows dead. PostgreSQL's autovacuum
        # clears them within a minute of a weekly run, but this machine may run with it off (and a run
        # here follows the last within a second): vacuum as it would have, so that no run writes into a
        # table and indexes bloated by the runs before it. SQLite reuses its free pages by itself.
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM (ANALYZE) findings"))

    # Last week's review, so the timed one marks findings new, persisting or resolved as it would weekly.
    run_review(session, AS_OF - timedelta(days=7), window_days=WINDOW_DAYS, stale_days=STALE_DAYS)
    session.commit()
    rules_baseline()  # warm the caches the same way for all of them
    review()  # the floor copies the findings of AS_OF
    (
        (baseline_seconds, accounts_with_uncovered),
        (rules_seconds, _),
        (floor_seconds, floor_findings),
        (review_seconds, steps),
    ) = best_of_alternating(repeat, baseline, rules_baseline, floor, review, between=vacuum)
    findings = session.scalar(
        select(func.count()).select_from(Finding).join(Review).where(Review.as_of == AS_OF)
    )
    session.rollback()
    return {
        "seconds": review_seconds,
        "baseline_seconds": baseline_seconds,
        "ratio": review_seconds / baseline_seconds,
        "rules_baseline_seconds": rules_seconds,
        "rules_ratio": review_seconds / rules_seconds,
        "floor_seconds": floor_seconds,
        "floor_ratio": floor_seconds / baseline_seconds,
        "floor_findings": floor_findings,
        "findings": int(findings or 0),
        "accounts_with_uncovered": accounts_with_uncovered,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=50_000, help="the larger size (default 50,000)")
    parser.add_argument("--activities-per-account", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per size; the best counts")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--force", action="store_true", help="wipe a PostgreSQL database not named *bench*")
    options = parser.parse_args()

    scratch = None
    url = options.database_url
    if url is None:
        scratch = tempfile.TemporaryDirectory(prefix="stratlink-bench-")
        url = f"sqlite:///{scratch.name}/review.sqlite3"
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "postgresql"
        and "bench" not in (parsed.database or "")
        and not options.force
    ):
        raise SystemExit(f"refusing to wipe {parsed.database!r}: use a database named *bench*, or --force")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    small = max(1, options.accounts // 10)
    results: dict[int, dict[str, Any]] = {}
    with app.app_context():
        engine = db.engine
        say(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        with engine.connect() as connection:
            builder = OrgBuilder(connection, options.seed, options.activities_per_account)
            for size in (small, options.accounts):
                started = time.perf_counter()
                builder.grow_to(size)
                say(
                    f"\n{size:,} accounts, {builder.activities:,} activities: "
                    f"built in {time.perf_counter() - started:.1f} s"
                )
                figures = measure(options.repeat * (SMALL_REPEAT_FACTOR if size == small else 1))
                figures.update(accounts=size, activities=builder.activities)
                results[size] = figures
                say(
                    f"  baseline GROUP BY  {figures['baseline_seconds']:8.3f} s  "
                    f"({figures['accounts_with_uncovered']:,} accounts with uncovered activity)"
                )
                say(f"  bare SQL of both rules {figures['rules_baseline_seconds']:8.3f} s")
                say(
                    f"  floor              {figures['floor_seconds']:8.3f} s  (both rules, then writing as "
                    f"many findings; {figures['floor_ratio']:.2f}x the bare aggregate)"
                )
                say(f"  run_review         {figures['seconds']:8.3f} s  ({figures['findings']:,} findings)")
                say(f"  ratio              {figures['ratio']:8.2f}    to the bare aggregate (target <= 1.5)")
                say(f"  ratio              {figures['rules_ratio']:8.2f}    to the bare SQL of both rules")
                for name, seconds in figures.pop("steps"):
                    if seconds >= 0.001:
                        say(f"    {name:<40} {seconds:8.3f} s")
        db.session.remove()
        engine.dispose()

    large, tenth = results[options.accounts], results[small]
    scaling = large["seconds"] / tenth["seconds"]
    data_factor = large["activities"] / tenth["activities"]
    say(
        f"\nscaling: {data_factor:.1f}x the data took {scaling:.2f}x the review time "
        f"(baseline {large['baseline_seconds'] / tenth['baseline_seconds']:.2f}x; target <= 10x)"
    )
    say(f"peak RSS: {peak_rss_mb():.0f} MB")
    if scratch is not None:
        scratch.cleanup()
    print(
        json.dumps(
            {
                "bench": "review",
                "database": make_url(url).get_backend_name(),
                "accounts": large["accounts"],
                "activities": large["activities"],
                "seconds": round(large["seconds"], 4),
                "baseline_seconds": round(large["baseline_seconds"], 4),
                "ratio": round(large["ratio"], 3),
                "rules_baseline_seconds": round(large["rules_baseline_seconds"], 4),
                "rules_ratio": round(large["rules_ratio"], 3),
                "floor_seconds": round(large["floor_seconds"], 4),
                "floor_ratio": round(large["floor_ratio"], 3),
                "floor_findings": large["floor_findings"],
                "findings": large["findings"],
                "small_accounts": tenth["accounts"],
                "small_seconds": round(tenth["seconds"], 4),
                "small_ratio": round(tenth["ratio"], 3),
                "scaling": round(scaling, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
