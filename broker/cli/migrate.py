"""`mappa migrate status|up`: the schema version of every database of a deployment, and
the upgrade to this release's layouts.

The databases are those of the data directory (``--data-dir`` / MAPPA_DATA_DIR) that
exist: each agency's store (``agencies/*.sqlite``), the credential store, the identity
database, and the ledger (``ledger.sqlite``, or the PostgreSQL database of
``--database-url`` / MAPPA_DATABASE_URL). None is created here.

Every store upgrades itself when it is opened (``broker.files.migrations``), so ``up`` is
what ``mappa serve`` and ``mappa ledger serve`` would do at start; run it first to
upgrade at a time of your choosing (a central PostgreSQL ledger, before rolling the new
release out), and ``status`` to see what is pending, read without writing. A database
that a newer release wrote, or that is not the store it is named as, is refused
(``store.newer-version``, ``store.unknown-layout``) and left as it is; either makes
the command exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker.api.credentials import SCHEMA as CREDENTIALS_SCHEMA
from broker.api.credentials import CredentialStore, credentials_path
from broker.cli import exits
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.errors import MappaError
from broker.files.migrations import Schema, SchemaStatus, status
from broker.gateway.store import SCHEMA as AGENCY_SCHEMA
from broker.gateway.store import AgencyStore
from broker.identity.database import SCHEMA as IDENTITY_SCHEMA
from broker.identity.database import IdentityDatabase, identity_path
from broker.ledger.database import connect
from broker.ledger.schema import SCHEMA as LEDGER_SCHEMA
from broker.ledger.schema import check_layout
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.trust.provision import DataPaths


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("migrate", help="schema versions of the deployment's databases")
    group.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="deployment data directory (MAPPA_DATA_DIR)"
    )
    group.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL ledger URL, postgresql://... (MAPPA_DATABASE_URL; default: the "
        "data directory's ledger.sqlite)",
    )
    cmds = group.add_subparsers(dest="migrate_command", required=True)
    shown = cmds.add_parser("status", help="each database's version and pending steps")
    shown.add_argument("--json", action="store_true", help=JSON_HELP)
    shown.set_defaults(handler=cmd_status)
    up = cmds.add_parser("up", help="apply every pending step, database by database")
    up.add_argument("--json", action="store_true", help=JSON_HELP)
    up.set_defaults(handler=cmd_up)


class _Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Database:
    """One database of the deployment: what it is, where, its schema, and the class this
    release opens it with for writing (which applies its pending steps)."""

    label: str
    where: Path | str
    schema: Schema[Any]
    opener: Callable[[Any], _Closable]


def _databases(settings: Settings) -> list[_Database]:
    paths = DataPaths(settings.data_dir)
    agencies = paths.root / "agencies"
    stores = sorted(agencies.glob("*.sqlite")) if agencies.is_dir() else []
    found = [_Database(f"agency store {p.stem}", p, AGENCY_SCHEMA, AgencyStore) for p in stores]
    credentials = credentials_path(paths.root)
    if credentials.exists():
        found.append(
            _Database("credential store", credentials, CREDENTIALS_SCHEMA, CredentialStore)
        )
    identity = identity_path(paths.root)
    if identity.exists():
        found.append(_Database("identity database", identity, IDENTITY_SCHEMA, IdentityDatabase))
    ledger: Path | str | None = settings.database_url
    if ledger is None and paths.ledger.exists():
        ledger = paths.ledger
    if ledger is not None:
        found.append(_Database("audit ledger", ledger, LEDGER_SCHEMA, LedgerStore))
    return found


def _where(database: _Database) -> str:
    if isinstance(database.where, Path):
        return str(database.where)
    # A URL may carry a password: its host part only.
    return database.where.rsplit("@", maxsplit=1)[-1].split("?", maxsplit=1)[0]


def _status(database: _Database) -> SchemaStatus:
    """Where ``database`` stands, read without writing."""
    db = connect(database.where, read_only=True)
    try:
        if database.schema is LEDGER_SCHEMA:
            check_layout(db)
        return status(database.schema, db)
    finally:
        db.close()


def _row(database: _Database, **fields: Any) -> dict[str, Any]:
    return {"database": database.label, "where": _where(database), **fields}


def _refused(database: _Database, exc: MappaError) -> dict[str, Any]:
    return _row(database, state="refused", code=exc.code, reason=str(exc))


def _numbers(steps: list[Any]) -> list[int] | None:
    """The step numbers of ``steps`` (numbers, or ``[number, name]`` pairs); None if none."""
    return [s[0] if isinstance(s, list) else s for s in steps] or None


def _print(rows: list[dict[str, Any]], as_json: bool, steps: str) -> None:
    """``rows`` as one JSON list, or a table with the ``steps`` column (``pending`` or
    ``applied``): step numbers, or the refusal's code."""
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("no databases in this data directory")
        return
    print_table(
        ("database", "state", "version", "latest", steps, "where"),
        [
            (
                r["database"],
                r["state"],
                r.get("version"),
                r.get("latest"),
                r["code"] if r["state"] == "refused" else _numbers(r[steps]),
                r["where"],
            )
            for r in rows
        ],
    )
    for r in rows:
        if r["state"] == "refused":
            print(f"{r['database']}: {r['code']}: {r['reason']}")


def cmd_status(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(data_dir=args.data_dir, database_url=args.database_url)
    rows: list[dict[str, Any]] = []
    for database in _databases(settings):
        try:
            st = _status(database)
        except MappaError as exc:
            rows.append(_refused(database, exc))
            continue
        rows.append(
            _row(
                database,
                state=st.state,
                version=st.version,
                latest=st.latest,
                pending=[list(p) for p in st.pending],
            )
        )
    _print(rows, args.json, "pending")
    return exits.REFUSED if any(r["state"] == "refused" for r in rows) else exits.OK


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(data_dir=args.data_dir, database_url=args.database_url)
    rows: list[dict[str, Any]] = []
    for database in _databases(settings):
        try:
            before = _status(database)
            database.opener(database.where).close()
            after = _status(database)
        except MappaError as exc:
            rows.append(_refused(database, exc))
            continue
        applied = [v for v, _ in before.pending if v <= after.version]
        rows.append(
            _row(
                database,
                state=after.state,
                version=after.version,
                latest=after.latest,
                applied=applied,
            )
        )
    _print(rows, args.json, "applied")
    return exits.REFUSED if any(r["state"] == "refused" for r in rows) else exits.OK
