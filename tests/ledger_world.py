"""A provisioned deployment's ledger without Kafka: signed audit events fed as records.

The ledger database is SQLite in the data directory, or a fresh PostgreSQL schema
(dropped afterwards) on the server at MAPPA_TEST_POSTGRES_URL, which conftest sets to a
throwaway server when none is named; where there is none, PostgreSQL tests skip and say why.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.agreements import agreement_for_area
from broker.crypto.keys import PrivateKey
from broker.deployment import Deployment
from broker.gateway.audit import sign_event, time_ordered_id
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.log import split_block
from broker.ledger.reader import LedgerReader
from broker.ledger.service import LedgerService
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome
from schemas.common import format_timestamp
from schemas.directory import KeyAlg
from tests.support import AREA, PARTIES, PNC, SPECS

POSTGRES_ENV = "MAPPA_TEST_POSTGRES_URL"
# Set by conftest when it could neither reach a named server nor start one: why not.
POSTGRES_ABSENT = "MAPPA_TEST_POSTGRES_ABSENT"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def postgres_url() -> str:
    return os.environ.get(POSTGRES_ENV, "")


def postgres_reason() -> str | None:
    """None if the PostgreSQL server answers, else why not."""
    import psycopg

    url = postgres_url()
    if not url:
        return os.environ.get(POSTGRES_ABSENT) or f"{POSTGRES_ENV} is not set"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} did not answer: {str(exc).strip()[:120]}"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (SQLite in the data dir) or the URL of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    reason = postgres_reason()
    if reason is not None:
        print(f"skipping PostgreSQL ledger test: {reason}")
        pytest.skip(reason)
    import psycopg

    url = postgres_url()
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass
class LedgerWorld:
    deployment: Deployment
    service: LedgerService
    reader: LedgerReader
    keys: dict[str, PrivateKey]
    passphrase: bytes
    now: datetime = START
    offset: int = 0
    emitted: list[AuditEvent] = field(default_factory=list)

    def event(self, agency: str, act: AuditAct = AuditAct.DISCLOSURE, **fields: Any) -> AuditEvent:
        self.now += timedelta(minutes=1)
        defaults: dict[str, Any] = {
            "operation": Operation.PUBLISH,
            "outcome": Outcome.OK,
            "subject_ref": self.deployment.subject_ref(PNC),
            "isa_id": self.deployment.agreement.id,
            "isa_version": 1,
            "area": AREA,
        }
        return AuditEvent(
            event_id=time_ordered_id(),
            time=format_timestamp(self.now),
            act=act,
            agency=agency,
            **(defaults | fields),
        )

    def record(self, value: bytes) -> Record:
        self.offset += 1
        return Record("mappa.audit", 0, self.offset, None, value, (), 0)

    def signed(self, event: AuditEvent, key: PrivateKey | None = None) -> bytes:
        return sign_event(event, key or self.keys[event.agency]).model_dump_json().encode()

    def feed(self, *events: AuditEvent) -> int:
        self.emitted += events
        return self.service.handle_batch([self.record(self.signed(e)) for e in events])

    def close(self) -> None:
        self.deployment.close()


def build_ledger_world(data_dir: Path, database_url: str | None) -> LedgerWorld:
    passphrase = secrets.token_urlsafe(16).encode()
    settings = Settings(data_dir=data_dir, database_url=database_url)
    directory = provision(
        DataPaths(data_dir), SPECS, passphrase=passphrase, now=START - timedelta(days=1)
    )
    agreement = agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])
    deployment = Deployment(
        settings=settings,
        passphrase=passphrase,
        agreements=[agreement],
        clock=lambda: START + timedelta(days=1),
    )
    # A transport never started: these tests feed records straight to the service.
    service = deployment.ledger(KafkaTransport(settings, bootstrap="127.0.0.1:9"))
    keys = {
        spec.agency_id: deployment.keystore.load(
            spec.agency_id,
            next(
                k.key_id for k in directory.agency(spec.agency_id).keys if k.alg is KeyAlg.ED25519
            ),
        )
        for spec in SPECS
    }
    return LedgerWorld(
        deployment, service, deployment.ledger_reader(service.store), keys, passphrase
    )


# -- tampering, as someone with write access to the ledger's database would ---------------
def rewrite_block(
    store: LedgerStore,
    first_seq: int,
    edit: Callable[[list[bytes]], list[bytes]],
    *,
    recompute_leaves: bool = False,
) -> None:
    """Replace the entries of the stored block at ``first_seq`` with ``edit`` of them; the
    recorded leaf hashes are kept unless ``recompute_leaves`` (a thorough attacker)."""
    [(ends, recorded, data)] = store.tamper_db.execute(
        "SELECT ends, leaves, data FROM blocks WHERE first_seq = ?", (first_seq,)
    )
    entries = edit(split_block(bytes(ends), bytes(data)))
    inputs = [b"\x00" + e for e in entries]
    leaves = (
        b"".join(hashlib.sha256(i).digest() for i in inputs)
        if recompute_leaves
        else bytes(recorded)
    )
    store.tamper_db.execute(
        "UPDATE blocks SET count = ?, ends = ?, leaves = ?, data = ? WHERE first_seq = ?",
        (
            len(entries),
            array("I", itertools.accumulate(map(len, inputs))).tobytes(),
            leaves,
            b"".join(inputs),
            first_seq,
        ),
    )


def renumber_blocks(store: LedgerStore, after: int, by: int) -> None:
    """Move every block that starts after ``after`` by ``by`` entries (closing or opening
    a gap), in two steps so no key collides on the way."""
    store.tamper_db.execute(
        "UPDATE blocks SET first_seq = first_seq + 1000000 WHERE first_seq > ?", (after,)
    )
    store.tamper_db.execute(
        "UPDATE blocks SET first_seq = first_seq - 1000000 + ? WHERE first_seq > 1000000", (by,)
    )
