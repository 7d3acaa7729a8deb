"""Sends what the store's outbox holds, in order, and marks it sent."""

from __future__ import annotations

from broker.store import AgencyStore
from broker.transport import KafkaTransport


class OutboxRelay:
    def __init__(self, store: AgencyStore, transport: KafkaTransport) -> None:
        self._store = store
        self._transport = transport

    async def flush(self) -> int:
        """Send every unsent row; a failure leaves the rest for the next flush."""
        sent = 0
        while rows := self._store.unsent():
            for row in rows:
                await self._transport.send(row.topic, row.value, key=row.key, headers=row.headers)
                # Marked one by one: a crash re-sends at most one row, which the
                # receiver's replay memory or the ledger's event id then absorbs.
                self._store.mark_sent([row.seq])
                sent += 1
        return sent
