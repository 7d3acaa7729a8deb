"""How long a kind of work took, each time it ran, kept as a histogram by outcome: what
the ledger's whole-ledger verify records (``LedgerReader.verify``) for the metrics
(``broker.observe.metrics``), without the ledger importing a metrics library.

In memory, for the life of the object that keeps it: the metrics read it at scrape time.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

# A verify of a small ledger takes well under a second; one of millions of entries,
# minutes (a worker process per core hashes the log): buckets from 0.1 s to an hour.
VERIFY_BUCKETS_SECONDS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class Histogram:
    """One outcome's runs: how many fell at or below each bound of ``bounds`` (cumulative,
    then +Inf, which is ``count``), their number and their total seconds."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total_seconds: float


class Durations:
    """Runs' durations by outcome, in ``bounds`` buckets. Thread-safe: a verify runs on a
    worker thread while a scrape reads."""

    def __init__(self, bounds: tuple[float, ...] = VERIFY_BUCKETS_SECONDS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be distinct and increasing")
        self._bounds = bounds
        self._lock = threading.Lock()
        # Per outcome: runs per bucket (the last one past every bound), and total seconds.
        self._buckets: dict[str, list[int]] = {}
        self._seconds: dict[str, float] = {}

    def add(self, seconds: float, outcome: str) -> None:
        """Record one run of ``seconds`` that ended in ``outcome``."""
        at = bisect.bisect_left(self._bounds, seconds)
        with self._lock:
            buckets = self._buckets.setdefault(outcome, [0] * (len(self._bounds) + 1))
            buckets[at] += 1
            self._seconds[outcome] = self._seconds.get(outcome, 0.0) + seconds

    def histograms(self) -> dict[str, Histogram]:
        """Each outcome's histogram so far."""
        with self._lock:
            taken = {o: (list(b), self._seconds[o]) for o, b in self._buckets.items()}
        out: dict[str, Histogram] = {}
        for outcome, (buckets, seconds) in taken.items():
            running, cumulative = 0, []
            for n in buckets[:-1]:
                running += n
                cumulative.append(running)
            out[outcome] = Histogram(self._bounds, tuple(cumulative), sum(buckets), seconds)
        return out
