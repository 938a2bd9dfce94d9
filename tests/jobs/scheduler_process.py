"""A scheduler process for the tests: the real run loop with the review every second.

python -m tests.jobs.scheduler_process DATABASE_URL
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from apscheduler.triggers.interval import IntervalTrigger

from app import create_app
from jobs.scheduler import JobSpec, run_scheduler


def main(database_url: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": "test-secret-key",
            "STRATLINK_SOURCE": "demo",
        }
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    jobs = [
        JobSpec(
            "review", "jobs.tasks:review_job", IntervalTrigger(seconds=1, start_date=anchor, timezone=UTC)
        )
    ]
    run_scheduler(app, jobs=jobs, stop=stop, retry_seconds=0.2, heartbeat_seconds=0.2)


if __name__ == "__main__":
    main(sys.argv[1])
