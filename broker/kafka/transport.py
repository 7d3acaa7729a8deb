"""Kafka I/O: one producer per process, topic creation, and partition readers.

A transport is made from the settings and nothing else: its constructor applies the
client security options (``broker.kafka.security``: SASL_SSL, TLS, and the refusal of
plaintext to a broker not on this machine), so no caller can forget them. No other
module builds an aiokafka client (``tests/test_transport.py`` checks it).

Readers use explicit partition assignment and take their start offsets from the
caller, which keeps them in its own database and advances them in the same
transaction as what it did with the record (Kafka's "offsets stored outside
Kafka" pattern). So a record is processed once even across crashes, and nothing
waits for consumer-group rebalances. The idempotent producer stays off: tansu
does not support it, and duplicates are caught by message id on the receiving end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from broker.errors import ConfigurationError, MappaError
from broker.kafka.parts import AsyncPart
from broker.kafka.security import client_options
from broker.kafka.topics import PARTITIONS
from broker.settings import Settings


class TransportError(MappaError):
    code = "transport.failed"
    retriable = True


def _failed(error: TransportError) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


Offsets = Mapping[tuple[str, int], int]


class KafkaTransport(AsyncPart):
    """Owns the producer; hands out readers. ``async with`` or start()/stop().

    ``KafkaTransport(settings)`` talks to ``settings.kafka_bootstrap``; ``bootstrap=``
    names a broker found at run time (the embedded one). Raises ``ConfigurationError``
    (``kafka.plaintext-refused``, ``kafka.security-incomplete``) before any connection
    when the settings would send plaintext off this machine or lack TLS/SASL material.
    """

    def __init__(self, settings: Settings, *, bootstrap: str | None = None) -> None:
        address = bootstrap or settings.kafka_bootstrap
        if not address:
            raise ConfigurationError(
                "no Kafka bootstrap address: set MAPPA_KAFKA_BOOTSTRAP or give --bootstrap"
            )
        self.bootstrap: str = address
        self._options = client_options(settings, address)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect the producer. Idempotent. Raises ``TransportError`` if the broker
        does not answer."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            max_request_size=1_100_000,
            **self._options,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        self._producer = producer

    async def stop(self) -> None:
        """Flush and close the producer. Idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started producer (the benchmark's plain-aiokafka baseline uses it raw).
        Raises ``TransportError`` before ``start()``."""
        if self._producer is None:
            raise TransportError("transport not started")
        return self._producer

    async def ensure_topics(self, names: Sequence[str], *, partitions: int = PARTITIONS) -> None:
        """Create whichever of ``names`` the cluster lacks; an existing topic is left as is."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self._options)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                new = [
                    NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing
                ]
                # Another adapter may have created one first: that is what we wanted.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; return (partition, offset)."""
        try:
            meta = await self.producer.send_and_wait(topic, value, key=key, headers=list(headers))
        except KafkaError as exc:
            raise TransportError(f"send to {topic} failed: {exc}") from exc
        return meta.partition, meta.offset

    async def send_many(
        self, records: Sequence[tuple[str, bytes, bytes | None, Sequence[tuple[str, bytes]]]]
    ) -> list[TransportError | None]:
        """Send (topic, value, key, headers) records together; one result per record,
        ``None`` when the broker acknowledged it."""
        futures = []
        for topic, value, key, headers in records:
            try:
                futures.append(
                    await self.producer.send(topic, value, key=key, headers=list(headers))
                )
            except KafkaError as exc:
                futures.append(_failed(TransportError(f"send to {topic} failed: {exc}")))
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [
            None
            if not isinstance(r, BaseException)
            else r
            if isinstance(r, TransportError)
            else TransportError(f"send failed: {r}")
            for r in results
        ]

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The partitions of ``topic``, in order."""
        parts = await self.producer.partitions_for(topic)
        return [TopicPartition(topic, p) for p in sorted(parts)]

    async def reader(self, topics: Sequence[str], offsets: Offsets) -> PartitionReader:
        """A reader over every partition of ``topics``, resuming at ``offsets``
        (the next offset to read per partition; absent means from the beginning)."""
        assignment = [tp for t in topics for tp in await self.partitions(t)]
        reader = PartitionReader(self.bootstrap, assignment, offsets, self._options)
        await reader.start()
        return reader


class PartitionReader:
    def __init__(
        self,
        bootstrap: str,
        assignment: list[TopicPartition],
        offsets: Offsets,
        options: Mapping[str, Any],
    ) -> None:
        self._assignment = assignment
        self._offsets = offsets
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=1_100_000,
            fetch_max_wait_ms=100,
            **options,
        )

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._assignment)
        for tp in self._assignment:
            next_offset = self._offsets.get((tp.topic, tp.partition))
            if next_offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, next_offset)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def rewind(self, offsets: Offsets) -> None:
        """Go back to ``offsets`` (what the caller durably processed): after a failed
        batch, records read but not committed are read again, never skipped."""
        for tp in self._assignment:
            next_offset = offsets.get((tp.topic, tp.partition))
            if next_offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, next_offset)

    async def poll(self, timeout_ms: int = 200, max_records: int = 500) -> list[Record]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [
            Record(
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                key=m.key,
                value=m.value if m.value is not None else b"",
                headers=tuple((k, bytes(v)) for k, v in (m.headers or ())),
                timestamp_ms=m.timestamp,
            )
            for batch in batches.values()
            for m in batch
        ]

    async def __aenter__(self) -> PartitionReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
