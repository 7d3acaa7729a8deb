"""The audit ledger on SQLite: appends/s, proof and query latency, verify entries/s.

The full run builds a 1,000,000-event ledger (``--scale`` shrinks it) in batches of
10,000, signing a checkpoint after each, as the ledger service does after each poll.
Events are realistic disclosure records (about 900 bytes signed) spread over 10,000
subjects. Appends are timed without the adapter-signature check, which the service
does before the store sees an event; that check is timed on its own. Verify runs as
``mappa audit verify`` does: a worker process per core.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker.bench import BenchOptions, Figure
from broker.crypto.encoding import b64encode
from broker.crypto.keys import PrivateKey
from broker.gateway.audit import sign_event, verify_event
from broker.ledger import merkle
from broker.ledger.checkpoint import CheckpointSigner, ledger_origin
from broker.ledger.reader import LedgerReader
from broker.ledger.store import Item, LedgerStore
from broker.trust.directory import Directory
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome, SignedAuditEvent
from schemas.common import Role, ViewKind
from schemas.directory import (
    AgencyEntry,
    AgencyStatus,
    DirectoryDocument,
    KeyAlg,
    PublicKeyEntry,
)

FULL_SIZE = 1_000_000
BATCH = 10_000
SUBJECTS = 10_000
SECTION = "ledger"


def _template(key: PrivateKey) -> SignedAuditEvent:
    event = AuditEvent(
        event_id=str(uuid.uuid4()),
        time="2026-11-23T10:00:00.000Z",
        act=AuditAct.DISCLOSURE,
        operation=Operation.PUBLISH,
        agency="police.staffordshire",
        user="ppu.officer.4471",
        area="staffordshire",
        subject_ref="0" * 64,
        message_id=str(uuid.uuid4()),
        message_type="risk-assessment",
        isa_id="mappa-default.staffordshire",
        isa_version=1,
        purpose="MAPPA risk management",
        lawful_basis="dpa-2018-part-3: Criminal Justice Act 2003 s325 duty to co-operate",
        recipient="housing.stoke-on-trent",
        view=ViewKind.REDACTED,
        outcome=Outcome.OK,
    )
    return sign_event(event, key)


def _batch(template: SignedAuditEvent, start: int, count: int, refs: list[str]) -> list[Item]:
    """``count`` events like ``template``; only ids, time and subject vary. The signature is
    the template's (appends do not check it: the service does, timed separately)."""
    items: list[Item] = []
    for i in range(start, start + count):
        event = template.event.model_copy(
            update={
                "event_id": str(uuid.UUID(int=i + 1)),
                "message_id": str(uuid.UUID(int=(i + 1) << 64)),
                "subject_ref": refs[i % len(refs)],
                "time": format_timestamp_ms(i),
            }
        )
        signed = template.model_copy(update={"event": event})
        items.append((signed, signed.model_dump_json().encode(), None))
    return items


def format_timestamp_ms(i: int) -> str:
    # Ten events a second from a fixed start: ordered, unique-ish, valid timestamps.
    seconds = 1_795_000_000 + i // 10
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{(i % 10) * 100:03d}Z"


def _directory_for(key: PrivateKey) -> Directory:
    entry = AgencyEntry(
        agency_id="police.staffordshire",
        name="Staffordshire Police",
        role=Role.POLICE,
        areas=("staffordshire",),
        kafka_principal="User:police.staffordshire",
        status=AgencyStatus.ACTIVE,
        suites=("classic",),
        keys=(
            PublicKeyEntry(
                key_id=key.key_id,
                alg=KeyAlg.ED25519,
                public_key=b64encode(key.public.raw),
                not_before="2026-01-01T00:00:00.000Z",
                not_after="2028-01-01T00:00:00.000Z",
                revoked_at=None,
                revocation_reason=None,
            ),
        ),
    )
    doc = DirectoryDocument(
        kind="mappa.directory",
        version=1,
        issued_at="2026-01-01T00:00:00.000Z",
        valid_until="2028-01-01T00:00:00.000Z",
        agencies=(entry,),
    )
    return Directory(doc)


def _mean_seconds(fn: Callable[[Any], object], calls: Sequence[Any]) -> float:
    start = time.perf_counter()
    for arg in calls:
        fn(arg)
    return (time.perf_counter() - start) / max(1, len(calls))


def measure(options: BenchOptions) -> list[Figure]:
    size = max(2 * 1000, int(FULL_SIZE * options.scale))
    batch = min(BATCH, size)
    key = PrivateKey.generate(KeyAlg.ED25519)
    template = _template(key)
    rng = random.Random(5)  # noqa: S311 - benchmark sampling, not security
    refs = [f"{rng.getrandbits(256):064x}" for _ in range(min(SUBJECTS, size // 10))]
    path = Path(options.data_dir or ".") / f"ledger-bench-{uuid.uuid4().hex[:8]}.sqlite"
    store = LedgerStore(path)
    ledger_key = PrivateKey.generate(KeyAlg.ED25519)
    signer = CheckpointSigner(origin=ledger_origin("bench"), key=ledger_key)
    appending = 0.0
    try:
        for start in range(0, size, batch):
            items = _batch(template, start, min(batch, size - start), refs)
            t0 = time.perf_counter()
            store.append_batch(items)
            store.add_checkpoint(
                store.tree_size,
                format_timestamp_ms(start),
                signer.sign(
                    store.tree_size,
                    store.tree_root(),
                    format_timestamp_ms(start),
                    store.index_digest,
                ),
            )
            appending += time.perf_counter() - t0
        reader = LedgerReader(
            store=store, public_key=ledger_key.public, origin=signer.origin, subject_ref=str
        )
        n = store.tree_size
        samples = [rng.randrange(n) for _ in range(max(50, int(2000 * options.scale)))]
        proof_s = _mean_seconds(lambda s: reader.inclusion(s, n), samples)
        full_proof_s = _mean_seconds(reader.proof, samples[:200])
        subjects = [{"subject_ref": rng.choice(refs), "limit": 100} for _ in range(100)]
        query_s = _mean_seconds(reader.query, subjects)
        t0 = time.perf_counter()
        report = reader.verify()
        verify_s = time.perf_counter() - t0
        if not report.intact:
            raise RuntimeError(f"bench ledger failed verify: {report.problem}")
        t0 = time.perf_counter()
        merkle.root_from_leaves(h for _, h in store.recorded_leaves())
        tree_s = time.perf_counter() - t0
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    raw = template.model_dump_json().encode()
    directory = _directory_for(key)
    checks = max(200, int(20_000 * options.scale))
    t0 = time.perf_counter()
    for _ in range(checks):
        verify_event(raw, directory)
    check_rate = checks / (time.perf_counter() - t0)
    note = f"{n:,} events, {len(raw)} B each, batches of {batch:,}"
    per_subject = n // len(refs)
    return [
        Figure(SECTION, "append (SQLite, batched, + checkpoint)", n / appending, "events/s", note),
        Figure(SECTION, "adapter signature check before append", check_rate, "events/s", "1 core"),
        Figure(SECTION, "inclusion proof (hashes)", proof_s * 1000, "ms", f"tree of {n:,}"),
        Figure(
            SECTION, "inclusion proof + entry + checkpoint check", full_proof_s * 1000, "ms", ""
        ),
        Figure(
            SECTION, "query by subject (page of 100)", query_s * 1000, "ms", f"~{per_subject}/subj"
        ),
        Figure(
            SECTION,
            "verify (whole log, all checks)",
            n / verify_s,
            "entries/s",
            f"{note}, {os.cpu_count()} worker processes",
        ),
        Figure(SECTION, "recompute tree head from leaves", n / tree_s, "entries/s", ""),
    ]


async def run(options: BenchOptions) -> list[Figure]:
    return measure(options)
