"""Sends what the store's outbox holds and marks it sent.

All unsent rows go to the producer at once and their acknowledgements are awaited
together (Kafka keeps each partition's order within the batch), then they are marked
sent in one transaction. A crash between sending and marking re-sends rows; receivers
absorb that (replay memory for envelopes, event ids in the ledger). A failed row stays
unsent for the next flush, and the failure is raised: nothing is silently dropped.
"""

from __future__ import annotations

import asyncio

from broker.gateway.store import AgencyStore
from broker.kafka.transport import KafkaTransport, TransportError


class OutboxRelay:
    """Sends one agency store's outbox to Kafka (module docstring)."""

    def __init__(self, store: AgencyStore, transport: KafkaTransport) -> None:
        self._store = store
        self._transport = transport
        # Two flushes at once would send the same rows twice.
        self._lock = asyncio.Lock()

    async def flush(self) -> int:
        """Send every unsent row, a batch at a time, and mark the acknowledged ones sent;
        returns how many were sent. Raises the first ``TransportError`` of a batch once its
        acknowledged rows are marked (the rest stay unsent), or at once if the transport
        is not started."""
        async with self._lock:
            sent = 0
            while rows := self._store.unsent():
                results = await self._transport.send_many(
                    [(r.topic, r.value, r.key, r.headers) for r in rows]
                )
                done = [r.seq for r, error in zip(rows, results, strict=True) if error is None]
                self._store.mark_sent(done)
                sent += len(done)
                failures = [e for e in results if e is not None]
                if failures:
                    raise failures[0]
            return sent


__all__ = ["OutboxRelay", "TransportError"]
