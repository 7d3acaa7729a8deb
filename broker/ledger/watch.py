"""The ledger watching itself: before it signs a checkpoint, it proves from its stored
data that the tree head it is about to sign extends the one it signed last.

``LedgerWatch.check`` runs, in order (each failure raises ``WatchFailure`` with the
first entry it can no longer vouch for, None when it cannot say which):

  1. the tree the stored nodes give at the previous checkpoint's size (its edge, read
     from ``nodes`` and the recorded leaves of its windows) has that checkpoint's root;
  2. every entry appended since, re-hashed from its stored bytes, is stored without a
     gap and equals the leaf hash recorded when it was appended;
  3. the previous edge extended by those re-hashed leaves gives the root the ledger
     holds in memory, the one it is about to sign;
  4. the stored nodes give a consistency proof from the previous checkpoint to the new
     tree head, checked by the standalone verifier;
  5. one slice of the older entries (``slice`` entries, aligned, taken in turn from
     entry 0 and round again) re-hashed from their stored bytes equals their recorded
     leaf hashes and, for a whole slice, the stored node over them.

So an entry, recorded leaf or node changed since the last checkpoint is found before the
next one is signed, and an older entry changed (even with its recorded leaf) within
``ceil(checkpointed / slice)`` checkpoints: the whole log at every checkpoint while it
holds at most ``slice`` entries. An older entry rewritten together with its recorded
leaf and every node above it, up to the edge, is left to the scheduled verify (it then
no longer matches a signed root there).
"""

from __future__ import annotations

import hashlib
from array import array

from broker.errors import MappaError
from broker.ledger import merkle
from broker.ledger.checkpoint import VerifiedCheckpoint
from broker.ledger.log import EntryLog, split_block
from broker.ledger.schema import BLOCK, TILE_LEVEL
from broker.ledger.verify_proofs import ProofError, verify_consistency

# Older entries re-hashed before each checkpoint: an aligned subtree whose node is stored.
# With a 500-event batch the whole watch took about 6 ms (856-byte events), beside the
# batch's 8 ms append and the adapters' signatures it checks first (about 100 ms).
WATCH_SLICE = 1024


class WatchFailure(MappaError):
    """The stored data does not prove the tree head the ledger was about to sign: the
    first entry it cannot vouch for (``entry``; None: it cannot say which) and why."""

    code = "ledger.halted"

    def __init__(self, entry: int | None, problem: str) -> None:
        super().__init__(problem)
        self.entry = entry
        self.problem = problem


class LedgerWatch:
    """The checks of the module over ``log``, re-hashing ``slice`` older entries at each
    (a power of two from ``2**TILE_LEVEL``: a stored node covers each whole slice).
    Raises ``ValueError`` for another ``slice``."""

    def __init__(self, log: EntryLog, *, slice: int = WATCH_SLICE) -> None:
        if slice < 1 << TILE_LEVEL or slice & (slice - 1):
            raise ValueError(f"the watch's slice is a power of two of at least {1 << TILE_LEVEL}")
        self._log = log
        self.slice = slice
        self._level = slice.bit_length() - 1
        self.cursor = 0  # where the next slice of older entries starts

    def check(self, previous: VerifiedCheckpoint | None, size: int, root: bytes) -> None:
        """Prove that ``root`` at ``size`` extends ``previous`` (None: no checkpoint yet)
        from the stored data (the module's checks, in order). Returns nothing; raises
        ``WatchFailure`` naming the first entry it cannot vouch for."""
        old = 0 if previous is None else previous.size
        edge = self._previous_edge(previous)
        signed_edge = dict(zip(merkle.CompactRange.edge_keys(old), edge, strict=True))
        leaves = self._stored_leaves(old, size)
        tree = merkle.CompactRange(old, edge)
        tree.extend(leaves, keep_from=64)  # no level reaches 64: only the edge is kept
        if tree.root() != root:
            raise WatchFailure(
                old,
                f"the tree head the ledger holds at size {size} is not the one its stored "
                f"entries from {old} give",
            )
        if previous is not None and old:
            ranges = merkle.consistency_ranges(old, size)
            try:
                proof = merkle.assemble(ranges, self._log.nodes(merkle.nodes_for(ranges)))
                verify_consistency(old, size, previous.root, root, proof)
            except (KeyError, ProofError) as exc:
                raise WatchFailure(
                    old,
                    f"the stored nodes give no consistency proof from size {old} to {size}: {exc}",
                ) from None
        self._older_slice(old, signed_edge)

    def _previous_edge(self, previous: VerifiedCheckpoint | None) -> list[bytes]:
        if previous is None or previous.size == 0:
            return []
        keys = merkle.CompactRange.edge_keys(previous.size)
        nodes = self._log.nodes(keys)
        if (
            any(k not in nodes for k in keys)
            or merkle.fold([nodes[k] for k in keys]) != previous.root
        ):
            named = self._first_unlike_recorded(previous.size)
            raise WatchFailure(
                named,
                f"the stored tree at size {previous.size} is not the one the checkpoint of "
                "that size signed"
                + ("" if named is None else f": entry {named} is missing or altered"),
            )
        return [nodes[k] for k in keys]

    def _first_unlike_recorded(self, end: int) -> int | None:
        """The first entry below ``end`` that is not stored or unlike its recorded leaf,
        or None (the entries and their recorded leaves agree: which one changed, only
        the signed checkpoints say). Reads the whole range, once, on the way to a halt."""
        expected = 0
        recorded = self._log.recorded_leaves(0, end)
        for first, _, ends, data in self._log.blocks(0, end):
            for offset, raw in enumerate(split_block(ends, data)):
                seq = first + offset
                if seq != expected:
                    return expected
                at = next(recorded, None)
                if at is None or at[0] != seq or at[1] != merkle.leaf_hash(raw):
                    return seq
                expected += 1
        return expected if expected < end else None

    def _stored_leaves(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes of entries ``[start, end)`` from their stored bytes, each held to
        its recorded leaf; raises ``WatchFailure`` at a gap or a difference."""
        sha256 = hashlib.sha256
        leaves: list[bytes] = []
        expected = start
        for first, count, ends_raw, recorded, data in self._log.blocks_with_leaves(
            start - start % BLOCK, end
        ):
            if first + count <= start:
                continue  # the aligned block before ``start``
            if first > expected:
                raise WatchFailure(expected, f"entry {expected} is not stored")
            ends = array("I", ends_raw) if len(ends_raw) % 4 == 0 else array("I")
            if (
                len(ends) != count
                or len(recorded) != 32 * count
                or ends[-1:] != array("I", [len(data)])
            ):
                raise WatchFailure(first, f"the stored block of entries from {first} is malformed")
            view = memoryview(data)  # entries are stored as leaf inputs: hash them in place
            for i, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
                seq = first + i
                if not start <= seq < end:
                    continue
                if seq != expected:
                    raise WatchFailure(expected, f"entry {expected} is not stored")
                leaf = sha256(view[a:b]).digest()
                if leaf != recorded[32 * i : 32 * i + 32]:
                    raise WatchFailure(
                        seq,
                        f"entry {seq} is not the entry appended at that position "
                        "(its stored bytes differ from its recorded hash)",
                    )
                leaves.append(leaf)
                expected += 1
        if expected != end:
            raise WatchFailure(expected, f"entry {expected} is not stored")
        return leaves

    def _older_slice(self, checkpointed: int, signed_edge: dict[merkle.NodeKey, bytes]) -> None:
        """Re-hash the next slice of the entries below ``checkpointed`` (step 5). A whole
        slice is held to its stored node; the last, short one to the nodes of the
        previous checkpoint's edge it ends with (proved against the signed root in
        step 1), so a log of at most ``slice`` entries is held whole to the signed root."""
        if checkpointed == 0:
            return
        if self.cursor >= checkpointed:
            self.cursor = 0
        start = self.cursor
        end = min(start + self.slice, checkpointed)
        # A short slice is the last: round again from 0, so every slice stays aligned.
        self.cursor = end if end - start == self.slice else 0
        leaves = self._stored_leaves(start, end)
        levels = merkle.levels(leaves)
        keys = merkle.range_keys(start, end)
        if end - start == self.slice:
            stored = self._log.nodes(keys)
        else:
            stored = {k: signed_edge[k] for k in keys if k in signed_edge}
        if any(stored.get((lv, i)) != levels[lv][i - (start >> lv)] for lv, i in keys):
            raise WatchFailure(
                start,
                f"entries {start} to {end - 1} are not the ones their stored subtree "
                "covers (entries and their recorded hashes were rewritten)",
            )
