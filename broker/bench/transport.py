"""Kafka throughput: plain aiokafka next to the mappa pipeline, same broker, same run.

plain produce / consume   aiokafka with the same record size as a classic envelope
mappa publish             police adapter: authorise, derive views, seal 2 envelopes (RA and
                          housing), outbox + audit in one SQLite transaction, relay to Kafka
mappa receive             probation adapter: verify, replay check, agreement, open, validate,
                          inbox + offset + audit in one SQLite transaction, relay audit events
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.agreements import agreement_for_area
from broker.bench import BenchOptions, Figure
from broker.bench.fixtures import sample_message
from broker.deployment import Deployment
from broker.gateway import AgencyGateway
from broker.gateway.handled import Handling
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from broker.trust.provision import AgencySpec, DataPaths, provision
from schemas.common import Role

AREA = "staffordshire"
SPECS = (
    AgencySpec("police.bench", "Bench Police", Role.POLICE, (AREA,)),
    AgencySpec("probation.bench", "Bench Probation", Role.PROBATION, (AREA,)),
    AgencySpec("prison.bench", "Bench Prison", Role.PRISON, (AREA,)),
    AgencySpec("housing.bench", "Bench Housing", Role.HOUSING, (AREA,)),
)


async def plain(transport: KafkaTransport, n: int, size: int) -> list[Figure]:
    topic = f"bench{secrets.token_hex(4)}.plain"
    await transport.ensure_topics([topic])
    payload = os.urandom(size)
    producer = transport.producer
    start = time.perf_counter()
    futures = [await producer.send(topic, payload, key=str(i % 50).encode()) for i in range(n)]
    await asyncio.gather(*futures)
    produced = n / (time.perf_counter() - start)
    got = 0
    start = time.perf_counter()
    async with await transport.reader([topic], {}) as reader:
        while got < n:
            got += len(await reader.poll(timeout_ms=100))
    consumed = n / (time.perf_counter() - start)
    note = f"{size:,} B records, acks=all"
    return [
        Figure("transport", "plain aiokafka: produce", produced, "records/s", note),
        Figure("transport", "plain aiokafka: consume", consumed, "records/s", note),
    ]


async def pipeline(bootstrap: str, n: int, root: Path, suite: str) -> list[Figure]:
    passphrase = secrets.token_urlsafe(18).encode()
    settings = Settings(
        data_dir=root / suite,
        topic_namespace=f"bench{secrets.token_hex(4)}",
        suite=suite,
        kafka_bootstrap=bootstrap,
    )
    directory = provision(
        DataPaths(settings.data_dir),
        SPECS,
        passphrase=passphrase,
        now=datetime.now(UTC) - timedelta(days=1),
        suites=(suite,),
    )
    agreement = agreement_for_area(AREA, [directory.agency(s.agency_id) for s in SPECS])
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=[agreement])
    async with deployment.running(["police.bench", "probation.bench"], ledger=False) as running:
        police = running.gateways["police.bench"]
        probation = running.gateways["probation.bench"]
        messages = [sample_message(pnc=f"2011/{i:07d}K") for i in range(n)]
        start = time.perf_counter()
        for message in messages:
            await police.publish(message, purpose="MAPPA risk management")
        published = n / (time.perf_counter() - start)
        concurrent = await publish_concurrently(police, n, callers=32)
        n *= 2
        delivered = 0
        start = time.perf_counter()
        while delivered < n:
            handled = await probation.poll_once(timeout_ms=100)
            delivered += sum(h.handling is Handling.DELIVERED for h in handled)
        received = n / (time.perf_counter() - start)
    return [
        Figure(
            "transport",
            f"mappa {suite}: publish, one caller",
            published,
            "messages/s",
            "2 envelopes + 4 audit events each, acks awaited per call",
        ),
        Figure("transport", f"mappa {suite}: publish, 32 callers", concurrent, "messages/s"),
        Figure("transport", f"mappa {suite}: receive and deliver", received, "messages/s"),
    ]


async def publish_concurrently(police: AgencyGateway, n: int, *, callers: int) -> float:
    messages = iter([sample_message(pnc=f"2012/{i:07d}K") for i in range(n)])

    async def caller() -> None:
        for message in messages:
            await police.publish(message, purpose="MAPPA risk management")

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return n / (time.perf_counter() - start)


async def run(options: BenchOptions) -> list[Figure]:
    n = max(50, int(2000 * options.scale))
    figures = []
    async with KafkaTransport(Settings(), bootstrap=options.bootstrap) as transport:
        figures += await plain(transport, n, size=4800)
    for suite in ("classic", "pq-hybrid"):
        figures += await pipeline(options.bootstrap, n, Path(options.data_dir), suite)
    return figures
