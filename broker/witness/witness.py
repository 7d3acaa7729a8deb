"""A witness of the audit ledger (C2SP tlog-witness ``add-checkpoint``): it cosigns a new
checkpoint only once it has checked that the checkpoint extends, append-only, the last
one it cosigned, and it keeps that last one durably.

``Witness.add_checkpoint(old_size, proof, note)`` checks, in order, refusing at the first
that fails (``WitnessRefusal``, its code and the HTTP status tlog-witness gives it):

1. at most ``MAX_PROOF_LINES`` proof hashes, the note a signed note within the size bound:
   ``witness.malformed`` (400);
2. the note's origin is the log this witness follows: ``witness.unknown-log`` (404);
3. the note carries a valid signature by the log's key: ``witness.unknown-key`` (403);
4. the checkpoint is not smaller than the one last cosigned: ``witness.rollback``
   (409, an ALARM);
5. ``old_size`` is not larger than the checkpoint's size: ``witness.malformed`` (400);
6. ``old_size`` is the size last cosigned (0 if none): else ``WitnessConflict``
   (``witness.conflict``, 409, the witness's size in the answer; not an alarm: the
   ledger asks again from that size);
7. same size as last cosigned: the same root, else ``witness.inconsistent`` (409, an
   ALARM);
8. the consistency proof from the last cosigned tree to the new one verifies:
   else ``witness.inconsistent`` (422, an ALARM).

Then it records the checkpoint as its latest (compare-and-swap on the size it checked
against, so two requests cannot roll it back: tlog-witness's race) and returns its
cosignature line. An ALARM is kept durably in the witness's database (``alarms``,
listed by ``mappa witness alarms``), logged as event ``witness.alarm`` and handed to
``on_alarm`` (an agency's witness audits it through its audit emitter). Neither holds
personal data: sizes, root hashes and the note, which carries none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from broker.errors import VerificationError
from broker.files.migrations import Migration, Schema, run_script, upgrade
from broker.ledger.database import Database, connect
from broker.ledger.verify_proofs import (
    HASH_SIZE,
    ProofError,
    parse_checkpoint_text,
    split_note,
    verify_checkpoint,
    verify_consistency,
)
from broker.witness.cosignature import Cosigner
from schemas.common import format_timestamp

log = logging.getLogger(__name__)
# tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_LINES = 63
# Alarms listed at once: an officer pages through more with ``after``.
MAX_ALARMS_LISTED = 1000


class WitnessRefusal(VerificationError):
    """A witness refused to cosign: ``code`` says why, ``status`` is the HTTP status
    tlog-witness gives it, ``alarm`` whether the log misbehaved (rollback, fork)."""

    code = "witness.refused"

    def __init__(self, message: str, *, code: str, status: int, alarm: bool = False) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.alarm = alarm


class WitnessConflict(WitnessRefusal):
    """``old_size`` is not the size the witness last cosigned, ``size`` (409)."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the witness last cosigned size {size}", code="witness.conflict", status=409
        )
        self.size = size


@dataclass(frozen=True)
class WitnessState:
    """The latest checkpoint a witness cosigned for a log."""

    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class WitnessAlarm:
    """A refusal that shows the log misbehaving, as kept and handed to ``on_alarm``."""

    witness: str
    origin: str
    code: str
    reason: str
    old_size: int
    size: int
    own_size: int
    time: str


def _create(db: Database) -> None:
    pg = db.dialect == "postgresql"
    blob, big = ("BYTEA", "BIGINT") if pg else ("BLOB", "INTEGER")
    serial = "BIGSERIAL" if pg else "INTEGER"
    run_script(
        db.execute,
        f"""
CREATE TABLE IF NOT EXISTS witness_state (
    origin TEXT PRIMARY KEY, size {big} NOT NULL, root {blob} NOT NULL, note TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    id {serial} PRIMARY KEY, time TEXT NOT NULL, origin TEXT NOT NULL, code TEXT NOT NULL,
    reason TEXT NOT NULL, old_size {big} NOT NULL, size {big} NOT NULL,
    own_size {big} NOT NULL, note TEXT NOT NULL
);
""",
    )


SCHEMA: Schema[Database] = Schema(
    store="witness store",
    markers=frozenset({"witness_state"}),
    migrations=(Migration(1, "the witness's latest checkpoint and its alarms", _create),),
)


class WitnessStore:
    """A witness's own database (SQLite by path, PostgreSQL by URL): its latest
    checkpoint per log and its alarms. Raises as ``connect`` and ``upgrade`` do."""

    def __init__(self, target: Path | str) -> None:
        self._db = connect(target)
        try:
            upgrade(SCHEMA, self._db, self._db)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def latest(self, origin: str) -> WitnessState | None:
        """The latest checkpoint cosigned for ``origin``, or None."""
        rows = self._db.execute(
            "SELECT size, root, note FROM witness_state WHERE origin = ?", (origin,)
        )
        if not rows:
            return None
        return WitnessState(origin, int(rows[0][0]), bytes(rows[0][1]), rows[0][2])

    def advance(self, before: WitnessState | None, after: WitnessState, time: str) -> bool:
        """Record ``after`` as the latest, if the latest is still ``before``; True if it
        was recorded (compare-and-swap: a request checked against an older state loses)."""
        with self._db.transaction():
            if before is None:
                rows = self._db.execute(
                    "INSERT INTO witness_state (origin, size, root, note, time) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING RETURNING origin",
                    (after.origin, after.size, after.root, after.note, time),
                )
            else:
                rows = self._db.execute(
                    "UPDATE witness_state SET size = ?, root = ?, note = ?, time = ? "
                    "WHERE origin = ? AND size = ? AND root = ? RETURNING origin",
                    (after.size, after.root, after.note, time, after.origin, before.size,
                     before.root),
                )  # fmt: skip
        return bool(rows)

    def add_alarm(self, alarm: WitnessAlarm, note: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO alarms (time, origin, code, reason, old_size, size, own_size, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alarm.time, alarm.origin, alarm.code, alarm.reason, alarm.old_size,
                 alarm.size, alarm.own_size, note),
            )  # fmt: skip

    def alarms(self, after: int = 0) -> list[dict[str, Any]]:
        """The alarms after id ``after``, oldest first, at most ``MAX_ALARMS_LISTED``."""
        rows = self._db.execute(
            "SELECT id, time, origin, code, reason, old_size, size, own_size FROM alarms "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, MAX_ALARMS_LISTED),
        )
        keys = ("id", "time", "origin", "code", "reason", "old_size", "size", "own_size")
        return [dict(zip(keys, row, strict=True)) for row in rows]


class Witness:
    """A witness of one log, ``origin``, signed with ``log_key`` (a signed-note verifier
    key): it cosigns with ``cosigner`` and remembers in ``store``; ``clock`` times its
    cosignatures; ``on_alarm`` hears each alarm (after it is kept)."""

    def __init__(
        self,
        *,
        cosigner: Cosigner,
        origin: str,
        log_key: str,
        store: WitnessStore,
        clock: Callable[[], datetime],
        on_alarm: Callable[[WitnessAlarm], None] | None = None,
    ) -> None:
        self.cosigner = cosigner
        self.origin = origin
        self._log_key = log_key
        self.store = store
        self._clock = clock
        self.on_alarm = on_alarm
        # One request at a time in this process; ``advance`` guards against others.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.cosigner.name

    def __repr__(self) -> str:
        return f"Witness({self.name})"

    def latest(self) -> WitnessState | None:
        """The latest checkpoint this witness cosigned, or None."""
        return self.store.latest(self.origin)

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> str:
        """Check ``note`` against the last checkpoint cosigned (the module's checks, in
        order) and cosign it; returns the cosignature line. Raises ``WitnessRefusal``
        (``WitnessConflict`` for a stale ``old_size``)."""
        with self._lock:
            before, size, root = self._check(old_size, proof, note)
            now = self._clock()
            line = self.cosigner.cosign(note, int(now.timestamp()))
            after = WitnessState(self.origin, size, root, note)
            if not self.store.advance(before, after, format_timestamp(now)):
                latest = self.latest()
                raise WitnessConflict(latest.size if latest is not None else 0)
            return line

    def _check(
        self, old_size: int, proof: Sequence[bytes], note: str
    ) -> tuple[WitnessState | None, int, bytes]:
        if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
            raise WitnessRefusal(
                f"a consistency proof is at most {MAX_PROOF_LINES} hashes of {HASH_SIZE} bytes",
                code="witness.malformed",
                status=400,
            )
        try:
            text, _ = split_note(note)
            origin = parse_checkpoint_text(text).origin
        except ProofError as exc:
            raise WitnessRefusal(str(exc), code="witness.malformed", status=400) from None
        if origin != self.origin:
            raise WitnessRefusal(
                f"this witness follows {self.origin}, not {origin}",
                code="witness.unknown-log",
                status=404,
            )
        try:
            checkpoint = verify_checkpoint(note, self._log_key, origin=self.origin)
        except ProofError as exc:
            raise WitnessRefusal(str(exc), code="witness.unknown-key", status=403) from None
        before = self.latest()
        own = before.size if before is not None else 0
        size, root = checkpoint.size, checkpoint.root
        sizes = (old_size, size, own)
        if before is not None and size < before.size:
            reason = f"checkpoint of size {size} is older than the size {own} already cosigned"
            self._alarm("witness.rollback", reason, note, sizes, status=409)
        if old_size > size:
            raise WitnessRefusal(
                f"old size {old_size} is larger than the checkpoint's size {size}",
                code="witness.malformed",
                status=400,
            )
        if old_size != own:
            raise WitnessConflict(own)
        if before is not None and size == before.size and root != before.root:
            reason = f"a different root for size {size}, already cosigned: the log forked"
            self._alarm("witness.inconsistent", reason, note, sizes, status=409)
        try:
            verify_consistency(own, size, before.root if before else b"", root, list(proof))
        except ProofError as exc:
            reason = f"not consistent with the checkpoint of size {own} already cosigned: {exc}"
            self._alarm("witness.inconsistent", reason, note, sizes, status=422)
        return before, size, root

    def _alarm(
        self, code: str, reason: str, note: str, sizes: tuple[int, int, int], *, status: int
    ) -> NoReturn:
        """Keep, log and hand on an alarm; then raise the refusal (an alarm always refuses)."""
        old_size, size, own = sizes
        alarm = WitnessAlarm(
            self.name, self.origin, code, reason, old_size, size, own,
            format_timestamp(self._clock()),
        )  # fmt: skip
        self.store.add_alarm(alarm, note)
        log.error(
            "witness.alarm: %s refused %s size %d (it cosigned size %d): %s",
            self.name, self.origin, size, own, code,
            extra={"event": "witness.alarm", "witness": self.name, "code": code},
        )  # fmt: skip
        if self.on_alarm is not None:
            try:
                self.on_alarm(alarm)
            except Exception as exc:  # noqa: BLE001 - kept above; the refusal stands
                log.error("witness %s: its alarm was not audited (%s)", self.name,  # noqa: TRY400
                          type(exc).__name__)  # fmt: skip
        raise WitnessRefusal(reason, code=code, status=status, alarm=True)
