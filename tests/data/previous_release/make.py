"""Make the databases of the previous release's layout that ``tests/test_migrations.py``
upgrades: what a deployment of commit ``2fda6ad`` (the last release before schema
versions) left on disk, made by that commit's own code.

Rerun from the repository root (needs git, and the .venv of any later commit):

    .venv/bin/python tests/data/previous_release/make.py [--commit 2fda6ad]

It extracts the commit with ``git archive`` into a temporary directory (the checkout
is not touched), then runs this same file there (``--inside``) with that code first
on ``sys.path``:

1. ``mappa demo --data-dir D``: every agency's store and the ledger, with verified
   entries and signed checkpoints;
2. housing's store gains a remembered idempotency key (``Requests.remember``);
3. ``api-credentials.sqlite``: two credentials issued, one rotated, one revoked;
4. ``users.sqlite``: two users, one disabled, a session started.

What is kept, each SQLite file as one self-contained copy (``VACUUM INTO``, no WAL)
gzipped without a timestamp: housing's store (inbox, outbox, tracking, a dead letter,
a case team, offsets, replay memory, a request key), the ledger with its public key
(``ledger.pub``: all that ``mappa audit verify`` needs), the credential store and the
identity database, and ``counts.json``: the rows each table held, for the test to
compare. No private key is kept: nothing the test reads needs one. Keys and times are
new on every run, so the files differ from run to run; what they hold does not.

Older layouts still upgraded (by the first numbered steps of each store, which are what
every open did before versions existed; the tests that build each layout by hand are
named):
- agency store: ``seen``, ``inbox`` and ``transfer_reshared`` keyed by message id
  alone, without the sender; an inbox without ``acknowledged_by``; tables added since
  missing (tests/hostile/test_envelope_rules.py);
- credential store: ``credentials`` without ``expires_at``, ``issued_by``,
  ``revoked_by``, ``replaces`` (tests/test_api_units.py,
  ``test_a_store_from_before_expiry_is_migrated``);
- ledger: ``rejected`` holding each refused record's bytes (column ``raw``)
  (tests/test_ledger.py, ``test_an_earlier_ledger_drops_the_bytes_it_kept_when_opened``).
  A ledger of one row per entry (table ``entries``) is older still, and refused as
  it was (tests/test_ledger.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
COMMIT = "2fda6ad"
AGENCY = "housing.stoke-on-trent"
# Fixed times: the rows made here, not the demo's, carry these.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def snapshot(source: Path, target: Path) -> dict[str, int]:
    """Copy the SQLite database ``source`` to ``target`` (gzipped, no timestamp) as one
    file; returns the rows of each table."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.sqlite"
        db = sqlite3.connect(source)
        try:
            db.execute("VACUUM INTO ?", (str(copy),))
        finally:
            db.close()
        db = sqlite3.connect(copy)
        try:
            tables = [
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            counts = {
                t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in sorted(tables)
                if t != "sqlite_sequence"
            }
        finally:
            db.close()
        with gzip.GzipFile(target, "wb", mtime=0) as out:
            out.write(copy.read_bytes())
    return counts


def inside(out: Path) -> None:
    """Run at the old commit: make a deployment and keep its databases in ``out``."""
    from argon2.profiles import CHEAPEST

    from broker.api.credentials import CredentialKind, CredentialStore
    from broker.gateway.store import AgencyStore
    from broker.identity.database import IdentityDatabase
    from broker.identity.passwords import Passwords
    from broker.identity.roles import Role
    from broker.identity.sessions import SessionStore
    from broker.identity.users import UserStore

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run(  # noqa: S603 - our own CLI, at the commit being kept
            [sys.executable, "-m", "broker.cli.main", "demo", "--data-dir", str(data)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        store = AgencyStore(data / "agencies" / f"{AGENCY}.sqlite")
        with store.transaction():
            store.requests.remember(
                AGENCY, "fixture-key-1", fingerprint="f" * 64, answer='{"ok": true}', now=NOW
            )
        store.close()

        credentials = CredentialStore(data / "api-credentials.sqlite")
        first = credentials.issue(CredentialKind.AGENCY, AGENCY, now=NOW, actor="fixture")
        credentials.issue(
            CredentialKind.OFFICER, "ig.officer", now=NOW, label="governance", actor="fixture"
        )
        credentials.rotate(first.info.credential_id, now=NOW + timedelta(days=1), actor="fixture")
        credentials.revoke(first.info.credential_id, now=NOW + timedelta(days=2), actor="fixture")
        credentials.close()

        with IdentityDatabase(data / "users.sqlite") as identity:
            users = UserStore(identity, passwords=Passwords(CHEAPEST))
            password = "correct horse battery staple 42"  # noqa: S105 - a fixture's
            users.add(
                "j.smith",
                agency=AGENCY,
                role=Role.AGENCY_USER,
                password=password,
                actor="fixture",
                now=NOW,
            )
            users.add(
                "a.jones",
                agency=AGENCY,
                role=Role.AGENCY_USER,
                password=password,
                actor="fixture",
                now=NOW,
            )
            users.disable("a.jones", actor="fixture", now=NOW + timedelta(hours=1))
            SessionStore(identity).start(users.get("j.smith"), now=NOW + timedelta(hours=2))

        out.mkdir(parents=True, exist_ok=True)
        counts = {
            "agency.sqlite.gz": snapshot(
                data / "agencies" / f"{AGENCY}.sqlite", out / "agency.sqlite.gz"
            ),
            "ledger.sqlite.gz": snapshot(data / "ledger.sqlite", out / "ledger.sqlite.gz"),
            "api-credentials.sqlite.gz": snapshot(
                data / "api-credentials.sqlite", out / "api-credentials.sqlite.gz"
            ),
            "users.sqlite.gz": snapshot(data / "users.sqlite", out / "users.sqlite.gz"),
        }
        (out / "ledger.pub").write_bytes((data / "ledger.pub").read_bytes())
    (out / "counts.json").write_text(
        json.dumps({"commit": COMMIT, "agency": AGENCY, "rows": counts}, indent=1) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        asyncio.set_event_loop_policy(None)
        inside(args.inside)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(  # noqa: S603 - git, on our own repository
            ["git", "-C", str(ROOT), "archive", args.commit],  # noqa: S607
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)  # noqa: S603, S607
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(  # noqa: S603 - this file, at the old commit's code
            [sys.executable, str(Path(__file__).resolve()), "--inside", str(HERE)],
            check=True,
            cwd=tree,
            env=env,
        )
    print(f"wrote {HERE} from commit {args.commit}")


if __name__ == "__main__":
    main()
