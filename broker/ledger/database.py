"""The ledger's database connection: SQLite by path, PostgreSQL by URL, one interface.

Statements are written once with ``?`` placeholders; the PostgreSQL connection
rewrites them to psycopg's ``%s``. Where the two dialects differ (types, upserts,
JSON access) the store asks ``dialect`` and says so next to the SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from broker.errors import ConfigurationError, StoreUnavailable, sqlite_unavailable
from broker.files.private import private_file

if TYPE_CHECKING:  # imported when a PostgreSQL URL is used: SQLite needs no driver
    import psycopg

Dialect = Literal["sqlite", "postgresql"]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
CACHE_KIB = 256 * 1024
# Big pages: a block of entries (about 55 KB) spans 4 pages, not 14.
PAGE_SIZE = 16384
# How often the checkpointer copies committed pages from the WAL into the database.
CHECKPOINT_EVERY_S = 0.05
# A scan (verify) maps the file instead: SQLite then reads pages in place rather than
# copying each into its cache first, which is most of the cost of reading a block.
SCAN_MMAP_BYTES = 1 << 40  # SQLite caps it at its own compile-time limit
# What opening a WAL database read-only reports when its WAL index cannot be made.
_NO_SHARED_INDEX = frozenset(
    {sqlite3.SQLITE_READONLY_DIRECTORY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}
)


class Database:
    """One connection to the ledger's database, in either dialect (``dialect``), with
    ``?`` placeholders in both. The driver's own errors (sqlite3 / psycopg) pass through
    every method unchanged, but for a database that cannot be used just now: a SQLite
    file locked past the busy timeout, full or failing, a PostgreSQL server or connection
    that fails (``StoreUnavailable``: see ``PostgresDatabase``)."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with ``params``; returns its rows (none if it has no result)."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once for each of ``rows``. Returns nothing."""
        raise NotImplementedError

    def script(self, sql: str) -> None:
        """Run ``;``-separated statements without parameters. Returns nothing."""
        raise NotImplementedError

    def transaction(self) -> Any:
        """A context manager: what runs inside commits on exit, or is rolled back if it
        raises (the exception then propagates)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection. Returns nothing."""
        raise NotImplementedError


class SqliteDatabase(Database):
    """A SQLite file (created if missing), in WAL mode with full syncs, one connection
    shared between threads under a lock. ``scan``: read-only and memory-mapped, for one
    pass over the log; raises ``ConfigurationError`` (``config.invalid``) if there is no
    file to scan."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, scan: bool = False, read_only: bool = False) -> None:
        read_only = read_only or scan
        if read_only and not path.is_file():  # a reader reads a ledger; it never starts one
            raise ConfigurationError(f"no ledger database at {path}")
        if not read_only:
            # The audit trail names people: the service user's alone
            # (``broker.files.private``).
            # A reader may run where it cannot change the file.
            private_file(path)
        self.path = path
        # A web server answers from worker threads: one connection, used under a lock.
        self._lock = threading.RLock()
        if read_only:
            self._db = _open_read_only(path)
        else:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # on a new file only
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed audit record survives power loss; batches keep it cheap.
            self._db.execute("PRAGMA synchronous=FULL")
        if read_only:
            self._db.execute("PRAGMA query_only=1")
        if scan:
            # Reads every page once: a big cache would only be filled, never re-read.
            self._db.execute(f"PRAGMA mmap_size={SCAN_MMAP_BYTES}")
        else:
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        # Readers and the checkpointer share the file: wait for a lock rather than fail.
        self._db.execute("PRAGMA busy_timeout=10000")
        self._checkpointer: _Checkpointer | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """As ``Database.execute``, under the connection's lock."""
        with self._lock, sqlite_unavailable():
            return self._db.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """As ``Database.executemany``, under the connection's lock."""
        with self._lock, sqlite_unavailable():
            self._db.executemany(sql, rows)

    def script(self, sql: str) -> None:
        """As ``Database.script``, under the connection's lock."""
        with self._lock, sqlite_unavailable():
            self._db.executescript(sql)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """As ``Database.transaction`` (``BEGIN IMMEDIATE``), holding the connection's
        lock throughout; the first one starts the WAL checkpointer thread."""
        with self._lock:
            if self._checkpointer is None:
                # This connection writes: hand WAL checkpoints to a thread of their own.
                self._checkpointer = _Checkpointer(self.path)
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            with sqlite_unavailable():
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                with sqlite_unavailable():
                    self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Stop the WAL checkpointer, if started, and close the connection."""
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            self._db.close()


class _Checkpointer:
    """Copies committed pages from the WAL into the database file, on its own thread and
    connection, so a commit only appends to the WAL and syncs it once.

    Left to SQLite, the committing connection runs each checkpoint itself: every page is
    written twice on the append path. Here the second write overlaps the next batch.
    A checkpoint never loses anything: the WAL is the committed copy until it has run.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=1000")
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                # PASSIVE: never blocks the writer or readers; copies what it can.
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        """End the thread after its current checkpoint; returns once it has ended."""
        self._stopping.set()
        self._thread.join()


class PostgresDatabase(Database):
    """A PostgreSQL server by URL, autocommitting outside ``transaction``. Raises
    ``ConfigurationError`` (``config.invalid``) if it does not answer at first; the
    message names the host, never the password the URL may carry. ``read_only``: every
    connection's session is read-only (``SET SESSION CHARACTERISTICS``), so the server
    refuses any statement that would write, whatever the role's rights; for readers.

    It outlives an outage of the server: a call that finds the connection lost (or the
    server refusing to work: psycopg's ``OperationalError`` and ``InterfaceError``)
    raises ``StoreUnavailable``, the lost connection is dropped, and the next call opens a
    new one. Never inside ``transaction``: what ran in it is gone with the connection, so
    the whole unit fails with ``StoreUnavailable`` for the caller to run again."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        import psycopg

        self._url = url
        self._read_only = read_only
        # Reconnecting is shared state: the ledger's poller and the API's threads use it.
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._transactions = 0
        self._closed = False
        try:
            self._conn = self._open()
        except psycopg.OperationalError as exc:
            raise ConfigurationError(
                f"cannot connect to the ledger database at {self._where}"
            ) from exc

    def _open(self) -> psycopg.Connection[Any]:
        """A new connection, its session made read-only first if this one is. Raises
        psycopg's ``OperationalError`` if the server does not answer."""
        import psycopg

        conn = psycopg.connect(self._url, autocommit=True)
        if self._read_only:
            # Set after connecting rather than as ``options`` in the URL, which would
            # replace any the operator's URL carries (a search_path).
            try:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            except BaseException:
                conn.close()
                raise
        return conn

    @property
    def _where(self) -> str:
        # The URL may carry a password: name the host part only.
        return self._url.rsplit("@", maxsplit=1)[-1].split("?", maxsplit=1)[0]

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, or a new one if the last was lost outside a transaction.
        Raises ``StoreUnavailable`` if the server does not answer, or the connection was
        lost inside a transaction still open; ``RuntimeError`` after ``close``."""
        import psycopg

        with self._lock:
            if self._closed:
                raise RuntimeError("the ledger database connection is closed")
            if self._conn is None:
                if self._transactions:
                    raise StoreUnavailable(
                        "the connection to the ledger database was lost in a transaction; "
                        "run it again"
                    )
                try:
                    self._conn = self._open()
                except psycopg.OperationalError as exc:
                    raise StoreUnavailable(
                        f"the ledger database at {self._where} does not answer; retry later"
                    ) from exc
            return self._conn

    @contextmanager
    def _unavailable(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """psycopg's operational and interface errors as ``StoreUnavailable``; a connection
        they left broken or closed is dropped, for the next call to replace."""
        import psycopg

        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if conn.broken or conn.closed:
                with self._lock:
                    if self._conn is conn:
                        self._conn = None
                conn.close()
            raise StoreUnavailable(
                f"the ledger database at {self._where} failed ({type(exc).__name__}); retry later"
            ) from exc

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """As ``Database.execute``, with ``?`` rewritten to psycopg's ``%s``; raises
        ``StoreUnavailable`` as the class docstring says."""
        conn = self._connection()
        with self._unavailable(conn), conn.cursor() as cur:
            cur.execute(self._sql(sql), params)
            return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """As ``Database.executemany``, with ``?`` rewritten to psycopg's ``%s``; raises
        ``StoreUnavailable`` as the class docstring says."""
        conn = self._connection()
        with self._unavailable(conn), conn.cursor() as cur:
            cur.executemany(self._sql(sql), rows)

    def script(self, sql: str) -> None:
        """As ``Database.script``: one statement at a time, split at every ``;``."""
        for statement in sql.split(";"):
            if statement.strip():
                self.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """As ``Database.transaction`` (psycopg's transaction block); raises
        ``StoreUnavailable`` if the connection is lost in it, never reconnecting until it
        has ended."""
        conn = self._connection()
        with self._lock:
            self._transactions += 1
        try:
            with self._unavailable(conn), conn.transaction():
                yield
        finally:
            with self._lock:
                self._transactions -= 1

    def close(self) -> None:
        """Close the connection; the database is unusable afterwards."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path``, nor anything beside it that exists.

    SQLite opens a WAL database read-only (``mode=ro``) if it can share the WAL index
    (``-shm``), creating it if need be. In a folder the reader may not write, with no
    WAL left by a writer, there is nothing to share: every committed page is in the file
    itself, so it is read as it stands (``immutable``), which needs no index and takes
    no lock. With a WAL there but no way to share it, reading the file alone would miss
    what the WAL holds: refused, in one line."""
    uri = f"file:{quote(str(path.resolve()))}"
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.OperationalError as exc:
        db.close()
        if exc.sqlite_errorcode not in _NO_SHARED_INDEX:
            raise
    else:
        return db
    if path.with_name(path.name + "-wal").exists():
        raise ConfigurationError(
            f"cannot read {path} read-only: its write-ahead log cannot be shared from here "
            "(run as the ledger's owner, or once the ledger service has stopped)"
        )
    immutable = f"{uri}?mode=ro&immutable=1"
    return sqlite3.connect(immutable, uri=True, isolation_level=None, check_same_thread=False)


def connect(
    target: str | Path, *, scan: bool = False, read_only: bool = False
) -> SqliteDatabase | PostgresDatabase:
    """A connection to ``target``: a PostgreSQL URL, or a SQLite file path. ``scan``: a
    read-only connection for one pass over the whole log (verify; memory-mapped on
    SQLite). ``read_only``: a connection that writes nothing (the officer's `mappa
    audit`): on SQLite not even the WAL mode, on an existing file; on PostgreSQL a
    session whose every transaction the server holds read-only.

    Raises ``ConfigurationError`` (``config.invalid``) for a URL of another scheme, a
    PostgreSQL server that does not answer, or a SQLite file to scan that does not exist."""
    if isinstance(target, str) and target.startswith(POSTGRES_SCHEMES):
        return PostgresDatabase(target, read_only=read_only or scan)
    if isinstance(target, str) and "://" in target:
        raise ConfigurationError(
            f"unsupported ledger database URL scheme {target.split('://')[0]!r}: "
            "use postgresql://... or a SQLite file path"
        )
    return SqliteDatabase(Path(target), scan=scan, read_only=read_only)
