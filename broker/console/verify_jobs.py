"""Whole-ledger verification as a background job, for the IG officer's console pages
(``governance.py``): the POST starts one and answers at once, and the job's page shows
how far it has got until it shows what was found.

The work is ``LedgerReader.verify`` (``broker.ledger.integrity``), told to report the
entries hashed and asked whether to stop; nothing here checks anything itself.

Bounded: one job runs at a time per console (a verify runs a worker process per core,
and the reader runs one verify at a time anyway): starting another while one runs gives
the running one. The last ``KEEP`` finished jobs are kept for their pages, in memory
only; a job's id is 128 random bits, so no one finds a job's page by guessing.

A job stops with the server: it runs on the server that started it (``alive``: the
running backend is still the one it started on) and is stopped once that is no longer
so, which is the first thing the app's lifespan does on shutdown (``broker.api.compose``
drops its backend before stopping it). The verify asks at each chunk, and every tenth
of a second while worker processes hash, then kills its workers. Its thread is not a
daemon, so the interpreter waits for it rather than leave worker processes behind.
``VerifyJobs.stop`` stops the running job and waits for it. (The console is a mounted
app, whose own lifespan Starlette never runs: hence the backend as the signal.)
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from broker.errors import MappaError
from broker.ledger.integrity import IntegrityReport, Progress, Stopped

log = logging.getLogger(__name__)

# Finished jobs kept for their pages; older ones are forgotten (their pages are 404s).
KEEP = 16
# Bytes of randomness in a job's id (URL-safe base64: 22 characters).
ID_BYTES = 16


class Verifier(Protocol):
    """What a job needs of the ledger: ``broker.ledger.reader.LedgerReader``'s verify and
    checkpoint JSON."""

    def verify(
        self, *, progress: Progress | None = None, stopped: Stopped | None = None
    ) -> IntegrityReport: ...

    def checkpoint_json(self, size: int | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class JobState:
    """A job as it stands: entries ``checked`` of ``total`` while it runs, then the
    ``report`` (and the latest checkpoint's JSON, for its root hash, if the ledger is
    intact) or the ``failure`` that stopped it before it could say anything."""

    job_id: str
    started_by: str
    started_at: datetime
    checked: int = 0
    total: int = 0
    finished_at: datetime | None = None
    report: IntegrityReport | None = None
    checkpoint: dict[str, Any] | None = None
    failure: str | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def percent(self) -> int:
        """How far the hashing has got, in whole percent (100 for an empty ledger)."""
        return 100 if self.total == 0 else min(100, self.checked * 100 // self.total)


class _Job:
    """A job's state, written by its thread and read by the pages' (under a lock)."""

    def __init__(self, state: JobState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def progressed(self, checked: int, total: int) -> None:
        self.update(checked=checked, total=total)


class VerifyJobs:
    """The console's verify jobs (module docstring): at most one running, the last
    ``KEEP`` finished ones kept."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, reader: Verifier, *, by: str, alive: Callable[[], bool]) -> JobState:
        """A job verifying ``reader``'s ledger, started for ``by`` (a username), stopped
        when ``alive()`` is false (the server stopping); or the job already running, if
        one is. Returns the job's state as it starts. Raises nothing of its own."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.state.running]
            if running:
                return running[0].state
            job_id = secrets.token_urlsafe(ID_BYTES)
            job = _Job(JobState(job_id=job_id, started_by=by, started_at=self._clock()))
            self._jobs[job_id] = job
            self._forget_old()

            def stopped() -> bool:
                return job.stop.is_set() or not alive()

            job.thread = threading.Thread(
                target=self._run, args=(job, reader, stopped), name=f"verify-{job_id[:6]}"
            )
            job.thread.start()
            return job.state

    def get(self, job_id: str) -> JobState | None:
        """The job's state, or None if there is no such job (or it was forgotten)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return None if job is None else job.state

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every running job, and wait up to ``timeout`` seconds for each to end."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop.set()
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout)

    def _forget_old(self) -> None:
        """Called as a job starts: room is left for it, so that once it has finished
        the jobs kept are the last ``KEEP`` finished."""
        finished = [k for k, j in self._jobs.items() if not j.state.running]
        for job_id in finished[: max(len(finished) - (KEEP - 1), 0)]:
            del self._jobs[job_id]

    def _run(self, job: _Job, reader: Verifier, stopped: Callable[[], bool]) -> None:
        """The job's thread: the verify, then its report or why it could not finish."""
        try:
            report = reader.verify(progress=job.progressed, stopped=stopped)
        except MappaError as exc:  # a worker failed, a stop, the ledger's database away
            job.update(failure=exc.reason, finished_at=self._clock())
            return
        except Exception:
            if stopped():
                # The server stopping closes the ledger's database under a verify that
                # had not yet asked whether to stop: that is the stop, not a fault.
                failure = "verify was stopped before it finished: the server stopped"
            else:
                # Nothing to show but that it failed; the traceback is for the operator.
                log.exception("the console's verify job failed")
                failure = "verify failed unexpectedly; the server's log says why"
            job.update(failure=failure, finished_at=self._clock())
            return
        checkpoint = None
        if report.intact and report.latest_checkpoint_size:
            try:
                checkpoint = reader.checkpoint_json(report.latest_checkpoint_size)
            except MappaError:
                checkpoint = None  # the report stands without the root hash
        job.update(report=report, checkpoint=checkpoint, finished_at=self._clock())
