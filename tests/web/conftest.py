"""Fixtures for page tests: a small sales org, a live server, and a headless Chromium page.

The live server runs the test app in a thread with its own database sessions, so it sees only
committed rows: build the data, call `db.commit()`, then browse (the `live_server` fixture commits
what exists when it starts).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from planning.models import Account, Role, User
from tests.conftest import skip_or_fail
from tests.factories import make_account, make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class SmallOrg:
    """A VP over two managers, each with reps, plus an admin; one account per rep."""

    vp: User
    east: User
    west: User
    ann: User
    amir: User
    bob: User
    admin: User
    ann_account: Account
    amir_account: Account
    bob_account: Account


@pytest.fixture
def org(db: Session) -> SmallOrg:
    vp = make_user(db, role=Role.MANAGER, name="Vera Park", email="vera@example.com")
    east = make_user(db, role=Role.MANAGER, manager=vp, name="Eli East", email="eli@example.com")
    west = make_user(db, role=Role.MANAGER, manager=vp, name="Wendy West", email="wendy@example.com")
    ann = make_user(db, manager=east, name="Ann Archer", email="ann@example.com")
    amir = make_user(db, manager=east, name="Amir Aziz", email="amir@example.com")
    bob = make_user(db, manager=west, name="Bob Brand", email="bob@example.com")
    admin = make_user(db, role=Role.ADMIN, name="Ada Admin", email="ada@example.com")
    return SmallOrg(
        vp=vp,
        east=east,
        west=west,
        ann=ann,
        amir=amir,
        bob=bob,
        admin=admin,
        ann_account=make_account(db, owner=ann, name="Anvil Works"),
        amir_account=make_account(db, owner=amir, name="Amber Foods"),
        bob_account=make_account(db, owner=bob, name="Bluebird Freight"),
    )


@pytest.fixture
def live_server(app: Any, db: Session) -> Iterator[str]:
    """Serve the test app on 127.0.0.1 (a free port) in a daemon thread; yield its base URL."""
    # The server's threads open their own connections: they see committed rows only.
    db.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()


@pytest.fixture
def page(live_server: str) -> Iterator[Any]:
    """A headless Chromium page (Debian's chromium, never a downloaded one) aimed at the live server."""
    if not CHROMIUM.exists():
        skip_or_fail("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
