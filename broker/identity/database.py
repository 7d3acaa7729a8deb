"""The identity database: ``users.sqlite`` in the data directory.

Three tables, one file, so that an act and what it implies are one transaction (a
user disabled and their sessions ended; an account locked and its record written):

- ``users``: one row per user: agency, role, Argon2id hash, TOTP secret and the last
  time step accepted from it, consecutive failures, when locked, disabled, created;
- ``sessions``: one row per signed-in session, keyed by the SHA-256 of its id (the id
  itself is never stored), with its CSRF token and its times;
- ``user_events``: the record of every administrative act on a user and of every
  lockout (``broker.identity.users``), append-only: triggers refuse an update or a
  delete.

The file holds password hashes and TOTP secrets: it is made 0600 before SQLite opens
it, with its WAL files (``broker.files.private``). Timestamps are
``schemas.common.format_timestamp``'s fixed-width UTC text, so they sort as they
compare.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from broker.files.migrations import Migration, Schema, SqliteTarget, run_script, upgrade
from broker.gateway.store import shared_database

IDENTITY_FILE = "users.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    agency TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step INTEGER,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_at TEXT,
    disabled_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username);
CREATE TABLE IF NOT EXISTS user_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    act TEXT NOT NULL,
    username TEXT NOT NULL,
    agency TEXT NOT NULL,
    role TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS user_events_no_update BEFORE UPDATE ON user_events
BEGIN SELECT RAISE(ABORT, 'user_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS user_events_no_delete BEFORE DELETE ON user_events
BEGIN SELECT RAISE(ABORT, 'user_events is append-only'); END;
"""


def _create_tables(db: sqlite3.Connection) -> None:
    """Step 1: the tables and triggers, where missing, as every open made them before
    versions existed."""
    run_script(db.execute, _SCHEMA)


# The identity database's layout, step by step (``broker.files.migrations``).
SCHEMA: Schema[sqlite3.Connection] = Schema(
    store="identity database",
    markers=frozenset({"users", "sessions", "user_events"}),
    migrations=(Migration(1, "users, sessions and user events, where missing", _create_tables),),
)


def identity_path(data_dir: Path) -> Path:
    """Where the identity database lives in ``data_dir``."""
    return data_dir / IDENTITY_FILE


class IdentityDatabase:
    """The connection to ``users.sqlite`` (module docstring), shared by the user store
    and the session store of one process. Usable from several threads (a web server's
    worker pool): each transaction holds the connection alone. A context manager that
    closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The console reads it on every request while `mappa users` writes it.
        self._db = shared_database(path)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA foreign_keys=ON")
        try:
            upgrade(SCHEMA, self._db, SqliteTarget(self._db))
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction (``BEGIN IMMEDIATE``): committed
        if the block ends normally, rolled back if it raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.rollback()
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads outside a transaction."""
        with self._lock:
            yield self._db

    def close(self) -> None:
        """Close the connection; the database is unusable afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> IdentityDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def end_sessions(db: sqlite3.Connection, username: str) -> int:
    """Delete every session of ``username`` on ``db`` (inside the caller's transaction);
    returns how many there were. The one place a session ends because of what happened
    to its user (disabled, reset), so the user store need not know the session table."""
    return db.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount
