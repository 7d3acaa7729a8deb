"""Sends what the store's outbox holds, marks it sent, and sends again what nobody
receipted in time.

All unsent rows go to the producer at once and their acknowledgements are awaited
together (Kafka keeps each partition's order within the batch), then they are marked
sent in one transaction (shared with the publications queued meanwhile, through the
gateway's ``GroupCommit``), and each tracked recipient of them (``broker.gateway.tracking``)
starts waiting for its receipt. A crash between sending and marking re-sends rows;
receivers absorb that (replay memory for envelopes, event ids in the ledger). A failed
row stays unsent for the next flush, and the failure is raised: nothing is silently
dropped. A row the broker refuses for good (``RecordRejected``: too large for it) is
set aside instead, logged and reported (``on_set_aside``: the gateway audits it), its
tracked recipients settled as refused with the broker's code, and the rows behind it
go: one such row never blocks the outbox.

A broker's acknowledgement is not delivery: the broker may lose what it acknowledged
(the embedded one is memory-only). So a row whose recipients have not all receipted it
by their due time is marked unsent and goes again (``requeue_overdue``), waiting twice
as long each time up to a cap; a recipient that has not receipted it after
``undeliverable_after`` is given up as undeliverable, for the caller to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.gateway.group_commit import GroupCommit
from broker.gateway.store import AgencyStore, OutboxRow
from broker.gateway.tracking import Tracked, age
from broker.kafka.transport import KafkaTransport, RecordRejected, TransportError
from broker.observe.logs import Correlation, fields
from broker.settings import Settings

log = logging.getLogger(__name__)
# Told of each row set aside, inside the transaction that sets it aside.
SetAside = Callable[[OutboxRow, RecordRejected], None]


@dataclass(frozen=True)
class ResendPolicy:
    """How long to wait for a receipt before sending again, and when to give up."""

    first_wait: timedelta
    max_wait: timedelta
    give_up_after: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> ResendPolicy:
        return cls(
            timedelta(seconds=settings.receipt_wait_seconds),
            timedelta(seconds=settings.resend_cap_seconds),
            timedelta(seconds=settings.undeliverable_after_seconds),
        )

    def wait(self, attempts: int) -> timedelta:
        """The wait after the send numbered ``attempts`` (0 for the first): doubling."""
        doubled: timedelta = self.first_wait * (2 ** min(attempts, 30))
        return min(doubled, self.max_wait)


class OutboxRelay:
    """The outbox's way to Kafka, for one agency's store."""

    def __init__(
        self,
        store: AgencyStore,
        transport: KafkaTransport,
        policy: ResendPolicy,
        clock: Callable[[], datetime],
        on_set_aside: SetAside | None = None,
        *,
        correlation: Correlation | None = None,
        commits: GroupCommit | None = None,
    ) -> None:
        self._store = store
        self._commits = commits or GroupCommit(store)
        self._correlation = correlation or Correlation()
        self._transport = transport
        self.policy = policy
        self._clock = clock
        self._on_set_aside = on_set_aside
        # The flush under way: two at once would send the same rows twice.
        self._flushing: asyncio.Future[int] | None = None
        self._started = 0  # flushes started so far

    async def flush(self) -> int:
        """Send every unsent row; returns how many the broker acknowledged (in the flush
        this caller started or joined last). Rows refused for good are set aside. Raises
        the first other ``TransportError`` after marking what did go (the rest stay
        unsent).

        Callers that arrive while a flush is under way wait for it and then, together,
        for one more: their rows may have been queued after its last look at the
        outbox. So many publishers waiting for their acknowledgements share a few
        flushes rather than taking turns."""
        running = self._flushing
        wanted = self._started + 1  # a flush that starts after this call began
        if running is not None and not running.done():
            with contextlib.suppress(Exception):  # its failure is not this caller's
                await asyncio.shield(running)
        running = self._flushing
        if self._started < wanted or running is None:
            self._started += 1
            self._flushing = running = asyncio.ensure_future(self._flush())
            # Seen by someone even if every caller waiting for it gave up.
            running.add_done_callback(_retrieve)
        # Shielded: a caller that gives up does not stop the others' flush.
        return await asyncio.shield(running)

    async def _flush(self) -> int:
        sent = 0
        while rows := self._store.unsent():
            results = await self._transport.send_many(
                [(r.topic, r.value, r.key, r.headers) for r in rows]
            )
            pairs = list(zip(rows, results, strict=True))
            went = [r for r, error in pairs if error is None]
            # In the commit of the publications queued meanwhile, where there are.
            await self._commits.run(functools.partial(self._mark, pairs))
            sent += len(went)
            self._log_sent(went)
            failures = [e for e in results if e is not None and not isinstance(e, RecordRejected)]
            if failures:
                raise failures[0]
        return sent

    def _mark(self, pairs: list[tuple[OutboxRow, TransportError | None]]) -> None:
        """Mark sent the rows the broker acknowledged, and set aside those it refused
        for good."""
        done = [row.seq for row, error in pairs if error is None]
        self._store.mark_sent(done)
        self._store.tracking.sent(done, self._clock(), self.policy.wait)
        for row, error in pairs:
            if isinstance(error, RecordRejected):
                self._set_aside(row, error)

    def _log_sent(self, rows: list[OutboxRow]) -> None:
        """``relay.sent`` for each envelope of a publication remembered here (with the
        request that made it), at INFO; any other row (an audit event, an envelope
        published before a restart) at DEBUG, by its outbox position."""
        if not log.isEnabledFor(logging.INFO):
            return
        for row in rows:
            known = self._correlation.of_record(row.value)
            if known is not None:
                extra = fields(
                    agency=known.agency, message_id=known.message_id, request_id=known.request_id
                )
                log.info("relay.sent", extra=extra | {"topic": row.topic})
            else:
                log.debug("relay.sent", extra={"topic": row.topic, "outbox_seq": row.seq})

    def _set_aside(self, row: OutboxRow, error: RecordRejected) -> None:
        log.error(
            "outbox row %d for %s (%d bytes) set aside, never to be sent: %s",
            row.seq,
            row.topic,
            len(row.value),
            error.reason,
        )
        self._store.set_aside(row.seq)
        self._store.tracking.refused_by_broker(row.seq, error.code, self._clock())
        if self._on_set_aside is not None:
            self._on_set_aside(row, error)

    def requeue_overdue(self, now: datetime) -> list[Tracked]:
        """Mark unsent every row some recipient has not receipted by its due time, and
        give up on recipients waited for longer than the policy allows; returns those
        given up (for the caller to audit and report). Call inside the store's
        transaction."""
        store = self._store
        store.require_transaction()
        given_up, again = [], set()
        for row in store.tracking.overdue(now):
            if age(row, now) >= self.policy.give_up_after:
                store.tracking.give_up(row.message_id, row.recipient, now)
                given_up.append(row)
            else:
                again.add(row.outbox_seq)
        for seq in sorted(again):
            store.tracking.requeue(seq, now)
            store.mark_unsent(seq)
        return given_up

    def requeue_unreceipted(self, now: datetime) -> int:
        """Mark unsent every row sent but not receipted by all its recipients, whatever
        their due time: the broker that took them has lost its log. Returns how many.
        Call inside the store's transaction."""
        store = self._store
        store.require_transaction()
        seqs = store.tracking.awaiting()
        for seq in seqs:
            store.tracking.requeue(seq, now)
            store.mark_unsent(seq)
        return len(seqs)


def _retrieve(flush: asyncio.Future[int]) -> None:
    """Mark a flush's failure as seen: each caller waiting for it met it already."""
    if not flush.cancelled():
        flush.exception()


__all__ = ["OutboxRelay", "ResendPolicy", "TransportError"]
