"""Fault drills against a real `mappa serve` and real brokers (marker ``drill``).

Each prints one line, ``drill NAME: sent S, delivered D, lost L, duplicated U, audit
entries A (expected E), verify OK|FAIL``, and must end with nothing lost or doubled,
the audit trail complete and verified. ``make drills`` runs them alone.

- ``kafka-broker-killed``: one of the three Apache Kafka brokers is killed with SIGKILL
  in the middle of a stream of submissions through the HTTP API, then started again.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.agreements import agreement_for_area
from broker.api.models import ARMS_EXAMPLE
from broker.cli.main import main
from broker.gateway.store import AgencyStore
from broker.kafka.apache import kafka_unavailable
from broker.kafka.secured import secured_cluster
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory
from tests.served import SERVED, DataDir, Served, provisioned, serve, stop
from tests.support import AREA, HOUSING, POLICE, PRISON, PROBATION

pytestmark = pytest.mark.drill

# Enough to put the kill in the middle of steady traffic; the issue asks for 1,000.
SUBMISSIONS = int(os.environ.get("MAPPA_DRILL_SUBMISSIONS", "1000"))
# Agency systems submitting at once.
CLIENTS = 8
# Offenders the stream is about: records spread over the topics' partitions.
SUBJECTS = [f"2011/{n:07d}K" for n in range(1, 21)]
RECIPIENTS = (PROBATION, PRISON, HOUSING)
# How long the killed broker stays down while submissions go on.
KILLED_SECONDS = 5.0
# After the stream, how long everything may take to arrive and be logged.
SETTLE_SECONDS = 180.0


@dataclass
class Stream:
    """What the agency system saw: every accepted message id, every error answer."""

    accepted: list[str]
    errors: list[str]
    slowest_seconds: float = 0.0


def record(n: int) -> dict[str, Any]:
    rec = copy.deepcopy(ARMS_EXAMPLE)
    rec["pnc"] = SUBJECTS[n % len(SUBJECTS)]
    return rec


async def submit_stream(served: Served, count: int, *, at_half: asyncio.Event) -> Stream:
    """``count`` police submissions from ``CLIENTS`` concurrent callers; ``at_half`` is
    set when half have been answered. A caller that gets no answer tries the same
    request again (as a client would), so only error *answers* count as errors."""
    stream = Stream([], [])
    numbers = iter(range(count))

    async def caller(client: httpx.AsyncClient) -> None:
        for n in numbers:
            started = time.monotonic()
            while True:
                try:
                    answer = await client.post(
                        f"/v1/agencies/{POLICE}/records",
                        json={"record": record(n), "purpose": "risk management", "user": "drill"},
                        headers=served.auth(POLICE),
                    )
                except httpx.TransportError:
                    continue
                break
            stream.slowest_seconds = max(stream.slowest_seconds, time.monotonic() - started)
            if answer.status_code == 201:
                stream.accepted.append(answer.json()["message_id"])
            else:
                stream.errors.append(f"{answer.status_code} {answer.text[:200]}")
            if len(stream.accepted) + len(stream.errors) >= count // 2:
                at_half.set()

    async with httpx.AsyncClient(base_url=served.url, timeout=120) as client:
        await asyncio.gather(*(caller(client) for _ in range(CLIENTS)))
    return stream


def held(data: DataDir, agency: str) -> set[str]:
    store = AgencyStore(DataPaths(data.path).agency_store(agency))
    try:
        return {i.message_id for i in store.inbox(limit=10**6)}
    finally:
        store.close()


def emitted(data: DataDir) -> int:
    """Audit events the served agencies' outboxes hold: what the ledger must come to."""
    total = 0
    for agency in (POLICE, *RECIPIENTS):
        store = AgencyStore(DataPaths(data.path).agency_store(agency))
        try:
            total += sum(n for t, n in store.outbox_counts().items() if t.endswith(".audit"))
        finally:
            store.close()
    return total


async def ledger_size(served: Served) -> int:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        got = await client.get("/governance/checkpoint", headers=served.auth("officer"))
    return int(got.json()["tree_size"]) if got.status_code == 200 else 0


async def settled(served: Served, data: DataDir, accepted: set[str]) -> None:
    """Wait until every recipient holds every accepted message and the ledger holds every
    audit event emitted (which grows with each delivery)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if all(accepted <= held(data, a) for a in RECIPIENTS):
            expected = emitted(data)
            if await ledger_size(served) >= expected:
                return
        await asyncio.sleep(1)


def report(name: str, data: DataDir, stream: Stream) -> tuple[str, dict[str, int]]:
    """The drill's line and figures, read from the stores and the ledger at rest."""
    accepted = set(stream.accepted)
    delivered = [held(data, a) for a in RECIPIENTS]
    lost = sum(len(accepted - got) for got in delivered)
    ledger = LedgerStore(DataPaths(data.path).ledger)
    try:
        size = ledger.size()
        collections = [
            (e["message_id"], e["recipient"])
            for e in ledger.entries(act="collection", operation="deliver")
        ]
    finally:
        ledger.close()
    duplicated = len(collections) - len(set(collections))
    expected = emitted(data)
    verified = main(["audit", "--data-dir", str(data.path), "verify"]) == 0
    figures = {
        "sent": len(stream.accepted) + len(stream.errors),
        "delivered": sum(len(accepted & got) for got in delivered),
        "lost": lost,
        "duplicated": duplicated,
        "audit": size,
        "expected": expected,
        "errors": len(stream.errors),
    }
    line = (
        f"drill {name}: sent {figures['sent']}, delivered {figures['delivered']} "
        f"({len(RECIPIENTS)} recipients each), lost {lost}, duplicated {duplicated}, "
        f"audit entries {size} (expected {expected}), verify {'OK' if verified else 'FAIL'}"
    )
    return line, figures | {"verified": int(verified)}


@pytest.mark.apache_kafka
@pytest.mark.xdist_group("own-kafka-cluster")
async def test_drill_a_kafka_broker_killed_mid_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = kafka_unavailable()
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")
    data = provisioned(tmp_path, SUBJECTS)
    # `mappa audit verify` below reads the ledger of this namespace (its origin says so).
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", data.namespace)
    directory = load_directory(DataPaths(data.path))
    agreement = agreement_for_area(AREA, directory.agencies(area=AREA))
    base = Settings(data_dir=data.path, topic_namespace=data.namespace)
    async with secured_cluster(
        tmp_path / "kafka", base, directory.agencies(), [agreement], [AREA]
    ) as (cluster, secured, _):
        env = {
            f"MAPPA_{name.upper()}": str(getattr(secured, name))
            for name in (
                "kafka_bootstrap",
                "kafka_security_protocol",
                "kafka_username",
                "kafka_password_file",
                "kafka_ca_file",
                "kafka_credentials_dir",
            )
        }
        async with serve(tmp_path, *SERVED, data=data, env=env) as served:
            half = asyncio.Event()
            streaming = asyncio.create_task(submit_stream(served, SUBMISSIONS, at_half=half))
            await half.wait()
            victim = 0  # the first node: a broker and a voter of the controller quorum
            await cluster.kill(victim)
            # Traffic goes on without it for a while, then it comes back mid-stream.
            await asyncio.sleep(KILLED_SECONDS)
            await cluster.restart(victim)
            stream = await streaming
            await settled(served, data, set(stream.accepted))
            assert await stop(served, signal.SIGTERM) == 0
        line, figures = report("kafka-broker-killed", data, stream)
    print(f"\n{line} (slowest answer {stream.slowest_seconds:.1f}s)")
    assert figures["errors"] == 0, stream.errors[:3]
    assert figures["sent"] == SUBMISSIONS
    assert figures["lost"] == 0, line
    assert figures["duplicated"] == 0, line
    assert figures["audit"] == figures["expected"], line
    assert figures["verified"] == 1, line
    assert "Traceback" not in served.log.decode()
