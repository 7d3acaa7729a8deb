"""Small logs and witnesses for the witness tests, without a deployment: a Merkle tree
over made-up leaves, its checkpoints signed by a ledger key, and a witness of it on a
SQLite store of its own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broker.crypto.keys import PrivateKey
from broker.ledger import merkle
from broker.ledger.checkpoint import CheckpointSigner
from broker.witness.cosignature import Cosigner
from broker.witness.witness import Witness, WitnessAlarm, WitnessStore
from schemas.directory import KeyAlg

ORIGIN = "mappa-broker/test/audit-ledger"
TIME = "2026-11-23T10:00:00.000Z"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
INDEX = bytes(32)


@dataclass
class Log:
    """A log of made-up entries: its leaf hashes, and checkpoints signed by ``signer``."""

    signer: CheckpointSigner
    leaves: list[bytes] = field(default_factory=list)

    def grow(self, n: int, tag: bytes = b"entry") -> None:
        start = len(self.leaves)
        self.leaves += [
            hashlib.sha256(b"\x00" + tag + b"%d" % i).digest() for i in range(start, start + n)
        ]

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_from_leaves(self.leaves[: len(self.leaves) if size is None else size])

    def note(self, size: int | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return self.signer.sign(size, self.root(size), TIME, INDEX)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        if old in (0, new):
            return []
        ranges = merkle.consistency_ranges(old, new)
        nodes = {
            (level, index): merkle.perfect_root(self.leaves[index << level : (index + 1) << level])
            for level, index in merkle.nodes_for(ranges)
        }
        return merkle.assemble(ranges, nodes)


def new_log() -> Log:
    return Log(CheckpointSigner(origin=ORIGIN, key=PrivateKey.generate(KeyAlg.ED25519)))


def new_witness(
    tmp_path: Path,
    log: Log,
    name: str = "witness.test/w1",
    alarms: list[WitnessAlarm] | None = None,
) -> Witness:
    heard = alarms if alarms is not None else []
    return Witness(
        cosigner=Cosigner(name=name, key=PrivateKey.generate(KeyAlg.ED25519)),
        origin=ORIGIN,
        log_key=log.signer.verifier_key,
        store=WitnessStore(tmp_path / f"{name.replace('/', '_')}.sqlite"),
        clock=lambda: NOW,
        on_alarm=heard.append,
    )
