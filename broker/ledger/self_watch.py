"""What the running ledger does about its own integrity: the watch before each checkpoint
(``watch``), the alarm and the halt when it fails, the scheduled whole-ledger verify, and
the check at start that lifts a halt once the ledger verifies intact again.

On a failure the ledger refuses to sign, records an alarm (``alarms``: durable, shown
by ``GET /governance/alarms`` and ``mappa audit verify``), logs one line (entry numbers
and sizes, never an entry's content) and halts: ``LedgerService`` appends nothing more
and reads nothing more, so its offsets stay where they are and nothing is skipped. The
halt outlives a restart (the alarm is in the database); a start with an alarm open runs
a full ``verify`` and lifts the halt (an alarm of kind ``cleared``) only if it finds the
ledger intact, say after the database was restored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from broker.errors import VerificationError
from broker.ledger.alarms import Alarm, AlarmKind
from broker.ledger.checkpoint import CheckpointSigner, VerifiedCheckpoint, open_checkpoint
from broker.ledger.integrity import IntegrityReport, VerifyIncomplete, verify_ledger
from broker.ledger.store import LedgerStore
from broker.ledger.watch import WATCH_SLICE, LedgerWatch, WatchFailure
from schemas.common import format_timestamp

log = logging.getLogger(__name__)
HALTED = "ledger.halted"


def halted_error(alarm: Alarm) -> VerificationError:
    """The refusal of a halted ledger to append or sign (``ledger.halted``)."""
    where = "" if alarm.first_bad_entry is None else f" at entry {alarm.first_bad_entry}"
    return VerificationError(
        f"the ledger is halted: its {alarm.kind} raised an alarm{where} ({alarm.problem}); "
        "it signs and appends nothing until it verifies intact at a start",
        code=HALTED,
    )


class SelfWatch:
    """The ledger's watch over ``store``, signing with ``signer``, its alarms dated by
    ``clock``; ``slice`` older entries re-hashed per checkpoint (see ``watch``)."""

    def __init__(
        self,
        *,
        store: LedgerStore,
        signer: CheckpointSigner,
        clock: Callable[[], datetime],
        slice: int = WATCH_SLICE,
    ) -> None:
        self.store = store
        self.signer = signer
        self._clock = clock
        self.watch = LedgerWatch(store, slice=slice)
        self.status = store.status
        self.status.halted = store.alarms.open()
        self._stopping = threading.Event()

    @property
    def halted(self) -> Alarm | None:
        """The open alarm that halts the ledger, or None while it runs."""
        return self.status.halted

    def before_signing(self, size: int, root: bytes) -> None:
        """Prove ``root`` at ``size`` from the stored data (``LedgerWatch.check``) against
        the latest stored checkpoint. Returns nothing; on a failure raises the alarm and
        ``VerificationError`` (``ledger.halted``), as it does at once while halted."""
        if self.halted is not None:
            raise halted_error(self.halted)
        try:
            self.watch.check(self._previous(), size, root)
        except WatchFailure as bad:
            raise halted_error(self.alarm("watch", bad.entry, bad.problem)) from None

    def _previous(self) -> VerifiedCheckpoint | None:
        latest = self.store.latest_checkpoint()
        if latest is None:
            return None
        try:
            return open_checkpoint(latest[2], self.signer.verifier_key, origin=self.signer.origin)
        except VerificationError as exc:
            raise WatchFailure(None, f"the latest checkpoint (size {latest[0]}): {exc}") from None

    def alarm(self, kind: AlarmKind, entry: int | None, problem: str) -> Alarm:
        """Record the alarm, log it (one line), and halt. Returns the alarm."""
        self.store.alarms.add(
            time=format_timestamp(self._clock()), kind=kind, first_bad_entry=entry, problem=problem
        )
        alarm = self.store.alarms.open()
        assert alarm is not None  # noqa: S101 - just added, and not "cleared"
        self.status.halted = alarm
        log.error(
            "ledger halted: alarm %d from its %s, first bad entry %s: %s",
            alarm.id, kind, entry, problem,
        )  # fmt: skip
        return alarm

    def verify(self, *, workers: int | None = None) -> IntegrityReport:
        """The whole ledger verified now, its progress in ``status.verify``; tampering
        raises the alarm. Returns the report. Raises ``VerifyIncomplete`` if a worker
        fails or ``stop`` was called (nothing is then said of the ledger)."""
        progress = self.status.verify
        progress.running, progress.hashed, progress.total = True, 0, self.store.size()

        def advance(hashed: int, total: int) -> None:
            progress.hashed, progress.total = hashed, total

        try:
            report = verify_ledger(
                self.store,
                verifier_key=self.signer.verifier_key,
                origin=self.signer.origin,
                workers=workers,
                progress=advance,
                stopped=self._stopping.is_set,
            )
        finally:
            progress.running = False
        progress.completed += 1
        progress.last_completed = time.time()
        if not report.intact:
            progress.tampered += 1
            if self.halted is None:
                self.alarm("verify", report.first_bad_entry, report.problem or "tampered")
        return report

    def resume_if_intact(self) -> bool:
        """At start, with an alarm open: verify the whole ledger and lift the halt (an
        alarm of kind ``cleared``) if it is intact. Returns whether the ledger runs."""
        if self.halted is None:
            return True
        try:
            report = self.verify()
        except VerifyIncomplete as exc:
            log.warning("ledger halted: the verify at start did not finish (%s)", exc.code)
            return False
        if not report.intact:
            return False
        self.store.alarms.add(
            time=format_timestamp(self._clock()),
            kind="cleared",
            first_bad_entry=None,
            problem=f"a verify at start found the ledger intact ({report.entries} entries)",
        )
        self.status.halted = None
        log.warning("ledger resumed: it verifies intact again (%d entries)", report.entries)
        return True

    def stop(self) -> None:
        """Stop a verify in progress (between chunks), and any until ``go_on``. Returns
        nothing."""
        self._stopping.set()

    def go_on(self) -> None:
        """Let verifies run again after ``stop`` (a service started again). Returns nothing."""
        self._stopping.clear()
