"""Locks that at most one process holds at a time: the scheduler's leader, and one sync per source.

On PostgreSQL a session-level advisory lock, held on a dedicated connection, elects the leader among any
number of scheduler processes on any number of hosts; PostgreSQL releases it when the leader's session
ends, however it ends, so a standby can take over. (It needs a real session: not through a
transaction-pooling PgBouncer.) On SQLite, where every process shares one file, an exclusive `flock` on
a file next to the database does the same job for the processes of one host. A sync of a source takes
the same kind of lock under its own name, so two syncs of one source never run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# int.from_bytes(b"stratlnk", "big"): a fixed key no other part of StratLink uses.
ADVISORY_LOCK_KEY = 8319400174550806123
SCHEDULER_LOCK = "scheduler"

# A lock's session whose other end falls silent without a reset (a cut network, a frozen host) would stay
# open, and the lock held, until the operating system's TCP keepalive gave up: two hours by default, with
# no standby able to lead. Both ends probe it instead and give up within about a minute: libpq's keepalive
# and user timeout on the client, the same settings for the server's end of the session. The server's are
# set once connected, not as a startup `options`: that would replace the `options` of DATABASE_URL for the
# lock's session, and a session-pooling PgBouncer refuses a startup option it does not know.
_SILENT_PEER_SECONDS = {"keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
_USER_TIMEOUT_MS = 60_000
LOCK_SESSION_ARGS: dict[str, Any] = {
    "keepalives": 1,
    **_SILENT_PEER_SECONDS,
    "tcp_user_timeout": _USER_TIMEOUT_MS,
}
SERVER_SIDE_SETTINGS: dict[str, str] = {
    **{f"tcp_{name}": str(value) for name, value in _SILENT_PEER_SECONDS.items()},
    "tcp_user_timeout": str(_USER_TIMEOUT_MS),
}


class RunnerLock(Protocol):
    """A lock at most one scheduler process holds at a time."""

    description: str
    # Why the last acquire() failed when not because another holds the lock (the database unreachable).
    problem: str | None

    def acquire(self) -> bool:
        """Take the lock if it is free; never wait."""
        ...

    def still_held(self) -> bool:
        """Tell whether the lock is still ours (the connection holding it may have died)."""
        ...

    def release(self) -> None:
        """Give the lock up; safe to call when not held."""
        ...


class FileLock:
    """An exclusive, non-blocking `flock` on a file; the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file lock {path}"
        self.problem: str | None = None  # a file that cannot be opened raises instead
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115  (held open for as long as we lead)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
            self._file = None


class ProcessLock:
    """A lock of this process by name, for a database in memory: no other process can reach it, and a
    file to lock would be left behind."""

    _held: set[str] = set()
    _guard = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"lock {name!r} of process {os.getpid()}"
        self.problem: str | None = None
        self._holding = False

    def acquire(self) -> bool:
        if self._holding:
            return True
        with self._guard:
            if self.name in self._held:
                return False
            self._held.add(self.name)
        self._holding = True
        return True

    def still_held(self) -> bool:
        return self._holding

    def release(self) -> None:
        if not self._holding:
            return
        with self._guard:
            self._held.discard(self.name)
        self._holding = False


class PostgresAdvisoryLock:
    """A session-level `pg_try_advisory_lock` held on a connection of its own."""

    def __init__(self, database_url: str, key: int = ADVISORY_LOCK_KEY, name: str = SCHEDULER_LOCK) -> None:
        self.database_url = database_url
        self.key = key
        self.description = f"PostgreSQL advisory lock {key}"
        # Shown in pg_stat_activity, so an operator can tell whose session holds which lock.
        self.application_name = f"stratlink {name} lock {socket.gethostname()}:{os.getpid()}"[:63]
        self.problem: str | None = None
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        if self._connection is not None:
            return True
        # NullPool: the connection is really closed when we let go, so the session (and its lock) ends.
        engine = create_engine(
            self.database_url,
            poolclass=NullPool,
            connect_args={"application_name": self.application_name, **LOCK_SESSION_ARGS},
        )
        try:
            connection = engine.connect()
            settings = (func.set_config(name, value, False) for name, value in SERVER_SIDE_SETTINGS.items())
            connection.execute(select(*settings))
            taken = bool(connection.execute(select(func.pg_try_advisory_lock(self.key))).scalar())
            # Session-level: the lock outlives this transaction; ending it keeps the connection idle.
            connection.commit()
        except DBAPIError as error:
            log.warning("cannot reach the database to take %s: %s", self.description, error.orig)
            self.problem = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
            engine.dispose()
            return False
        self.problem = None
        if not taken:
            connection.close()
            engine.dispose()
            return False
        self._engine, self._connection = engine, connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except DBAPIError:
            self._forget()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            # If the session is already gone, its lock went with it.
            with contextlib.suppress(DBAPIError):
                self._connection.execute(select(func.pg_advisory_unlock(self.key)))
                self._connection.commit()
        finally:
            self._forget()

    def _forget(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(DBAPIError):
                self._connection.close()
        if self._engine is not None:
            self._engine.dispose()
        self._connection = None
        self._engine = None


def advisory_key(name: str) -> int:
    """Return the advisory lock key of the lock called `name`: the scheduler's fixed key, or one derived
    from the name (a signed 64-bit integer, as PostgreSQL takes them)."""
    if name == SCHEDULER_LOCK:
        return ADVISORY_LOCK_KEY
    digest = hashlib.blake2b(f"stratlink {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_for(database_url: str, name: str = SCHEDULER_LOCK) -> RunnerLock:
    """Pick the lock called `name` for this database: an advisory lock on PostgreSQL, a file lock next to
    the database file for SQLite, and for a database in memory, which only this process can reach, a lock
    of this process."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(database_url, advisory_key(name), name)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        return FileLock(database.with_name(f"{database.name}.{name}.lock"))
    return ProcessLock(name)
