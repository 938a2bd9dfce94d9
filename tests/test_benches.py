"""The benchmark scripts still run, at a toy size, and end with the line of JSON figures tools read.

Their figures mean nothing at this size; what is checked is that a change to the schema or the code they
drive has not broken them (CI runs no benchmark otherwise), on SQLite and, in the PostgreSQL pass, on
PostgreSQL, whose bulk-load paths differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
# What every benchmark's JSON line holds (DESIGN.md, "Benchmarks").
CONTRACT = {"bench", "seconds", "baseline_seconds", "ratio", "peak_rss_mb"}

TOY_RUNS = {
    "review": ["--accounts", "60", "--repeat", "1"],
    "ingest": ["--rows", "600", "--accounts", "30"],
    "sync_salesforce": ["--accounts", "20", "--page-size", "200"],
}


def run_bench(name: str, scratch: Path, *arguments: str) -> dict[str, Any]:
    """Run a benchmark at its toy size with `scratch` as its temporary folder, which it must leave empty."""
    done = subprocess.run(  # noqa: S603 (our own scripts, run with our own interpreter)
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *TOY_RUNS[name], *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # A full-size run writes a database of hundreds of MB; every run must take its files away.
    assert sorted(path.name for path in scratch.iterdir()) == []
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) >= CONTRACT, CONTRACT - set(figures)
    assert figures["bench"] == name
    assert figures["seconds"] > 0 and figures["baseline_seconds"] > 0
    return figures


@pytest.fixture
def bench_database(postgres: str) -> Iterator[str]:
    """A scratch PostgreSQL database beside the test one, named *bench* as the scripts require."""
    url = make_url(postgres)
    name = f"{url.database}_smoke_bench"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.mark.parametrize("name", sorted(TOY_RUNS))
def test_each_benchmark_runs_on_sqlite(name, tmp_path):
    figures = run_bench(name, tmp_path)

    assert figures["database"] == "sqlite"


def test_the_review_benchmark_counts_what_it_built(tmp_path):
    figures = run_bench("review", tmp_path)

    assert (figures["accounts"], figures["small_accounts"], figures["activities"]) == (60, 6, 1200)
    assert figures["findings"] > 0
    assert figures["floor_findings"] == figures["findings"]  # the floor writes as many rows as the review


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(TOY_RUNS))
def test_each_benchmark_runs_on_postgresql(name, bench_database, tmp_path):
    figures = run_bench(name, tmp_path, "--database-url", bench_database)

    assert figures["database"] == "postgresql"
