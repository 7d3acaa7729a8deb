"""``verify``: recompute the whole log from the stored rows and hold it to its checkpoints.

Checks, in one pass over the entries:
  1. every checkpoint's signature (the ledger key) and origin; sizes only grow;
  2. entries are numbered 0, 1, 2, ... with no gap (a deleted row leaves one);
  3. the tree recomputed from the rows has, at every checkpoint size, the root that
     checkpoint signed; and consecutive checkpoints are consistent (RFC 9162 proof
     built from the stored nodes, checked with the standalone verifier);
  4. where a root does not match, and past the last checkpoint, each entry's leaf hash,
     recomputed from its signed bytes, equals the one recorded when it was appended
     (a modified, inserted or reordered row differs): this names the entry;
  5. the query columns of every row agree with its signed event.
The first failure is reported with the entry it concerns. Nothing is ever repaired.
"""

from __future__ import annotations

import hashlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from broker.errors import VerificationError
from broker.ledger import merkle
from broker.ledger.checkpoint import VerifiedCheckpoint, open_checkpoint
from broker.ledger.database import connect
from broker.ledger.store import LedgerStore, column_mismatch
from broker.ledger.verify_proofs import ProofError, verify_consistency


@dataclass(frozen=True)
class IntegrityReport:
    intact: bool
    entries: int
    checkpoints: int
    latest_checkpoint_size: int
    rejected: int
    first_bad_entry: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Tampered(Exception):
    def __init__(self, entry: int | None, problem: str) -> None:
        super().__init__(problem)
        self.entry = entry
        self.problem = problem


def _checkpoints(store: LedgerStore, vkey: str, origin: str) -> list[VerifiedCheckpoint]:
    verified: list[VerifiedCheckpoint] = []
    for size, time, note in store.checkpoints():
        try:
            cp = open_checkpoint(note, vkey, origin=origin)
        except VerificationError as exc:
            raise _Tampered(None, f"checkpoint of size {size}: {exc}") from None
        if cp.size != size or cp.time != time:
            raise _Tampered(None, f"checkpoint of size {size}: its row disagrees with its note")
        if verified and cp.time is not None and (verified[-1].time or "") > cp.time:
            raise _Tampered(None, f"checkpoint of size {size} is dated before an earlier one")
        verified.append(cp)
    return verified


def _consistent(store: LedgerStore, checkpoints: list[VerifiedCheckpoint]) -> None:
    for old, new in itertools.pairwise(checkpoints):
        ranges = merkle.consistency_ranges(old.size, new.size)
        try:
            proof = merkle.assemble(ranges, store.nodes(merkle.nodes_for(ranges)))
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except (KeyError, ProofError) as exc:
            raise _Tampered(
                old.size, f"checkpoints of size {old.size} and {new.size} are not consistent: {exc}"
            ) from None


def _first_moved(store: LedgerStore, start: int, leaves: list[bytes]) -> int | None:
    """The first entry from ``start`` whose leaf differs from the one recorded at append."""
    recorded = store.recorded_leaves(start, start + len(leaves))
    for offset, h in enumerate(leaves):
        at, leaf = next(recorded, (None, b""))
        if at != start + offset or leaf != h:
            return start + offset
    return None


def _moved(entry: int) -> _Tampered:
    return _Tampered(
        entry, f"entry {entry} is not the entry appended at that position (modified or moved)"
    )


def _recompute(store: LedgerStore, checkpoints: list[VerifiedCheckpoint]) -> int:
    """One pass over the rows; returns how many there are.

    Where a signed checkpoint's root matches, every entry it covers is proven intact,
    so the leaf hashes recorded at append time are only read to say *which* entry
    differs when a root does not match, and for the entries no checkpoint covers yet.
    """
    sha256 = hashlib.sha256
    node = merkle.node_hash
    targets = iter(checkpoints)
    target = next(targets, None)
    stack: list[bytes] = []
    pending: list[bytes] = []  # leaf hashes since the last matching checkpoint
    n = vouched = 0
    for seq, raw in store.signed_entries():
        if seq != n:
            raise _Tampered(n, f"entry {n} is missing (the next stored row is {seq})")
        h = sha256(b"\x00" + raw).digest()
        pending.append(h)
        index = n
        while index & 1:
            h = node(stack.pop(), h)
            index >>= 1
        stack.append(h)
        n += 1
        while target is not None and target.size == n:
            if merkle.fold(stack) != target.root:
                moved = _first_moved(store, vouched, pending)
                if moved is not None:
                    raise _moved(moved)
                # Leaf hashes were rewritten too; the signed checkpoints still bound it:
                # everything before the last matching checkpoint is vouched for.
                raise _Tampered(
                    vouched,
                    f"an entry from {vouched} to {n - 1} is not what the signed checkpoint of "
                    f"size {n} covers (entries and their recorded hashes were rewritten)",
                )
            vouched = n
            pending.clear()
            target = next(targets, None)
    if target is not None and target.size > 0:
        raise _Tampered(n, f"entries from {n} are missing: a checkpoint covers {target.size}")
    moved = _first_moved(store, vouched, pending)
    if moved is not None:
        raise _moved(moved)
    if store.has_leaf(n):
        raise _Tampered(n, f"entry {n} was recorded at append time but is no longer stored")
    return n


def _column_check(target: Path | str) -> tuple[int, str] | None:
    """On its own connection, so the database's JSON scan runs while Python hashes
    (both SQLite and psycopg release the GIL while a statement runs)."""
    db = connect(target)
    try:
        return column_mismatch(db)
    finally:
        db.close()


def _columns(mismatch: tuple[int, str] | None) -> None:
    if mismatch is not None:
        seq, column = mismatch
        raise _Tampered(seq, f"entry {seq}: column {column!r} differs from its signed event")


def verify_ledger(store: LedgerStore, *, verifier_key: str, origin: str) -> IntegrityReport:
    rejected = len(store.rejected())
    count = checkpoints = latest = 0
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-verify")
    columns = pool.submit(_column_check, store.target)
    try:
        verified = _checkpoints(store, verifier_key, origin)
        checkpoints = len(verified)
        latest = verified[-1].size if verified else 0
        count = _recompute(store, verified)
        _consistent(store, verified)
        _columns(columns.result())
    except _Tampered as bad:
        return IntegrityReport(
            intact=False,
            entries=count,
            checkpoints=checkpoints,
            latest_checkpoint_size=latest,
            rejected=rejected,
            first_bad_entry=bad.entry,
            problem=bad.problem,
        )
    finally:
        pool.shutdown(wait=True)
    return IntegrityReport(
        intact=True,
        entries=count,
        checkpoints=checkpoints,
        latest_checkpoint_size=latest,
        rejected=rejected,
    )
