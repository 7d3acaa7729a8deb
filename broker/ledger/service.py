"""The ledger service: reads ``mappa.audit``, verifies each event, appends it."""

from __future__ import annotations

import asyncio
import logging

from broker.audit import verify_event
from broker.directory import Directory
from broker.errors import MappaError
from broker.ledger.store import LedgerStore
from broker.transport import KafkaTransport, PartitionReader, Record

log = logging.getLogger(__name__)


class LedgerService:
    def __init__(
        self, *, store: LedgerStore, directory: Directory, transport: KafkaTransport, topic: str
    ) -> None:
        self.store = store
        self.directory = directory
        self._transport = transport
        self._topic = topic
        self._reader: PartitionReader | None = None

    async def start(self) -> None:
        self._reader = await self._transport.reader([self._topic], self.store.offsets())

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    def handle(self, record: Record) -> None:
        at = (record.topic, record.partition, record.offset)
        try:
            signed = verify_event(record.value, self.directory)
        except MappaError as exc:
            log.warning("audit record refused at %s: %s", at, exc.code)
            self.store.reject(record.value, at=at, code=exc.code, reason=exc.reason)
            return
        self.store.append(signed, record.value, at=at)

    async def poll_once(self, timeout_ms: int = 200) -> int:
        if self._reader is None:
            raise RuntimeError("ledger service not started")
        records = await self._reader.poll(timeout_ms=timeout_ms)
        for record in records:
            self.handle(record)
        return len(records)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
