"""How the transport benchmarks count and time: what reached Kafka, publications timed
until their records are on the broker, and plain aiokafka sending the same records.

Records are counted where they end up, read back from the broker, never assumed; the
sender's outbox rows are counted too, and the two agree when nothing else wrote to
those topics meanwhile. They are read back rather than taken from the topics' end
offsets because the embedded broker (tansu) answers a partition's end offset with the
first offset of its last record batch plus one, short of the end when a batch holds
several records (a publication's audit events go together).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from broker.gateway import AgencyGateway
from broker.gateway.handled import Handling
from broker.kafka.transport import KafkaTransport, Record
from schemas.messages import MessageBody

# How long a benchmark step may go without progress (a record read back or delivered,
# an outbox emptied) before the run gives up: far past any healthy pause, short of
# hanging a run whose pipeline is stuck.
STALL_SECONDS = 30.0
# Reading records back ends after this many empty polls in a row of this long each:
# everything was acknowledged before, so a fetch finds all there is at once, and three
# empty answers in a row mean the end of the log.
QUIET_POLLS = 3
QUIET_POLL_MS = 100
# How often a sender's outbox is looked at while waiting for the relay to empty it.
OUTBOX_LOOK_SECONDS = 0.001


class BenchStalled(RuntimeError):
    """A benchmark step made no progress for ``STALL_SECONDS``."""


async def on_broker(transport: KafkaTransport, topics: Sequence[str]) -> list[Record]:
    """Every record ``topics`` hold, read from their beginning until ``QUIET_POLLS``
    polls in a row find nothing more (call it once what was sent is acknowledged)."""
    got: list[Record] = []
    quiet = 0
    last = time.monotonic()
    async with await transport.reader(topics, {}) as reader:
        while quiet < QUIET_POLLS:
            batch = await reader.poll(timeout_ms=QUIET_POLL_MS)
            got += batch
            quiet = 0 if batch else quiet + 1
            if batch:
                last = time.monotonic()
            elif time.monotonic() - last > STALL_SECONDS:
                raise BenchStalled(f"reading {len(got)} records back stalled")
    return got


def added(before: Sequence[Record], after: Sequence[Record]) -> list[Record]:
    """The records of ``after`` that ``before`` did not hold (by topic, partition, offset)."""
    held = {(r.topic, r.partition, r.offset) for r in before}
    return [r for r in after if (r.topic, r.partition, r.offset) not in held]


def outbox_rows(gateway: AgencyGateway) -> int:
    """How many rows the gateway's outbox holds, sent or not."""
    return sum(gateway.ctx.store.outbox_counts().values())


async def outbox_emptied(gateway: AgencyGateway) -> None:
    """Return once the gateway's relay has sent everything its outbox holds."""
    deadline = time.monotonic() + STALL_SECONDS
    while gateway.ctx.store.unsent(limit=1):
        if time.monotonic() > deadline:
            raise BenchStalled(f"{gateway.agency_id}'s outbox was not sent")
        await asyncio.sleep(OUTBOX_LOOK_SECONDS)


async def publish_all(
    gateway: AgencyGateway, messages: Iterable[MessageBody], *, callers: int, purpose: str
) -> float:
    """Publish ``messages`` through ``gateway`` from ``callers`` concurrent callers;
    returns the seconds from the first call until every record is on the broker."""
    queue = iter(messages)

    async def caller() -> None:
        for message in queue:
            await gateway.publish(message, purpose=purpose)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    await outbox_emptied(gateway)
    return time.perf_counter() - start


async def receive_all(gateway: AgencyGateway, messages: int) -> tuple[int, float]:
    """Poll ``gateway`` until it has delivered ``messages``; returns the records it
    handled and the seconds it took. Raises ``BenchStalled`` if a record is refused
    (figures of a pipeline that refuses would not be the pipeline's) or nothing arrives
    for ``STALL_SECONDS``."""
    delivered = records = 0
    start = last = time.perf_counter()
    while delivered < messages:
        handled = await gateway.poll_once(timeout_ms=100)
        refused = [h for h in handled if h.handling is Handling.REFUSED]
        if refused:
            raise BenchStalled(f"{gateway.agency_id} refused a record: {refused[0].reason_code}")
        records += len(handled)
        delivered += sum(h.handling is Handling.DELIVERED for h in handled)
        now = time.perf_counter()
        if handled:
            last = now
        elif now - last > STALL_SECONDS:
            raise BenchStalled(f"{gateway.agency_id} received {delivered} of {messages}")
    return records, time.perf_counter() - start


@dataclass(frozen=True)
class Plain:
    """Plain aiokafka on copies of a scenario's records: records/s each way."""

    produce: float
    consume: float
    records: int
    mean_bytes: float


def cycled(records: Sequence[Record], count: int) -> Iterator[Record]:
    """``count`` records, going round ``records`` as often as needed."""
    return (records[i % len(records)] for i in range(count))


async def plain(transport: KafkaTransport, records: Sequence[Record], count: int) -> Plain:
    """Produce ``count`` copies of ``records`` (same values, keys and headers) to a topic
    of their own with ``transport``'s producer (the relay's: acks=all, the same
    settings), all in flight together, then consume them with a reader like the
    gateways'; returns the records/s of each."""
    if not records:
        raise ValueError("plain aiokafka needs records to copy")
    topic = f"bench{secrets.token_hex(4)}.plain"
    await transport.ensure_topics([topic])
    producer = transport.producer
    start = time.perf_counter()
    futures = [
        await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
        for r in cycled(records, count)
    ]
    await asyncio.gather(*futures)
    produced = count / (time.perf_counter() - start)
    got = 0
    async with await transport.reader([topic], {}) as reader:
        # Timed from an open reader, as a running gateway's receiving is.
        start = time.perf_counter()
        while got < count:
            got += len(await reader.poll(timeout_ms=100))
        consumed = count / (time.perf_counter() - start)
    mean = sum(len(r.value) for r in cycled(records, count)) / count
    return Plain(produce=produced, consume=consumed, records=count, mean_bytes=mean)
