"""``verify``: recompute the whole log from the stored entries and hold it to its checkpoints.

Checks, reading every stored byte once:
  1. every checkpoint's signature (the ledger key) and origin; sizes only grow;
  2. entries are stored 0, 1, 2, ... with no gap, in well-formed blocks;
  3. the tree recomputed from the entries has, at every checkpoint size, the root that
     checkpoint signed; and consecutive checkpoints are consistent (RFC 9162 proof
     built from the stored nodes, checked with the standalone verifier);
  4. where a root does not match, and past the last checkpoint, each entry's leaf hash,
     recomputed from its signed bytes, equals the one recorded when it was appended
     (a modified, inserted or reordered entry differs): this names the entry;
  5. the search index (postings and batch time ranges) recomputes to the digest each
     checkpoint signed, and to the one recorded with each batch: this names the batch;
  6. no event id is recorded for an entry that is no longer stored.
The first failure is reported with the entry it concerns. Nothing is ever repaired.

The log is hashed in aligned chunks of ``HASH_CHUNK`` entries on a process per core
(``verify_worker``), each handed the next chunk as it finishes one: a chunk's subtree
does not depend on any other, so the chunks' edges fold into the tree head at any size
(see ``_root_at``). Meanwhile this process checks what needs no entry (signatures,
consistency proofs, the event-id count); whatever it finds is still reported in the
order above.

A caller may follow the hashing (``progress``: entries hashed of the entries to hash,
as each chunk is done) and stop it (``stopped``: asked between chunks and while waiting
for the workers, which are then killed): the web console's verify job does both.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import IO, Any

from broker.errors import MappaError, VerificationError
from broker.ledger import merkle, search
from broker.ledger.checkpoint import VerifiedCheckpoint, open_checkpoint
from broker.ledger.database import connect
from broker.ledger.log import split_block
from broker.ledger.schema import BLOCK
from broker.ledger.store import LedgerStore
from broker.ledger.verify_proofs import ProofError, verify_consistency
from broker.ledger.verify_worker import ChunkResult, Job, result_from_json

CHUNK = 1 << search.SEGMENT_BITS  # a chunk of the log is a segment of its index, or part
# Chunks of a quarter segment: small enough that the workers finish together.
HASH_CHUNK = CHUNK >> 2
# glibc's malloc hands freed heap memory back to the kernel once 128 KiB lie free at its
# top, so a worker freeing each chunk's leaves and blocks had the same pages zeroed and
# faulted in again, chunk after chunk (a tenth of its time, all system time). A worker
# keeps what it has had instead: a few tens of MiB. Other C libraries ignore this.
_WORKER_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
# How a verify worker is started (a test puts a misbehaving one in its place).
WORKER_COMMAND = [sys.executable, "-m", "broker.ledger.verify_worker"]
# How often, in seconds, waiting for the workers asks whether to stop.
STOP_POLL = 0.1

# ``progress(hashed, total)``: entries hashed so far of the ``total`` to hash.
Progress = Callable[[int, int], None]
# ``stopped()``: whether the caller wants verify to stop now.
Stopped = Callable[[], bool]


def never_stopped() -> bool:
    """The ``stopped`` of a caller that never stops verify: always False."""
    return False


class _Results:
    """The chunks' results by start, as they come in (from the drivers' threads at once:
    hence the lock), each time telling ``progress`` how many entries are hashed."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.by_start: dict[int, ChunkResult] = {}
        self._total = total
        self._progress = progress
        self._hashed = 0
        self._lock = threading.Lock()
        if progress is not None:
            progress(0, total)

    def add(self, result: ChunkResult) -> None:
        with self._lock:
            self.by_start[result.start] = result
            self._hashed += max(result.end - result.start, 0)
            if self._progress is not None:
                self._progress(min(self._hashed, self._total), self._total)


@dataclass(frozen=True)
class IntegrityReport:
    """What ``verify_ledger`` found: whether the ledger is intact, how many entries,
    checkpoints and refused records it holds, and the first problem (with the entry it
    concerns, where there is one) if it is not."""

    intact: bool
    entries: int
    checkpoints: int
    latest_checkpoint_size: int
    rejected: int
    first_bad_entry: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, one key per field."""
        return asdict(self)


class VerifyIncomplete(MappaError, RuntimeError):
    """Verify could not finish (a worker process failed): nothing is said of the ledger."""

    code = "audit.verify-incomplete"


class _Tampered(Exception):
    def __init__(self, entry: int | None, problem: str) -> None:
        super().__init__(problem)
        self.entry = entry
        self.problem = problem


def _checkpoints(
    rows: list[tuple[int, str, str]], vkey: str, origin: str
) -> list[VerifiedCheckpoint]:
    verified: list[VerifiedCheckpoint] = []
    for size, time, note in rows:
        try:
            cp = open_checkpoint(note, vkey, origin=origin)
        except VerificationError as exc:
            raise _Tampered(None, f"checkpoint of size {size}: {exc}") from None
        if cp.size != size or cp.time != time:
            raise _Tampered(None, f"checkpoint of size {size}: its row disagrees with its note")
        if verified and cp.time is not None and (verified[-1].time or "") > cp.time:
            raise _Tampered(None, f"checkpoint of size {size} is dated before an earlier one")
        if cp.index is None:
            raise _Tampered(None, f"checkpoint of size {size} does not seal the search index")
        verified.append(cp)
    return verified


def _inconsistency(store: LedgerStore, checkpoints: list[VerifiedCheckpoint]) -> _Tampered | None:
    """The first pair of consecutive checkpoints whose stored nodes give no valid
    consistency proof, if any."""
    for old, new in itertools.pairwise(checkpoints):
        ranges = merkle.consistency_ranges(old.size, new.size)
        try:
            proof = merkle.assemble(ranges, store.nodes(merkle.nodes_for(ranges)))
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except (KeyError, ProofError) as exc:
            return _Tampered(
                old.size, f"checkpoints of size {old.size} and {new.size} are not consistent: {exc}"
            )
    return None


def _first_moved(store: LedgerStore, start: int, end: int) -> int | None:
    """The first entry in ``[start, end)`` whose leaf differs from the one recorded at append
    (or that has no recorded leaf)."""
    recorded = dict(store.recorded_leaves(start, end))
    for first, _, ends, data in store.blocks(start - start % BLOCK, end):
        for offset, raw in enumerate(split_block(ends, data)):
            seq = first + offset
            if start <= seq < end and recorded.get(seq) != merkle.leaf_hash(raw):
                return seq
    return None


def _moved(entry: int) -> _Tampered:
    return _Tampered(
        entry, f"entry {entry} is not the entry appended at that position (modified or moved)"
    )


def _named(store: LedgerStore, vouched: int, size: int) -> _Tampered:
    """Why the root at ``size`` does not match: the first entry unlike its recorded leaf,
    or (when leaves were rewritten too) the range the last good checkpoint leaves open."""
    moved = _first_moved(store, vouched, size)
    if moved is not None:
        return _moved(moved)
    return _Tampered(
        vouched,
        f"an entry from {vouched} to {size - 1} is not what the signed checkpoint of "
        f"size {size} covers (entries and their recorded hashes were rewritten)",
    )


def _root_at(prefix: list[bytes], edge: list[bytes]) -> bytes:
    return merkle.fold(prefix + edge) if prefix or edge else merkle.EMPTY_ROOT


def _entries(
    store: LedgerStore,
    checkpoints: list[VerifiedCheckpoint],
    job: Job,
    results: dict[int, ChunkResult],
) -> tuple[int, list[ChunkResult]]:
    """Hold the hashed chunks' roots to the checkpoints; returns how many entries there
    are, and every chunk's result in order."""
    stored, chunk = job.size, job.chunk
    starts = job.starts()
    targets = iter(checkpoints)
    target = next(targets, None)
    while target is not None and target.size == 0:
        target = next(targets, None)
    # The tree over every complete chunk so far, each chunk's subtree one of its leaves.
    prefix = merkle.CompactRange()
    vouched = n = 0
    for start in starts:
        result = results[start]
        while target is not None and target.size <= result.end:
            if _root_at(prefix.edge, result.edges[target.size]) != target.root:
                raise _named(store, vouched, target.size)
            vouched = target.size
            target = next(targets, None)
        if result.problem is not None:
            at, problem = result.problem
            moved = _first_moved(store, vouched, at)
            raise _moved(moved) if moved is not None else _Tampered(at, problem)
        n = result.end
        if result.moved is not None:
            raise _moved(result.moved)
        if n < min(start + chunk, stored):
            raise _Tampered(n, f"entry {n} is missing (the log goes on to {stored - 1})")
        if n == start + chunk:
            prefix.extend([result.edges[n][0]], keep_from=64)  # a whole chunk: its root
    if target is not None:
        raise _Tampered(n, f"entries from {n} are missing: a checkpoint covers {target.size}")
    return n, [results[s] for s in starts]


def _stop() -> VerifyIncomplete:
    return VerifyIncomplete("verify was stopped before it finished: nothing is said of the ledger")


@contextmanager
def hashing(
    job: Job,
    workers: int,
    *,
    progress: Progress | None = None,
    stopped: Stopped = never_stopped,
) -> Iterator[Callable[[], dict[int, ChunkResult]]]:
    """Hash every chunk of ``job`` while the caller goes on; what it yields waits for
    every chunk's result and returns them by chunk start. Here for one chunk or one
    worker, else on a process per worker, each handed the next chunk as it finishes one
    (the first chunk of each segment also reads that segment's index, so chunks differ
    in cost). No worker outlives the block. ``progress`` is told the entries hashed as
    each chunk is done (from a driver thread, when on workers); ``stopped`` is asked
    before each chunk hashed here, every ``STOP_POLL`` seconds while waiting, and once
    every chunk is hashed.

    Waiting raises ``VerifyIncomplete`` (``audit.verify-incomplete``) if a worker fails,
    answers something other than a chunk result, or ends without answering, or once
    ``stopped()`` is true (the workers killed); hashing here raises
    ``ConfigurationError`` (``config.invalid``) if there is no ledger database at
    ``job.target``."""
    starts = job.starts()
    results = _Results(job.size, progress)
    if workers <= 1 or len(starts) <= 1:
        yield lambda: _hash_here(job, results, stopped)
        return
    pending = collections.deque(starts)
    failures: list[str] = []
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(min(workers, len(starts))):
            procs.append(
                subprocess.Popen(  # noqa: S603 - this package's own worker, no shell
                    WORKER_COMMAND,
                    env={**os.environ, **_WORKER_ENV},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        drivers = [
            threading.Thread(target=_drive, args=(p, job, pending, results, failures), daemon=True)
            for p in procs
        ]
        for driver in drivers:
            driver.start()

        def wait() -> dict[int, ChunkResult]:
            for driver in drivers:
                # Joined a slice at a time, so that a stop is seen while a chunk hashes;
                # the ``finally`` below kills the workers, which ends their drivers.
                while driver.is_alive():
                    if stopped():
                        raise _stop()
                    driver.join(STOP_POLL)
            if stopped():  # asked for as the last chunk came in: a stop all the same
                raise _stop()
            if failures:  # a worker that answers nonsense may block on the rest of it
                for proc in procs:
                    proc.kill()
            exits = [proc.wait() for proc in procs]
            why = _failure(failures, exits, len(starts) - len(results.by_start))
            if why is not None:
                raise VerifyIncomplete(
                    f"a verify worker failed: {why} (its own message, if any, is on standard "
                    "error); verify did not finish and says nothing about the ledger"
                )
            return results.by_start

        yield wait
    finally:
        for proc in procs:  # on any failure or Ctrl-C: no worker outlives verify
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def _failure(failures: list[str], exits: list[int], missing: int) -> str | None:
    if failures:
        return failures[0]
    if any(exits):
        return f"exit {next(e for e in exits if e)}"
    return f"a worker ended without answering for {missing} chunk(s)" if missing else None


def _hash_here(job: Job, results: _Results, stopped: Stopped) -> dict[int, ChunkResult]:
    """Every chunk's result by start, hashed in this thread. Raises ``VerifyIncomplete``
    if ``stopped()`` before a chunk or after the last."""
    db = connect(job.target, scan=True)
    try:
        for start in job.starts():
            if stopped():
                raise _stop()
            results.add(job.check(db, start))
        if stopped():
            raise _stop()
        return results.by_start
    finally:
        db.close()


def _drive(
    proc: subprocess.Popen[str],
    job: Job,
    pending: collections.deque[int],
    results: _Results,
    failures: list[str],
) -> None:
    """Feed one worker chunks from ``pending`` (two ahead, so it never waits for the
    next) and collect its results, until ``pending`` is empty."""
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None  # noqa: S101 - PIPE
    assert stdout is not None  # noqa: S101 - PIPE
    try:
        stdin.write(job.to_json() + "\n")
        handed = _hand(stdin, pending) + _hand(stdin, pending)
        while handed:
            line = stdout.readline()
            if not line:  # it died: its exit status says how
                return
            try:
                result = result_from_json(line)
            except (ValueError, LookupError, TypeError):
                failures.append(f"a worker answered {line[:80]!r}, which is not a chunk result")
                return
            results.add(result)
            handed -= 1
            if not stdin.closed:
                handed += _hand(stdin, pending)
    except OSError as exc:
        failures.append(f"the pipe to a worker broke ({exc})")
    finally:
        if not stdin.closed:
            stdin.close()


def _hand(stdin: IO[str], pending: collections.deque[int]) -> int:
    """Hand the worker the next chunk (1), or end its input when none is left (0)."""
    try:
        start = pending.popleft()  # a deque's popleft is atomic across threads
    except IndexError:
        stdin.close()
        return 0
    stdin.write(f"{start}\n")
    stdin.flush()
    return 1


def _index(
    store: LedgerStore, chunks: list[ChunkResult], checkpoints: list[VerifiedCheckpoint], n: int
) -> None:
    """Chain the batches' index content hashes (from the chunks) and hold the chain to
    each batch's recorded value and to each checkpoint's ``index`` line."""
    batches = [b for c in chunks for b in c.batches]
    for c in chunks:
        if c.index_problem is not None:
            raise _Tampered(*c.index_problem)
    # Every segment a chunk began was read whole by its worker (a posting no batch there
    # holds is reported above); a posting filed under any other segment is a stray.
    stray, strays = store.index.strays(max(n - 1, 0) >> search.SEGMENT_BITS, n)
    if strays:
        raise _Tampered(stray, search.orphan(stray))
    expected = 0
    chain: list[bytes] = []
    value = search.GENESIS
    for first, count, content, recorded in batches:
        if first != expected:
            raise _Tampered(expected, f"the search index has no batch for entry {expected}")
        expected = first + count
        value = search.link(value, content)
        chain.append(value)
        if value != recorded:
            raise _Tampered(
                first,
                f"the search index of entries {first} to {first + count - 1} differs from "
                "the one recorded when they were appended",
            )
    if expected != n:
        raise _Tampered(
            min(expected, n), f"the search index covers {expected} entries, the log {n}"
        )
    # The chain value at a size is the one after the last batch that starts below it.
    firsts = [b[0] for b in batches]
    vouched = 0
    for cp in checkpoints:
        i = bisect.bisect_left(firsts, cp.size) - 1
        if (search.GENESIS if i < 0 else chain[i]) != cp.index:
            raise _Tampered(
                vouched,
                f"the search index of entries from {vouched} to {cp.size - 1} is not what the "
                f"signed checkpoint of size {cp.size} sealed (postings and their recorded "
                "digests were rewritten)",
            )
        vouched = cp.size


def _id_count(store: LedgerStore) -> tuple[int, int]:
    """How many event ids are recorded, and then how many entries are stored. The log
    may have grown since verify began (ids and entries are committed together): so the
    ids are counted first and held to the size read after them."""
    count = store.event_id_count()
    return count, store.size()


def _ids(counted: tuple[int, int], n: int) -> None:
    """One recorded event id per stored entry: more means entries were removed, whole
    blocks at the end included (which no checkpoint may cover yet)."""
    count, now = counted
    if count > now:
        raise _Tampered(now, f"entry {now} was recorded at append time but is no longer stored")
    if count < n:
        raise _Tampered(
            None,
            f"{count} event ids are recorded for {n} entries: ids were deleted, so a "
            "redelivered event could be appended twice",
        )


def verify_ledger(
    store: LedgerStore,
    *,
    verifier_key: str,
    origin: str,
    chunk: int = HASH_CHUNK,
    workers: int | None = None,
    progress: Progress | None = None,
    stopped: Stopped = never_stopped,
) -> IntegrityReport:
    """Recompute the whole log of ``store`` and hold it to its checkpoints, signed by
    ``verifier_key`` for ``origin`` (the checks are in the module's docstring), hashing
    ``chunk`` entries at a time on ``workers`` processes (default: one per core), telling
    ``progress`` the entries hashed of the entries stored as each chunk is done.
    Returns the report: tampering is reported in it, never raised, and nothing is
    repaired.

    Raises ``ValueError`` if ``chunk`` is not a power of two from ``BLOCK`` to ``CHUNK``,
    and ``VerifyIncomplete`` (``audit.verify-incomplete``) if a worker fails or
    ``stopped()`` turns true while the log is hashed (then nothing is said of the
    ledger)."""
    if not BLOCK <= chunk <= CHUNK or chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two from {BLOCK} to {CHUNK} entries")
    rejected = store.rejected_count()
    count = checkpoints = latest = 0
    if workers is None:
        workers = os.cpu_count() or 1
    try:
        rows = store.checkpoints()
        sizes = [size for size, _, _ in rows]  # held to their signed notes below
        job = Job(
            target=str(store.target),
            chunk=chunk,
            marks=sizes,
            compare_from=sizes[-1] if sizes else 0,
            size=store.size(),
        )
        # The workers hash while this process checks what needs no entry; problems are
        # still reported in the order of the module's list.
        with hashing(job, workers, progress=progress, stopped=stopped) as hashed:
            verified = _checkpoints(rows, verifier_key, origin)
            checkpoints = len(verified)
            latest = verified[-1].size if verified else 0
            inconsistent = _inconsistency(store, verified)
            counted = _id_count(store)
            results = hashed()
        count, chunks = _entries(store, verified, job, results)
        if inconsistent is not None:
            raise inconsistent
        _index(store, chunks, verified, count)
        _ids(counted, count)
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
    return IntegrityReport(
        intact=True,
        entries=count,
        checkpoints=checkpoints,
        latest_checkpoint_size=latest,
        rejected=rejected,
    )
