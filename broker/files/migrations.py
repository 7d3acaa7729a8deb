"""Numbered schema migrations, for every database the product keeps: the agency stores,
the credential store and the identity database (SQLite), and the audit ledger (SQLite
or PostgreSQL).

Each store declares its ``Schema``: an ordered list of ``Migration`` steps numbered
1, 2, 3, ... with no gap. The database records every step applied, in a table of its own:

``schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)``

and its version is the highest recorded (0 if none). The same table in both dialects,
so one query answers on SQLite and PostgreSQL alike, and the history says when each
step ran.

What ``upgrade`` does with a database, by what it finds:

1. a version table: the steps above its version are pending;
2. no version table and no table at all: a new database; every step is pending, so a
   new database gets the latest layout by the same steps as an old one;
3. no version table but one of the store's ``markers`` tables: a database from before
   versions existed (version 0); every step is pending. The first steps of each store
   are what every open did before versions existed, and are written to leave alone what
   they find done already;
4. no version table and tables, none of them a marker: someone else's database (another
   store's file, a copy gone wrong). Refused: ``UnknownLayout`` (``store.unknown-layout``),
   nothing written;
5. a version higher than the code's latest: written by a newer release. Refused:
   ``NewerLayout`` (``store.newer-version``), nothing written; an older release must
   not write a layout it does not know.

Each pending step runs in a transaction of its own with its record, so a step that
fails leaves the database at the version before it, and the next open tries it again.
Inside the transaction the version is read again: another process may have applied the
step first (SQLite takes the write lock at ``BEGIN IMMEDIATE``; on PostgreSQL the step
first takes a transaction-scoped advisory lock, ``MIGRATION_LOCK``). Every step applied
is logged (event ``schema.migrated``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from broker.errors import ConfigurationError
from schemas.common import format_timestamp

log = logging.getLogger(__name__)

VERSION_TABLE = "schema_migrations"
_VERSION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
# PostgreSQL's advisory lock key for migrations (any constant; "mappa" in ASCII): two
# ledger services started at once apply each step once, the second waiting.
MIGRATION_LOCK = 0x6D61707061
# Tables SQLite makes by itself, which say nothing about whose database it is.
_INTERNAL_TABLES = frozenset({"sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})


class UnknownLayout(ConfigurationError):
    """A database with tables but no schema version, which is not this store's."""

    code = "store.unknown-layout"


class NewerLayout(ConfigurationError):
    """A database at a schema version higher than this release knows."""

    code = "store.newer-version"


class Target(Protocol):
    """What the runner needs of a connection: the ledger's ``Database`` is one, and
    ``SqliteTarget`` makes one of a plain SQLite connection."""

    @property
    def dialect(self) -> str: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractContextManager[Any]: ...


class SqliteTarget:
    """A SQLite connection (in autocommit mode, ``isolation_level=None``) as a
    ``Target``: its transactions take the write lock at once (``BEGIN IMMEDIATE``)."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; returns its rows."""
        return self.connection.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what runs inside, or roll it back if it raises."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")


C = TypeVar("C")


@dataclass(frozen=True)
class Migration(Generic[C]):
    """One numbered step: ``apply`` runs inside the step's transaction, on the store's
    own connection (``C``). ``around``, if set, wraps the transaction, for what cannot
    run inside one (a SQLite pragma, a WAL checkpoint after the commit)."""

    version: int
    # What the step does, one line: recorded with it and shown by `mappa migrate status`.
    name: str
    apply: Callable[[C], None]
    around: Callable[[C], AbstractContextManager[None]] | None = None


@dataclass(frozen=True)
class Schema(Generic[C]):
    """A store's migrations, in order (module docstring)."""

    # The store, as messages name it ("agency store", "audit ledger").
    store: str
    # Tables a database of this store holds one of at least, in every layout it has had
    # (and no other store's database holds any of).
    markers: frozenset[str]
    # Every step that was applied on every open before versions existed (the first few
    # of each store) may find its work done already, and must leave it alone.
    migrations: tuple[Migration[C], ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.store}: migrations must be numbered 1..n, got {numbers}")

    @property
    def latest(self) -> int:
        """The version a database has once every step is applied."""
        return len(self.migrations)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its version (0: none recorded), the latest this release
    knows, the steps pending (version and name), and what it holds (``new``: nothing at
    all; ``unversioned``: a layout from before versions)."""

    store: str
    version: int
    latest: int
    pending: tuple[tuple[int, str], ...]
    state: str  # "new", "unversioned", "current" or "behind"


def table_names(target: Target) -> set[str]:
    """The tables ``target`` holds (on PostgreSQL, in the schema it is using)."""
    if target.dialect == "postgresql":
        rows = target.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        rows = target.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(row[0]) for row in rows}


def recorded_version(target: Target) -> int:
    """The highest step recorded in ``target`` (0 if none). The version table must exist."""
    return int(target.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}")[0][0])  # noqa: S608


def status(schema: Schema[C], target: Target) -> SchemaStatus:
    """Where ``target`` stands against ``schema``, read without writing. Raises
    ``UnknownLayout`` or ``NewerLayout`` as the module docstring says."""
    tables = table_names(target) - _INTERNAL_TABLES
    if VERSION_TABLE in tables:
        version = recorded_version(target)
        state = "current" if version == schema.latest else "behind"
    elif not tables:
        version, state = 0, "new"
    elif tables & schema.markers:
        version, state = 0, "unversioned"
    else:
        raise UnknownLayout(
            f"this database holds no {schema.store} (none of its tables, and no schema "
            "version): check the path or URL; it has been left as it is"
        )
    if version > schema.latest:
        raise NewerLayout(
            f"the {schema.store} is at schema version {version}, newer than this release "
            f"knows ({schema.latest}): run the release that wrote it, or a later one"
        )
    pending = tuple((m.version, m.name) for m in schema.migrations[version:])
    return SchemaStatus(schema.store, version, schema.latest, pending, state)


def upgrade(schema: Schema[C], connection: C, target: Target) -> list[int]:
    """Apply ``schema``'s pending steps to the database, each in a transaction of its own
    with its record (module docstring); returns the versions applied here (none if it
    was current, or another process applied them first). ``connection`` is what the
    steps are given; ``target`` the same database as the runner uses it. Raises
    ``UnknownLayout`` or ``NewerLayout`` before writing anything, and whatever a failing
    step raises, after rolling that step back."""
    applied: list[int] = []
    for version, _ in status(schema, target).pending:
        step = schema.migrations[version - 1]
        around = step.around(connection) if step.around is not None else nullcontext()
        with around, target.transaction():
            if target.dialect == "postgresql":
                target.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            target.execute(_VERSION_DDL)
            current = recorded_version(target)
            if current >= version:
                continue  # another process applied it first
            if current != version - 1:
                raise NewerLayout(
                    f"the {schema.store} moved to schema version {current} while opening"
                )
            step.apply(connection)
            target.execute(
                f"INSERT INTO {VERSION_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",  # noqa: S608
                (version, step.name, format_timestamp(datetime.now(UTC))),
            )
        applied.append(version)
        # The event's fields for a structured log; the text for a plain one.
        log.info(
            "schema.migrated: %s to version %d (%s)",
            schema.store,
            version,
            step.name,
            extra={"event": "schema.migrated", "store": schema.store, "version": version},
        )
    return applied


def statements(script: str) -> list[str]:
    """The statements of ``script`` (``;``-separated DDL, triggers whole), one each, so a
    step can run them inside its transaction: SQLite's ``executescript`` would commit
    first."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def run_script(target: Callable[[str], object], script: str) -> None:
    """Run every statement of ``script`` through ``target`` (an ``execute``), in order."""
    for statement in statements(script):
        target(statement)
