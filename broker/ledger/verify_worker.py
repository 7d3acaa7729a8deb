"""The part of ``verify`` that reads every stored byte, one aligned chunk at a time.

For a chunk of the log (a power of two of entries, at most a segment of the index,
from a multiple of its size), ``check_chunk`` recomputes each entry's leaf hash from
the stored blocks and the chunk's subtree, a level at a time; and, when the chunk
begins a segment, the content hash of each batch of that segment from its
search-index postings (see ``search``). It decides nothing: ``integrity`` folds the
chunks together and holds them to the signed checkpoints.

Run as ``python -m broker.ledger.verify_worker``, a worker reads its job (JSON) and
then chunk starts on stdin and writes one JSON line per chunk on stdout, reading the
database through one read-only, memory-mapped connection. It imports nothing heavy,
so a process per core starts in a tenth of a second (multiprocessing's spawn would
re-import the caller's main module, the whole CLI, in every worker).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

from broker.errors import MappaError
from broker.ledger import merkle, search
from broker.ledger.database import Database, connect
from broker.ledger.log import read_blocks
from broker.ledger.postings import PostingIndex

Batch = tuple[int, int, bytes, bytes]  # first seq, count, content hash, recorded chain value


@dataclass
class ChunkResult:
    """What a worker found in one chunk of the log, for ``integrity`` to fold and judge."""

    start: int
    end: int  # one past the last entry hashed (less than asked if a problem stopped it)
    # The chunk's subtree edge (largest first) at each asked size, and at ``end``.
    edges: dict[int, list[bytes]] = field(default_factory=dict)
    problem: tuple[int, str] | None = None  # (entry, what is wrong with the stored blocks)
    moved: int | None = None  # first entry (from ``compare_from``) unlike its recorded leaf
    batches: list[Batch] = field(default_factory=list)  # starting in this chunk, in order
    index_problem: tuple[int, str] | None = None


def _malformed(first: int) -> tuple[int, str]:
    return (first, f"the stored block of entries from {first} is malformed")


def _leaves(db: Database, result: ChunkResult, end: int, compare_from: int) -> list[bytes]:
    """The leaf hashes of the entries stored from ``result.start``, stopping at a gap or
    a malformed block (noted in ``result``)."""
    sha256 = hashlib.sha256
    leaves: list[bytes] = []
    n = result.start
    step = 1 << 12
    for lo in range(result.start, end, step):
        rows = read_blocks(db, lo, min(lo + step, end))
        for first, count, ends_raw, recorded_raw, data_raw in rows:
            if first != n:
                result.problem = (n, f"entry {n} is missing (the next stored entry is {first})")
                return leaves
            ends, recorded, data = array("I", bytes(ends_raw)), bytes(recorded_raw), bytes(data_raw)
            if (
                count < 1
                or len(ends) != count
                or len(recorded) != 32 * count
                or ends[-1] != len(data)
                or first + count > end
                or sorted(ends) != ends.tolist()
            ):
                result.problem = _malformed(first)
                return leaves
            view = memoryview(data)  # entries are stored as leaf inputs: hash them in place
            mine = [sha256(view[a:b]).digest() for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            if first + count > compare_from and result.moved is None:
                for i, h in enumerate(mine):
                    if first + i >= compare_from and h != recorded[32 * i : 32 * i + 32]:
                        result.moved = first + i
                        break
            leaves += mine
            n += count
    return leaves


def _index(db: Database, result: ChunkResult, size: int) -> None:
    """Content hashes of the batches starting in this chunk (below ``size``), from their
    postings."""
    index = PostingIndex(db)
    segment = result.start >> search.SEGMENT_BITS
    # The database joins each batch's lines (no Python work per posting). PostgreSQL is
    # told their order; SQLite (before 3.44) joins them in the order it reads them,
    # which is the stored order (segment, batch, key), so each batch is re-read in
    # an order it is told whenever its joined lines do not chain to its recorded digest.
    # Joined lines read one way only (so equal text means equal postings) if every key
    # is an integer (SQLite keeps whatever it is given, and sorts text above numbers, so
    # the largest key says) and there are as many line breaks as postings less one (a
    # line break in offsets would pass one posting off as two): checked in the pass.
    joined: dict[Any, str] = {}
    malformed: set[Any] = set()
    for first, lines, postings, top in index.joined(segment, size):
        joined[first] = lines or ""
        if not isinstance(top, int) or joined[first].count("\n") != postings - 1:
            malformed.add(first)
    low, high = segment << search.SEGMENT_BITS, min(size, (segment + 1) << search.SEGMENT_BITS)
    previous = index.digest_before(low)
    for first, count, min_time, max_time, recorded in index.batches(low, high):
        batch = functools.partial(
            search.content_hash,
            first_seq=int(first),
            count=int(count),
            min_time=min_time,
            max_time=max_time,
        )
        content = batch(lines=joined.pop(first, ""))
        if search.link(previous, content) != bytes(recorded):
            content = batch(lines=index.lines(segment, first))
        previous = bytes(recorded)
        result.batches.append((int(first), int(count), content, bytes(recorded)))
        if first in malformed and result.index_problem is None:
            result.index_problem = (
                first,
                f"the search index of entries {first} to {first + count - 1} has a malformed "
                "posting (a key that is not a number, or a line break in its offsets)",
            )
    if joined:  # before any malformed posting: a posting no batch holds
        stray = min(joined)
        result.index_problem = (stray, search.orphan(stray))


def check_chunk(
    db: Database, start: int, end: int, *, marks: list[int], compare_from: int, size: int
) -> ChunkResult:
    """Check entries ``[start, end)`` (``start`` a multiple of ``end - start``) of the
    first ``size`` (what the log held when verify began: later appends are not looked at).

    ``marks``: sizes in ``(start, end]`` at which to report the chunk's edge; leaves from
    ``compare_from`` on are also compared with the ones recorded at append time. Returns
    what was found; a problem with the stored data is noted in it, never raised."""
    result = ChunkResult(start, start)
    leaves = _leaves(db, result, min(end, size), compare_from)
    if start % (1 << search.SEGMENT_BITS) == 0:  # chunks never span segments
        _index(db, result, size)
    result.end = start + len(leaves)
    levels = merkle.levels(leaves)
    for at in [*(m for m in marks if m <= result.end), result.end]:
        result.edges[at] = [
            levels[level][index - (start >> level)] for level, index in merkle.range_keys(start, at)
        ]
    return result


@dataclass(frozen=True)
class Job:
    """What every chunk of one verify run shares (see ``check_chunk``)."""

    target: str
    chunk: int
    marks: list[int]
    compare_from: int
    size: int

    def check(self, db: Database, start: int) -> ChunkResult:
        """``check_chunk`` of the chunk at ``start``, read through ``db``."""
        end = start + self.chunk
        return check_chunk(
            db,
            start,
            end,
            marks=[m for m in self.marks if start < m <= end],
            compare_from=self.compare_from,
            size=self.size,
        )

    def starts(self) -> list[int]:
        """Where each chunk begins (one chunk, from 0, for an empty log)."""
        return list(range(0, max(self.size, 1), self.chunk))

    def to_json(self) -> str:
        """The job as one line of JSON, as a worker reads it (``Job(**json.loads(...))``)."""
        return json.dumps(asdict(self))


def result_to_json(result: ChunkResult) -> str:
    """``result`` as one line of JSON (hashes in hex), as a worker writes it."""
    doc: dict[str, Any] = {
        "start": result.start,
        "end": result.end,
        "edges": {str(s): [h.hex() for h in e] for s, e in result.edges.items()},
        "problem": result.problem,
        "moved": result.moved,
        "batches": [[f, c, h.hex(), r.hex()] for f, c, h, r in result.batches],
        "index_problem": result.index_problem,
    }
    return json.dumps(doc)


def _pair(value: Any) -> tuple[int, str] | None:
    return None if value is None else (int(value[0]), str(value[1]))


def result_from_json(line: str) -> ChunkResult:
    """The chunk result a worker wrote as ``line``. Raises ``ValueError``, ``LookupError``
    or ``TypeError`` if the line is not one."""
    doc = json.loads(line)
    return ChunkResult(
        start=int(doc["start"]),
        end=int(doc["end"]),
        edges={int(s): [bytes.fromhex(h) for h in e] for s, e in doc["edges"].items()},
        problem=_pair(doc["problem"]),
        moved=doc["moved"],
        batches=[
            (int(f), int(c), bytes.fromhex(h), bytes.fromhex(r)) for f, c, h, r in doc["batches"]
        ],
        index_problem=_pair(doc["index_problem"]),
    )


def main() -> None:
    """On stdin: the job (one JSON line), then a chunk start a line, as the parent hands
    them out; on stdout: each chunk's result (one JSON line). Ends at end of input.
    Exits with status 2 (saying why on stderr) if the ledger's database cannot be opened."""
    job = Job(**json.loads(sys.stdin.readline()))
    try:
        db = connect(job.target, scan=True)
    except MappaError as exc:  # said once, plainly: the parent reports the exit status
        sys.stderr.write(f"verify worker: {exc}\n")
        raise SystemExit(2) from None
    try:
        for line in sys.stdin:
            sys.stdout.write(result_to_json(job.check(db, int(line))) + "\n")
            sys.stdout.flush()
    finally:
        db.close()


if __name__ == "__main__":
    main()
