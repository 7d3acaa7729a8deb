"""The ledger service: reads ``mappa.audit``, verifies each event, appends, signs a checkpoint.

Each poll is one batch: events that verify are appended in arrival order in one
transaction; events that do not (bad signature, unknown agency, malformed) are
kept in ``rejected`` with the reason, never dropped. After a batch that grew the
log, the service signs a checkpoint over the new tree head.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from broker.errors import MappaError
from broker.gateway.audit import verify_event
from broker.kafka.parts import AsyncPart
from broker.kafka.transport import KafkaTransport, PartitionReader, Record
from broker.ledger.checkpoint import CheckpointSigner
from broker.ledger.store import Item, LedgerStore
from broker.trust.directory import Directory
from schemas.common import format_timestamp

log = logging.getLogger(__name__)


class LedgerService(AsyncPart):
    """The ledger's reader of the audit topic. ``async with service:`` reads from where
    the store says it stopped and stops reading on exit; ``handle_batch`` appends
    without Kafka (tests feed records straight in)."""

    def __init__(
        self,
        *,
        store: LedgerStore,
        directory: Directory,
        transport: KafkaTransport,
        topic: str,
        signer: CheckpointSigner | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.signer = signer
        self._clock = clock
        self._transport = transport
        self._topic = topic
        self._reader: PartitionReader | None = None

    async def start(self) -> None:
        """Start reading the audit topic where the store says it stopped. Idempotent."""
        if self._reader is None:
            self._reader = await self._transport.reader([self._topic], self.store.offsets())

    async def stop(self) -> None:
        """Stop reading. Idempotent; the store stays open (its owner closes it)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    def _verified(self, record: Record) -> Item | None:
        at = (record.topic, record.partition, record.offset)
        try:
            signed = verify_event(record.value, self.directory)
        except MappaError as exc:
            log.warning("audit record refused at %s: %s", at, exc.code)
            self.store.reject(record.value, at=at, code=exc.code, reason=exc.reason)
            return None
        return (signed, record.value, at)

    def handle(self, record: Record) -> None:
        """Verify and append one record (or keep it as rejected), without a checkpoint."""
        item = self._verified(record)
        if item is not None:
            self.store.append_batch([item])

    def handle_batch(self, records: list[Record]) -> int:
        """Verify each record; append those that verify in one transaction, keep the
        others as rejected with the reason; sign a checkpoint if the log grew. Returns
        how many entries were added."""
        items = [i for i in (self._verified(r) for r in records) if i is not None]
        added = self.store.append_batch(items) if items else 0
        if added:
            self.checkpoint()
        return added

    def checkpoint(self) -> str | None:
        """Sign the current tree head unless it is already signed; returns the note."""
        if self.signer is None or self._clock is None:
            return None
        size = self.store.tree_size
        latest = self.store.latest_checkpoint()
        if latest is not None and latest[0] >= size:
            return latest[2]
        time = format_timestamp(self._clock())
        note = self.signer.sign(size, self.store.tree_root(), time, self.store.index_digest)
        self.store.add_checkpoint(size, time, note)
        return note

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Read one batch and ``handle_batch`` it; returns how many records were read.
        Raises ``RuntimeError`` before ``start()``."""
        if self._reader is None:
            raise RuntimeError("ledger service not started")
        records = await self._reader.poll(timeout_ms=timeout_ms)
        self.handle_batch(records)
        return len(records)

    async def catch_up(self, size: int, *, within: float) -> int:
        """Poll until the log holds ``size`` entries or ``within`` seconds have passed;
        returns how many it holds (a caller that needs them all says what is missing)."""
        deadline = time.monotonic() + within
        while self.store.size() < size and time.monotonic() < deadline:
            await self.poll_once(timeout_ms=50)
        return self.store.size()
