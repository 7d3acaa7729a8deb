"""Sealing, and the heavy part of receiving, off the event loop: a pool of worker
processes, one per core.

Sealing is the CPU-heavy part of a publication (HPKE wraps, AES-GCM, JCS, the
signature, and signing its audit events), and one event loop runs it on one core while
the database, the relay and every other request wait. ``SealingPool`` runs it in
worker processes instead, so the loop keeps serving while both cores seal.

Private keys never cross a process boundary (``PrivateKey`` refuses to be pickled):
each worker unlocks its own copy from the key store with the passphrase it was started
with, the first time it signs for an agency with a key, and keeps it for its life.
What crosses is what sealing needs besides the keys: headers, plaintext views and the
recipients' public keys, going to a child of this process over a pipe; and the sealed
record values coming back.

The same workers prepare what a gateway reads (``prepare``): a batch's records are
parsed, their signatures verified and their views decrypted ahead, in chunks, one per
worker (``broker.gateway.preparing`` says what the event loop still checks). What
crosses is the records and the directory's public signing keys; what comes back is the
parsed envelopes, which verifications passed, and the views decrypted for the agency
whose records they are (its own, which its gateway would decrypt anyway).

``SealHere`` is the same interface in this process: for a deployment configured with
no workers (``MAPPA_SEAL_WORKERS=0``), and for the sealing that follows no request (a
transfer step, a re-share).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from broker import errors
from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.suites import suite_named
from broker.gateway.agency import AgencyContext
from broker.gateway.preparing import PREPARE_AT_LEAST, Prepared, prepare
from broker.gateway.sealing import Sealable, Sealing, ToSeal, seal_and_sign, seal_here, sealing_of
from broker.kafka.transport import Record
from broker.trust.directory import public_key_of
from broker.trust.keystore import Keystore
from schemas.audit import AuditEvent
from schemas.directory import DirectoryDocument, KeyUse

log = logging.getLogger(__name__)
# How often a worker looks whether the process that started it is still there.
PARENT_CHECK_SECONDS = 0.5


class Sealer(Protocol):
    async def seal(
        self, ctx: AgencyContext, items: Sequence[ToSeal], events: Sequence[AuditEvent] = ()
    ) -> Sealing:
        """Seal ``items`` as one publication of ``ctx``'s agency, and sign its audit
        ``events`` with the agency's audit key. Raises ``KeyUnavailable`` (a signing key
        not held) and ``SchemaError`` (``envelope.too-large``)."""
        ...

    async def prepare(self, ctx: AgencyContext, records: Sequence[Record]) -> list[Prepared | None]:
        """What could be done ahead for each of ``records``, read by ``ctx``'s agency
        (``broker.gateway.preparing``); None where nothing was. Never raises."""
        ...


class SealHere:
    """Sealing on the event loop (module docstring); nothing prepared ahead, since the
    loop would only do the same work twice."""

    async def seal(
        self, ctx: AgencyContext, items: Sequence[ToSeal], events: Sequence[AuditEvent] = ()
    ) -> Sealing:
        return seal_here(ctx, items, events)

    async def prepare(self, ctx: AgencyContext, records: Sequence[Record]) -> list[Prepared | None]:
        return [None] * len(records)


@dataclass(frozen=True)
class _Refused:
    """A ``MappaError`` raised in a worker, by name: its class's constructor takes a code
    that pickling would lose."""

    kind: str
    message: str
    code: str

    def error(self) -> errors.MappaError:
        cls = getattr(errors, self.kind, errors.MappaError)
        if not (isinstance(cls, type) and issubclass(cls, errors.MappaError)):
            cls = errors.MappaError
        return cls(self.message, code=self.code)


class SealingPool:
    """Worker processes sealing for every agency of one deployment (module docstring).
    Started on first use; ``close`` stops them (``Deployment.running`` does, also on
    failure and Ctrl-C)."""

    def __init__(self, key_root: Path, passphrase: bytes, workers: int) -> None:
        if workers < 1:
            raise ValueError("a sealing pool needs at least one worker")
        self._key_root = key_root
        self._passphrase = passphrase
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        # The directory's public signing keys by key id, for the document last seen.
        self._signing_keys: tuple[DirectoryDocument | None, dict[str, PublicKey]] = (None, {})

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                # Not fork: this process runs an event loop, client connections and
                # perhaps threads, none of which a forked child may touch.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._key_root, self._passphrase),
            )
        return self._executor

    def start(self) -> None:
        """Start the workers now (each imports and is ready before the first publication
        needs it), without waiting for them."""
        executor = self._started()
        for _ in range(self.workers):
            executor.submit(_ready)

    async def seal(
        self, ctx: AgencyContext, items: Sequence[ToSeal], events: Sequence[AuditEvent] = ()
    ) -> Sealing:
        sealable: list[Sealable] = [(item.header, item.views) for item in items]
        outcome = await asyncio.get_running_loop().run_in_executor(
            self._started(),
            _seal_in_worker,
            ctx.agency_id,
            ctx.suite.name,
            sealable,
            ctx.audit.signing_key.key_id,
            list(events),
        )
        if isinstance(outcome, _Refused):
            raise outcome.error()
        return sealing_of(items, events, outcome)

    async def prepare(self, ctx: AgencyContext, records: Sequence[Record]) -> list[Prepared | None]:
        if len(records) < PREPARE_AT_LEAST:
            return [None] * len(records)
        values = [r.value for r in records]
        step = -(-len(values) // self.workers)
        loop = asyncio.get_running_loop()
        try:
            chunks = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._started(),
                        _prepare_in_worker,
                        ctx.agency_id,
                        self._signing_keys_of(ctx),
                        frozenset(ctx.keys.decryption),
                        values[i : i + step],
                    )
                    for i in range(0, len(values), step)
                )
            )
        except Exception as exc:  # noqa: BLE001 - speculative: the loop does it all instead
            log.warning(
                "%s: records not prepared by the workers (%s); handled on the loop alone",
                ctx.agency_id,
                type(exc).__name__,
            )
            return [None] * len(records)
        return [p for chunk in chunks for p in chunk]

    def _signing_keys_of(self, ctx: AgencyContext) -> dict[str, PublicKey]:
        """Every public signing key of the directory in force, by key id (any status:
        the loop judges it, and a key it refuses is never looked at for a vouch)."""
        document = ctx.directory.document
        if self._signing_keys[0] is not document:
            keys = {
                entry.key_id: public_key_of(entry)
                for agency in ctx.directory.document.agencies
                for entry in agency.keys
                if entry.alg.use is KeyUse.SIGN
            }
            self._signing_keys = (document, keys)
        return self._signing_keys[1]

    def close(self) -> None:
        """Stop the workers, dropping what has not started. Idempotent."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


# -- in the worker ---------------------------------------------------------------------------


class _WorkerKeys:
    """A worker's key store, and the keys it has unlocked: (agency, key id) -> key."""

    keystore: Keystore | None = None
    unlocked: dict[tuple[str, str], PrivateKey] = {}  # noqa: RUF012 - one per process

    @classmethod
    def key(cls, agency: str, key_id: str) -> PrivateKey:
        if (agency, key_id) not in cls.unlocked:
            if cls.keystore is None:
                raise RuntimeError("sealing worker not started")
            cls.unlocked[(agency, key_id)] = cls.keystore.load(agency, key_id)
        return cls.unlocked[(agency, key_id)]


def _start_worker(key_root: Path, passphrase: bytes) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WorkerKeys.keystore = Keystore(key_root, passphrase)
    # A parent killed outright (SIGKILL, the OOM killer) cannot stop its pool, and the
    # pool's pipes do not tell a waiting worker: it sees its parent go, and follows.
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ready() -> None:
    """Nothing: a task that makes a worker start."""


def _seal_in_worker(
    agency: str,
    suite_name: str,
    items: list[Sealable],
    audit_key_id: str,
    events: list[AuditEvent],
) -> tuple[list[tuple[bytes, str]], list[bytes]] | _Refused:
    """Seal one publication with ``agency``'s keys named in its headers, and sign its
    audit events with its audit key."""
    try:
        return seal_and_sign(
            items,
            events,
            signers=[_WorkerKeys.key(agency, key_id) for key_id in items[0][0].sender_keys],
            suite=suite_named(suite_name),
            audit_key=_WorkerKeys.key(agency, audit_key_id),
        )
    except errors.MappaError as exc:
        return _Refused(type(exc).__name__, str(exc), exc.code)


def _prepare_in_worker(
    agency: str,
    signing_keys: dict[str, PublicKey],
    decryption_ids: frozenset[str],
    values: list[bytes],
) -> list[Prepared | None]:
    """``preparing.prepare`` for ``agency``'s records, with its decryption keys unlocked
    here (only those its gateway holds too)."""

    def decryption_key(key_id: str) -> PrivateKey | None:
        if key_id not in decryption_ids:
            return None
        try:
            return _WorkerKeys.key(agency, key_id)
        except Exception:  # noqa: BLE001 - not prepared: the loop opens it itself
            return None

    return prepare(values, agency=agency, signing_keys=signing_keys, decryption_key=decryption_key)
