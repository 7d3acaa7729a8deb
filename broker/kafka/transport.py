"""Kafka I/O: one producer per process, topic creation, and partition readers.

A transport is made from the settings and nothing else: its constructor applies the
client security options (``broker.kafka.security``: SASL_SSL, TLS, and the refusal of
plaintext to a broker not on this machine), so no caller can forget them. No other
module builds an aiokafka client (``tests/test_transport.py`` checks it).

Readers use explicit partition assignment and take their start offsets from the
caller, which keeps them in its own database and advances them in the same
transaction as what it did with the record (Kafka's "offsets stored outside
Kafka" pattern). So a record is processed once even across crashes, and nothing
waits for consumer-group rebalances.

The producer always waits for every in-sync replica (``acks=all``), and is idempotent
where the broker can give it a producer id: probed at start with an InitProducerId
request, not configured, so Apache Kafka gets it and tansu (which refuses it) does not.
Duplicates are caught by message id on the receiving end either way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    NoError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.protocol.transaction import InitProducerIdRequest

from broker.errors import ConfigurationError, MappaError, SchemaError
from broker.kafka.parts import AsyncPart
from broker.kafka.security import client_options
from broker.kafka.topics import PARTITIONS, RECORD_LIMIT_BYTES, topic_configs
from broker.settings import Settings

log = logging.getLogger(__name__)
# A cluster that has just started loads its producer-id blocks for some seconds, and says
# so with a retriable error: worth waiting for, since the producer is made once.
PRODUCER_ID_WAIT_SECONDS = 20.0
PRODUCER_ID_PAUSE_SECONDS = 0.25
# A shutdown while the broker is away must not wait for it (a service asked to stop
# should stop within seconds); the outboxes keep what was not acknowledged.
STOP_SECONDS = 2.0

# One fetch is enough to hear an authorization refusal; an allowed one may find nothing.
FETCH_PROBE_MS = 500


async def stop_client(stopping: Awaitable[None], what: str) -> None:
    """Await an aiokafka client's ``stop()`` for at most ``STOP_SECONDS``, never raising
    for the client. With its broker gone the client re-raises, on the way out, the
    connection it lost; and aiokafka's fetcher awaits the fetch tasks it has just
    cancelled, so their ``CancelledError`` escapes ``stop()`` though nobody cancelled
    the caller. Only a cancellation of the caller's own task is passed on."""
    try:
        await asyncio.wait_for(stopping, timeout=STOP_SECONDS)
    except TimeoutError:
        log.warning("%s did not stop within %ss: the broker is away", what, STOP_SECONDS)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.info("%s stopped with its broker gone: a fetch it cancelled", what)
    except Exception as exc:  # noqa: BLE001 - whatever the client says, it is stopping
        log.info("%s stopped with its broker gone: %s", what, type(exc).__name__)


class TransportError(MappaError):
    code = "transport.failed"
    retriable = True


class RecordRejected(TransportError):
    """The broker (or the producer, by the broker's limits) refuses this one record for
    good: too large, or otherwise unacceptable. Sending it again cannot succeed."""

    code = "transport.record-rejected"
    retriable = False


# What the producer or the broker says of one record that no retry can change.
_REJECTED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    InvalidTimestampError,
)


def _send_failure(topic: str, exc: BaseException) -> TransportError:
    """Our error for a failed send: ``RecordRejected`` when no retry can help."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, _REJECTED_FOR_GOOD):
        return RecordRejected(f"the broker refuses this record on {topic} ({type(exc).__name__})")
    return TransportError(f"send to {topic} failed: {exc}")


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

    def appended_at(self) -> datetime:
        """The record's Kafka timestamp as a UTC time. Anyone who writes to a topic sets
        it (CreateTime), so it may be no time at all. Raises ``SchemaError``
        (``record.timestamp-invalid``) for a timestamp no date can hold."""
        try:
            return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise SchemaError(
                "the record's timestamp is not a time (outside years 1-9999)",
                code="record.timestamp-invalid",
            ) from None


Offsets = Mapping[tuple[str, int], int]
# Told the partitions whose stored offsets no longer mean anything.
Forget = Callable[[Sequence[tuple[str, int]]], None]


# Keys whose hash a producer remembers: the subjects and agencies of a busy day.
PARTITIONER_KEYS = 65536


class KeyedPartitioner:
    """Kafka's default partitioning (murmur2 of the key, as the Java clients do, so a
    key's records land where any client would put them), remembering each key's hash:
    keys repeat (every record about a subject is keyed by its reference, every receipt by
    its sender), and aiokafka's murmur2, in Python, costs tens of microseconds a record."""

    def __init__(self) -> None:
        self._hash = functools.lru_cache(maxsize=PARTITIONER_KEYS)(murmur2)
        self._unkeyed = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._unkeyed(key, all_partitions, available))
        index: int = (self._hash(key) & 0x7FFFFFFF) % len(all_partitions)
        return all_partitions[index]


class KafkaTransport(AsyncPart):
    """Owns the producer; hands out readers. ``async with`` or start()/stop().

    ``KafkaTransport(settings)`` talks to ``settings.kafka_bootstrap``; ``bootstrap=``
    names a broker found at run time (the embedded one); ``username=`` connects as that
    SCRAM user (an agency's own principal) instead of the process's. Raises
    ``ConfigurationError``
    (``kafka.plaintext-refused``, ``kafka.security-incomplete``) before any connection
    when the settings would send plaintext off this machine or lack TLS/SASL material.
    """

    def __init__(
        self, settings: Settings, *, bootstrap: str | None = None, username: str | None = None
    ) -> None:
        address = bootstrap or settings.kafka_bootstrap
        if not address:
            raise ConfigurationError(
                "no Kafka bootstrap address: set MAPPA_KAFKA_BOOTSTRAP or give --bootstrap"
            )
        self.bootstrap: str = address
        self._settings = settings
        self._options = client_options(settings, address, username=username)
        self._producer: AIOKafkaProducer | None = None
        # Known after start(): whether the broker gave this transport a producer id, and
        # which cluster it reached (a different id means a different log: see readers).
        self.idempotent = False
        self.cluster_id = ""

    async def start(self) -> None:
        """Connect the producer. Idempotent. Raises ``TransportError`` if the broker
        does not answer."""
        if self._producer is not None:
            return
        try:
            self.cluster_id = await self.current_cluster_id()
            self.idempotent = await self._gives_producer_ids()
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            partitioner=KeyedPartitioner(),
            acks="all",
            enable_idempotence=self.idempotent,
            max_request_size=RECORD_LIMIT_BYTES,
            **self._options,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await stop_client(producer.stop(), "the producer")
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        self._producer = producer

    async def _gives_producer_ids(self) -> bool:
        """Ask the cluster for an idempotent producer id. False on a refusal (tansu
        answers UnknownError; a principal that may write nowhere, an authorization
        error); a retriable answer (a fresh cluster still loading its producer ids) is
        asked again, for up to ``PRODUCER_ID_WAIT_SECONDS``."""
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, **self._options)
        try:
            await client.bootstrap()
            deadline = time.monotonic() + PRODUCER_ID_WAIT_SECONDS
            while True:
                response = await client.send(
                    client.get_random_node(),
                    InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000),
                )
                error = for_code(int(response.error_code))
                if error is NoError:
                    return True
                if not error.retriable or time.monotonic() > deadline:
                    return False
                await asyncio.sleep(PRODUCER_ID_PAUSE_SECONDS)
        finally:
            await client.close()

    async def current_cluster_id(self) -> str:
        """The id of the cluster the bootstrap address leads to now. Raises aiokafka's
        ``KafkaError`` if it does not answer."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self._options)
        await admin.start()
        try:
            return str((await admin.describe_cluster())["cluster_id"])
        finally:
            await admin.close()

    async def stop(self) -> None:
        """Flush and close the producer, waiting at most ``STOP_SECONDS`` for a broker
        that is away (what was not acknowledged stays unsent in the outboxes).
        Idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client(producer.stop(), "the producer")

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started producer (the benchmark's plain-aiokafka baseline uses it raw).
        Raises ``TransportError`` before ``start()``."""
        if self._producer is None:
            raise TransportError("transport not started")
        return self._producer

    async def ensure_topics(
        self, names: Sequence[str], *, partitions: int = PARTITIONS
    ) -> list[str]:
        """Create whichever of ``names`` the cluster lacks, replicated on up to three
        brokers, with ``topic_configs``; returns those created. A principal that may not
        create topics (a cluster whose ACLs leave that to the platform team) is told so in
        the log, not an error: the topics may exist without it being allowed to see them.
        Raises ``TransportError`` for any other refusal."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self._options)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if not missing:
                return []
            brokers = len((await admin.describe_cluster())["brokers"])
            replication = min(3, max(brokers, 1))
            configs = topic_configs(self._settings, replication)
            response = await admin.create_topics(
                [NewTopic(n, partitions, replication, topic_configs=configs) for n in missing]
            )
        finally:
            await admin.close()
        created, refused = [], []
        for topic, code, *_ in response.topic_errors:
            error = for_code(code)
            if code == 0:
                created.append(topic)
            elif error in (TopicAlreadyExistsError,):
                continue
            elif error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                refused.append(topic)
            else:
                raise TransportError(f"creating topic {topic} failed: {error.__name__}")
        if refused:
            log.warning(
                "not allowed to create %d topics (%s...): the cluster's platform team creates "
                "them (mappa deploy acls --apply)",
                len(refused),
                refused[0],
            )
        return created

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
            raise _send_failure(topic, exc) from exc
        return meta.partition, meta.offset

    async def send_many(
        self, records: Sequence[tuple[str, bytes, bytes | None, Sequence[tuple[str, bytes]]]]
    ) -> list[TransportError | None]:
        """Send (topic, value, key, headers) records together; one result per record,
        ``None`` when the broker acknowledged it, ``RecordRejected`` when it never will."""
        futures = []
        for topic, value, key, headers in records:
            try:
                futures.append(
                    await self.producer.send(topic, value, key=key, headers=list(headers))
                )
            except KafkaError as exc:
                futures.append(_failed(_send_failure(topic, exc)))
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [
            None if not isinstance(r, BaseException) else _send_failure(topic, r)
            for (topic, *_), r in zip(records, results, strict=True)
        ]

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The partitions of ``topic``, in order."""
        parts = await self.producer.partitions_for(topic)
        return [TopicPartition(topic, p) for p in sorted(parts)]

    async def may_fetch(self, topic: str) -> bool:
        """Whether the broker lets this principal fetch from ``topic``: False when it
        refuses, at the topic's metadata or at the fetch itself (an ACL cluster). The
        refusal is the answer sought, so aiokafka's error lines about it are held back
        while asking; the topic stays in this transport's metadata, so probe with a
        transport made for it."""
        chatter = logging.getLogger("aiokafka.cluster")
        level = chatter.level
        chatter.setLevel(logging.CRITICAL)
        try:
            async with await self.reader([topic], {}) as reader:
                await reader.poll(timeout_ms=FETCH_PROBE_MS)
        except TopicAuthorizationFailedError:
            return False
        finally:
            chatter.setLevel(level)
        return True

    async def reader(
        self, topics: Sequence[str], offsets: Offsets, *, on_lost: Forget | None = None
    ) -> PartitionReader:
        """A reader over every partition of ``topics``, resuming at ``offsets``
        (the next offset to read per partition; absent means from the beginning). A
        partition whose log ends before its stored offset was lost or replaced (a broker
        that kept nothing, a topic made anew): it is read again from its beginning, and
        ``on_lost`` is told which, so the caller forgets their stored offsets."""
        assignment = [tp for t in topics for tp in await self.partitions(t)]
        reader = PartitionReader(
            self.bootstrap,
            assignment,
            offsets,
            self._options,
            on_lost,
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
        )
        try:
            await reader.start()
        except BaseException:
            await reader.stop()
            raise
        return reader

    async def end_offsets(
        self, topics: Sequence[str], *, within: float
    ) -> dict[tuple[str, int], int]:
        """Where each partition of ``topics`` ends now (the offset its next record gets),
        asked on a connection of its own that is closed before it returns: whether the
        broker answers, and how far a reader of those topics is behind (readiness).
        Raises ``TransportError`` if the broker does not answer within ``within``
        seconds, or refuses."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self._options
        )
        try:
            async with asyncio.timeout(within):
                await consumer.start()
                assignment = [tp for t in topics for tp in await self.partitions(t)]
                ends = await consumer.end_offsets(assignment)
        except (KafkaError, TimeoutError) as exc:
            raise TransportError(
                f"Kafka at {self.bootstrap} did not answer within {within}s: {exc!r}"
            ) from exc
        finally:
            await stop_client(consumer.stop(), "a readiness probe")
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}


class PartitionReader:
    def __init__(
        self,
        bootstrap: str,
        assignment: list[TopicPartition],
        offsets: Offsets,
        options: Mapping[str, Any],
        on_lost: Forget | None = None,
        *,
        fetch_max_wait_ms: int = 10,
    ) -> None:
        self._assignment = assignment
        self._offsets = offsets
        self._on_lost = on_lost
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=RECORD_LIMIT_BYTES,
            fetch_max_wait_ms=fetch_max_wait_ms,
            **options,
        )

    async def start(self) -> None:
        """Connect, and place each partition where the caller stopped: at its stored
        offset, or at the beginning when none is stored or the log is shorter than it
        (the log was lost); at the log's start when the records before it are gone."""
        await self._consumer.start()
        self._consumer.assign(self._assignment)
        stored = {tp: self._offsets.get((tp.topic, tp.partition)) for tp in self._assignment}
        known = [tp for tp, at in stored.items() if at is not None]
        ends = await self._consumer.end_offsets(known) if known else {}
        starts = await self._consumer.beginning_offsets(known) if known else {}
        lost: list[tuple[str, int]] = []
        for tp, next_offset in stored.items():
            if next_offset is None:
                await self._consumer.seek_to_beginning(tp)
            elif next_offset > ends[tp]:
                log.warning(
                    "%s/%d: the log ends at %d, before offset %d already read: the broker lost "
                    "or replaced it; reading it again from the beginning",
                    tp.topic,
                    tp.partition,
                    ends[tp],
                    next_offset,
                )
                lost.append((tp.topic, tp.partition))
                await self._consumer.seek_to_beginning(tp)
            elif next_offset < starts[tp]:
                log.warning(
                    "%s/%d: offsets %d to %d are gone from the log (retention or deletion) "
                    "before they were read; their senders send again what is not receipted",
                    tp.topic,
                    tp.partition,
                    next_offset,
                    starts[tp] - 1,
                )
                self._consumer.seek(tp, starts[tp])
            else:
                self._consumer.seek(tp, next_offset)
        if lost and self._on_lost is not None:
            self._on_lost(lost)

    async def stop(self) -> None:
        """Stop the consumer, waiting at most ``STOP_SECONDS``. Never raises for the
        client: a broker that died under it makes the consumer's fetcher re-raise, on
        the way out, the connection it lost; the offsets are the caller's, so nothing
        read is lost, and one line says so."""
        await stop_client(self._consumer.stop(), "a reader")

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
                # A header may have no value (null on the wire): read as empty.
                headers=tuple((k, bytes(v or b"")) for k, v in (m.headers or ())),
                timestamp_ms=m.timestamp,
            )
            for batch in batches.values()
            for m in batch
        ]

    async def __aenter__(self) -> PartitionReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
