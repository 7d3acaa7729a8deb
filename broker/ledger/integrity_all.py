"""``verify --all``: every problem ``verify`` can find in one pass, not only the first.

The pass (in this process, over the stored data as it stands), each problem kept with the
first entry it concerns and, for a range, its last:

  1. every checkpoint: its signature and origin, its row against its note, its date
     after the one before, its ``index`` line; a bad one is reported and left out of
     the rest;
  2. every stored block in order: a gap before it (a range of missing entries), a
     malformed block (its range), and each entry whose recomputed leaf differs from the
     one recorded at append (runs of them as one range);
  3. the tree recomputed from the stored entries at each good checkpoint's size, up to
     the first gap, against that checkpoint's root: a mismatch no entry of step 2
     explains is reported as the range since the last checkpoint that matched (entries
     rewritten with their recorded hashes); a checkpoint past the last stored entry;
  4. consecutive good checkpoints are consistent (proof from stored nodes, checked by
     the standalone verifier): a gap or a rewritten recorded hash fails the proofs
     that need it, each reported;
  5. the search index and the event ids: ``verify_ledger``'s own first problem there,
     when no problem above names the same entry.

It stops collecting at ``max_problems`` (``truncated`` then says more may be found).
Nothing is repaired; the default ``verify`` (first problem, on a process per core) is
unchanged.
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

from broker.errors import VerificationError
from broker.ledger import merkle
from broker.ledger.checkpoint import VerifiedCheckpoint, open_checkpoint
from broker.ledger.integrity import Progress, Stopped, never_stopped, verify_ledger
from broker.ledger.log import split_block
from broker.ledger.store import LedgerStore
from broker.ledger.verify_proofs import ProofError, verify_consistency

# The default cap on problems reported by one pass: enough to see the shape of an
# attack, short enough to read; a ledger altered everywhere is not listed entry by entry.
DEFAULT_MAX_PROBLEMS = 100
# The largest cap a caller may ask for: the report stays a few hundred kilobytes.
MAX_PROBLEMS = 10_000


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the first entry it concerns (None: none in particular, such as a
    forged checkpoint), the last of its range (None: one entry or none), and what."""

    entry: int | None
    last: int | None
    problem: str


class _Full(Exception):
    """The cap is reached: stop collecting."""


@dataclass
class _Problems:
    cap: int
    found: list[Problem] = field(default_factory=list)

    def add(self, entry: int | None, problem: str, last: int | None = None) -> None:
        if len(self.found) >= self.cap:
            raise _Full
        self.found.append(Problem(entry, last, problem))

    def names(self, start: int, end: int) -> bool:
        """Whether a problem already concerns an entry in ``[start, end)``."""
        return any(
            p.entry is not None and p.entry < end and (p.last or p.entry) >= start
            for p in self.found
        )


@dataclass(frozen=True)
class FullReport:
    """What ``verify_all`` found: whether the ledger is intact, its figures as in
    ``IntegrityReport``, every problem found (up to the cap) and whether the cap cut
    the list short."""

    intact: bool
    entries: int
    checkpoints: int
    latest_checkpoint_size: int
    rejected: int
    max_problems: int
    truncated: bool
    problems: list[Problem]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, one key per field (problems as dicts)."""
        return asdict(self)


def _checkpoints(
    store: LedgerStore, vkey: str, origin: str, found: _Problems
) -> list[VerifiedCheckpoint]:
    good: list[VerifiedCheckpoint] = []
    for size, time, note in store.checkpoints():
        try:
            cp = open_checkpoint(note, vkey, origin=origin)
        except VerificationError as exc:
            found.add(None, f"checkpoint of size {size}: {exc}")
            continue
        if cp.size != size or cp.time != time:
            found.add(None, f"checkpoint of size {size}: its row disagrees with its note")
        elif good and cp.time is not None and (good[-1].time or "") > cp.time:
            found.add(None, f"checkpoint of size {size} is dated before an earlier one")
        elif cp.index is None:
            found.add(None, f"checkpoint of size {size} does not seal the search index")
        else:
            good.append(cp)
    return good


def _consistency(store: LedgerStore, good: list[VerifiedCheckpoint], found: _Problems) -> None:
    for old, new in itertools.pairwise(good):
        ranges = merkle.consistency_ranges(old.size, new.size)
        try:
            proof = merkle.assemble(ranges, store.nodes(merkle.nodes_for(ranges)))
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except KeyError:
            found.add(
                old.size,
                f"checkpoints of size {old.size} and {new.size} are not consistent: a node "
                "their proof needs is not stored",
            )
        except ProofError as exc:
            found.add(
                old.size, f"checkpoints of size {old.size} and {new.size} are not consistent: {exc}"
            )


def _well_formed(count: int, ends: bytes, data: bytes) -> bool:
    if len(ends) % 4:
        return False
    positions = array("I", ends)
    return (
        count >= 1
        and len(positions) == count
        and positions[-1] == len(data)
        and sorted(positions) == positions.tolist()
    )


def _entries(store: LedgerStore, found: _Problems) -> list[bytes]:
    """The recomputed leaves of the entries stored from 0 up to the first gap or
    malformed block; every gap, malformed block and moved entry reported on the way."""
    recorded = dict(store.recorded_leaves())
    leaves: list[bytes] = []
    contiguous = True
    expected = 0
    run: tuple[int, int] | None = None  # a run of moved entries not yet reported

    def close_run() -> None:
        nonlocal run
        if run is not None:
            first, last = run
            run = None
            found.add(first, _moved(first, last), None if first == last else last)

    for first, count, ends, data in store.blocks():
        if first < expected:
            close_run()
            found.add(first, f"the stored block of entries from {first} overlaps the one before")
            continue
        if first > expected:
            close_run()
            found.add(expected, f"entries from {expected} to {first - 1} are missing", first - 1)
            contiguous = False
        if not _well_formed(count, ends, data):
            close_run()
            found.add(first, f"the stored block of entries from {first} is malformed")
            contiguous = False
            expected = first + max(count, 1)
            continue
        for offset, raw in enumerate(split_block(ends, data)):
            seq = first + offset
            leaf = merkle.leaf_hash(raw)
            if recorded.get(seq) == leaf:
                close_run()
            elif run is not None and run[1] == seq - 1:
                run = (run[0], seq)
            else:
                close_run()
                run = (seq, seq)
            if contiguous:
                leaves.append(leaf)
        expected = first + count
    close_run()
    return leaves


def _moved(first: int, last: int) -> str:
    if first == last:
        return f"entry {first} is not the entry appended at that position (modified or moved)"
    return (
        f"entries {first} to {last} are not the entries appended at those positions "
        "(modified or moved)"
    )


def _roots(
    leaves: list[bytes], stored: int, good: list[VerifiedCheckpoint], found: _Problems
) -> None:
    tree = merkle.CompactRange()
    vouched = 0
    for cp in good:
        if cp.size > stored:
            found.add(
                min(stored, cp.size),
                f"entries from {stored} are missing: a checkpoint covers {cp.size}",
                cp.size - 1,
            )
            return
        if cp.size > len(leaves):
            return  # past a gap, reported above: no root can be recomputed
        tree.extend(leaves[tree.size : cp.size], keep_from=64)
        if tree.root() == cp.root:
            vouched = cp.size
        elif not found.names(vouched, cp.size):
            found.add(
                vouched,
                f"an entry from {vouched} to {cp.size - 1} is not what the signed checkpoint "
                f"of size {cp.size} covers (entries and their recorded hashes were rewritten)",
                cp.size - 1,
            )


def verify_all(
    store: LedgerStore,
    *,
    verifier_key: str,
    origin: str,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    workers: int | None = None,
    progress: Progress | None = None,
    stopped: Stopped = never_stopped,
) -> FullReport:
    """Every problem of ``store`` (the module's pass), at most ``max_problems``. Returns
    the report: tampering is reported in it, never raised, and nothing is repaired.
    Raises ``ValueError`` unless ``max_problems`` is from 1 to ``MAX_PROBLEMS``, and
    ``VerifyIncomplete`` (``audit.verify-incomplete``) as ``verify_ledger`` does (the
    search index and event ids are its checks: step 5)."""
    if not 1 <= max_problems <= MAX_PROBLEMS:
        raise ValueError(f"max problems must be from 1 to {MAX_PROBLEMS}")
    first = verify_ledger(
        store,
        verifier_key=verifier_key,
        origin=origin,
        workers=workers,
        progress=progress,
        stopped=stopped,
    )
    found = _Problems(max_problems)
    truncated = False
    try:
        good = _checkpoints(store, verifier_key, origin, found)
        leaves = _entries(store, found)
        # Before the consistency proofs: a root is explained by an entry problem only.
        _roots(leaves, store.size(), good, found)
        _consistency(store, good, found)
        if not first.intact and not any(p.entry == first.first_bad_entry for p in found.found):
            found.add(first.first_bad_entry, first.problem or "tampered")
    except _Full:
        truncated = True
    problems = sorted(found.found, key=lambda p: -1 if p.entry is None else p.entry)
    sizes = [size for size, _, _ in store.checkpoints()]
    return FullReport(
        intact=first.intact and not problems,
        entries=store.size(),
        checkpoints=len(sizes),
        latest_checkpoint_size=max(sizes, default=0),
        rejected=first.rejected,
        max_problems=max_problems,
        truncated=truncated,
        problems=problems,
    )
