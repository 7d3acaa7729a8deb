"""One way to make a Kafka client: ``KafkaTransport(settings)``, whose constructor applies
the security options and refuses plaintext off this machine; no other product code
builds an aiokafka client, so no call site can forget them."""

from __future__ import annotations

import ast
import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.errors import ConfigurationError
from broker.kafka.transport import KafkaTransport, stop_client
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision
from tests.two_areas import PNC, PROBATION_A, SPECS, TO

ROOT = Path(__file__).resolve().parent.parent
# Where aiokafka may be used: the Kafka plumbing, and nowhere else in the product.
KAFKA_ROOM = "broker/kafka/"
CLIENTS = {
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "AIOKafkaAdminClient",
    "AIOKafkaClient",
    "AdminClient",
    "Producer",
    "Consumer",
}
# Both client libraries: aiokafka for traffic, confluent-kafka for administration.
LIBRARIES = {"aiokafka", "confluent_kafka"}
REMOTE = "kafka-1.force.police.uk:9093"


def aiokafka_uses(path: Path) -> list[str]:
    """Every import of a Kafka client library and every mention of a client class."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in LIBRARIES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            found.append(node.module or "")
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in CLIENTS:
                found.append(name)
    return found


def test_only_the_kafka_room_builds_kafka_clients() -> None:
    for package in ("broker", "agency_adapters", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(KAFKA_ROOM):
                continue
            assert not aiokafka_uses(path), f"{rel} uses {aiokafka_uses(path)}"


def test_the_guard_sees_real_clients() -> None:
    """The scan finds the clients that the Kafka room does build."""
    assert "AIOKafkaProducer" in aiokafka_uses(ROOT / "broker/kafka/transport.py")
    assert "AIOKafkaAdminClient" in aiokafka_uses(ROOT / "broker/kafka/embedded.py")
    assert "AdminClient" in aiokafka_uses(ROOT / "broker/kafka/admin.py")


def test_the_constructor_refuses_plaintext_off_this_machine() -> None:
    with pytest.raises(ConfigurationError) as refused:
        KafkaTransport(Settings(kafka_bootstrap=REMOTE))
    assert refused.value.code == "kafka.plaintext-refused"
    with pytest.raises(ConfigurationError) as named:
        KafkaTransport(Settings(), bootstrap=REMOTE)
    assert named.value.code == "kafka.plaintext-refused"
    with pytest.raises(ConfigurationError, match="no Kafka bootstrap"):
        KafkaTransport(Settings())
    # Loopback is this machine: the embedded broker and test clusters.
    assert KafkaTransport(Settings(), bootstrap="127.0.0.1:9092").bootstrap == "127.0.0.1:9092"


def test_the_constructor_refuses_incomplete_sasl_ssl() -> None:
    settings = Settings(kafka_bootstrap=REMOTE, kafka_security_protocol="SASL_SSL")
    with pytest.raises(ConfigurationError) as refused:
        KafkaTransport(settings)
    assert refused.value.code == "kafka.security-incomplete"


def test_mappa_transfer_refuses_plaintext_to_a_remote_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bug this guards: `mappa transfer` built its transport without the security
    options and spoke plaintext to any cluster. Now it stops before connecting."""
    passphrase = secrets.token_urlsafe(18)
    provision(
        DataPaths(tmp_path),
        SPECS,
        passphrase=passphrase.encode(),
        now=datetime.now(UTC) - timedelta(days=1),
    )
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", passphrase)
    code = main(
        [
            *("transfer", "--data-dir", str(tmp_path), "--bootstrap", REMOTE, "request"),
            *("--as", PROBATION_A, "--user", "po.1", "--pnc", PNC, "--to", TO),
            *("--move-date", "2026-12-20", "--reason", "moving to family"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "kafka.plaintext-refused" in err
    assert err.count("\n") == 1, err  # one line, no traceback


async def test_a_client_stop_never_raises_for_the_client() -> None:
    """aiokafka's fetcher awaits the fetch tasks it has just cancelled, so their
    ``CancelledError`` escapes its ``stop()`` though nobody cancelled the caller (seen
    in CI with the embedded broker killed under ``serve``); a lost connection is
    re-raised the same way. Neither may fail a shutdown."""

    async def cancelled_fetch() -> None:
        fetch = asyncio.ensure_future(asyncio.sleep(60))
        await asyncio.sleep(0)
        fetch.cancel()
        await fetch

    async def lost_connection() -> None:
        raise ConnectionError("the broker went away")

    await stop_client(cancelled_fetch(), "a reader")
    await stop_client(lost_connection(), "a reader")


async def test_a_client_stop_passes_on_the_callers_own_cancellation() -> None:
    started = asyncio.Event()

    async def slow_stop() -> None:
        started.set()
        await asyncio.sleep(60)

    stopping = asyncio.ensure_future(stop_client(slow_stop(), "a reader"))
    await started.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping


def test_the_keyed_partitioner_places_keys_as_kafkas_default_does() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from broker.kafka.transport import KeyedPartitioner

    ours, kafkas = KeyedPartitioner(), DefaultPartitioner()
    keys = [bytes([n]) * (n % 70 + 1) for n in range(256)] + [b"police.staffordshire"]
    for n, key in enumerate(keys * 2):  # the second time from the remembered hash
        partitions = list(range(n % 7 + 1))
        assert ours(key, partitions, partitions) == kafkas(key, partitions, partitions)
    assert ours(None, [0, 1, 2], [1]) == 1
