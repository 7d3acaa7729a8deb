"""A real Apache Kafka 4.4.0 cluster (``broker.kafka.apache``): three KRaft nodes, SASL_SSL
with SCRAM-SHA-512, ACLs enforced, replication factor 3; it refuses the clients it should,
survives a node killed, and leaves no JVM behind.

One cluster serves the module (it takes some twenty seconds to start on two cores). The
module skips, saying why, where Java 17+ or Maven (for the first download) is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import socket
import sys
import time
from base64 import b64decode
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from broker.crypto.tls import CertificateAuthority
from broker.errors import ConfigurationError
from broker.kafka import apache, apache_config
from broker.kafka.apache import (
    ApacheKafkaCluster,
    default_cache_dir,
    kafka_classpath,
    kafka_unavailable,
)
from broker.kafka.process import free_port
from broker.kafka.transport import KafkaTransport, Record, TransportError
from broker.settings import Settings
from tests.test_embedded import alive

pytestmark = [
    pytest.mark.apache_kafka,
    # This module's cluster is its own (a test kills a node): one worker runs it all.
    pytest.mark.xdist_group("own-kafka-cluster"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux-only"
    ),
]

ADMIN, AGENCY = "admin", "police.x"
# Every JVM the fixture's cluster ran, for the check that none outlives it.
_SEEN_PIDS: set[int] = set()
# A produce with acks=all may wait for the cluster to fence a killed node (its session
# timeout, 9 s by default) and elect new leaders.
_RECOVERY_SECONDS = 60.0


@contextlib.contextmanager
def port_taken() -> Iterator[int]:
    """A free 127.0.0.1 port, held listening so that a JVM cannot bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port: int = held.getsockname()[1]
        yield port


def jvms_under(workdir: Path) -> list[int]:
    """Every running process whose command line names ``workdir``: the nodes and the
    storage tool of a cluster living there."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if str(workdir).encode() in text and alive(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


def announce(request: pytest.FixtureRequest, line: str) -> None:
    """Say ``line`` on the terminal although output is captured (under xdist, where a
    worker has no terminal, it goes to the captured output instead)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - under xdist
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
async def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApacheKafkaCluster]:
    reason = kafka_unavailable()
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")
    workdir = tmp_path_factory.mktemp("apache-kafka")
    users = {ADMIN: secrets.token_urlsafe(16), AGENCY: secrets.token_urlsafe(16)}
    began = time.monotonic()
    async with ApacheKafkaCluster(workdir, users=users, super_users=(ADMIN,)) as running:
        announce(
            request,
            f"\nApache Kafka cluster of 3 nodes started in {running.startup_seconds:.1f}s "
            f"(fixture {time.monotonic() - began:.1f}s) at {running.bootstrap}",
        )
        _SEEN_PIDS.update(pid for pid in running.node_pids if pid is not None)
        yield running
        _SEEN_PIDS.update(pid for pid in running.node_pids if pid is not None)
    assert len(_SEEN_PIDS) >= 3
    left = [pid for pid in _SEEN_PIDS if alive(pid)] + jvms_under(workdir)
    assert not left, f"JVMs of the cluster still running: {left}"


def admin_settings(cluster: ApacheKafkaCluster) -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_username=ADMIN,
        kafka_password_file=cluster.password_file(ADMIN),
        kafka_ca_file=cluster.ca_file,
    )


async def refused_at_connection(
    settings: Settings, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Start a transport that the cluster should refuse: it fails as no broker reached,
    and this returns what aiokafka said about each broker it tried."""
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(TransportError) as e:
        await KafkaTransport(settings, bootstrap=bootstrap).start()
    assert isinstance(e.value.__cause__, KafkaConnectionError)
    said = [r.getMessage() for r in caplog.records if "Unable connect" in r.getMessage()]
    assert len(said) == len(bootstrap.split(","))
    return said


async def read_one(transport: KafkaTransport, topic: str) -> bytes:
    async with await transport.reader([topic], {}) as reader:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = await reader.poll(timeout_ms=500)
            if records:
                return records[0].value
    raise AssertionError(f"nothing to read on {topic}")


# -- no JVM: arguments, credentials, the jar cache ------------------------------------------
FAKE_MVN = """#!/bin/sh
# Stands in for Maven: answers -v, and for a resolve writes a jar where it is told.
[ "$1" = "-v" ] && exit 0
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
done
mkdir -p "$out" && touch "$out/$JAR"
[ -n "$FAIL" ] && { echo "[ERROR] Could not resolve dependencies"; exit 1; }
exit 0
"""


def fake_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_a_failed_resolve_never_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_maven(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    monkeypatch.setenv("JAR", "kafka-clients-4.4.0.jar")  # a jar, then the failure
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(ConfigurationError, match="Could not resolve dependencies"):
        kafka_classpath(cache)
    monkeypatch.setenv("FAIL", "")  # "succeeds" without the broker's jar: still incomplete
    with pytest.raises(ConfigurationError, match=r"could not resolve Kafka 4\.4\.0"):
        kafka_classpath(cache)
    assert [p.name for p in (cache / "kafka-4.4.0").iterdir()] == []  # no partial left
    monkeypatch.setenv("JAR", "kafka_2.13-4.4.0.jar")
    lib = kafka_classpath(cache)
    assert lib == cache / "kafka-4.4.0" / "lib"
    assert (lib / "kafka_2.13-4.4.0.jar").is_file()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # found again without Maven
    assert kafka_classpath(cache) == lib


def test_what_is_missing_is_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kafka_unavailable(tmp_path) == "no java on PATH (Kafka 4 needs Java 17 or newer)"
    with pytest.raises(ConfigurationError, match=r"^no mvn on PATH"):
        kafka_classpath(tmp_path / "cache")


def test_the_cache_is_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAPPA_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("MAPPA_CACHE_DIR")
    assert default_cache_dir() == Path(__file__).resolve().parent.parent / ".cache"


def test_cluster_arguments_are_checked(tmp_path: Path) -> None:
    users = {ADMIN: "pw"}
    refused = [
        {"users": users, "nodes": 0},
        {"users": users, "nodes": 10},
        {"users": users, "heap_mb": 64},
        {"users": users, "super_users": ()},
        {"users": users, "super_users": ("root",)},
        {"users": {**users, "bad name": "pw"}},
        {"users": {**users, apache_config.NODE_USER: "pw"}},
    ]
    for arguments in refused:
        with pytest.raises(ConfigurationError):
            ApacheKafkaCluster(tmp_path, **arguments)  # type: ignore[arg-type]
    cluster = ApacheKafkaCluster(tmp_path, users=users)
    with pytest.raises(ConfigurationError, match="not a user"):
        cluster.password_file("police.x")


def test_scram_credentials_are_salted_as_rfc_5802_says() -> None:
    argument = apache_config.scram_argument("police.x", "pässword")
    found = re.fullmatch(
        r'SCRAM-SHA-512=\[name=police\.x,iterations=(\d+),salt="([^"]+)",saltedpassword="([^"]+)"\]',
        argument,
    )
    assert found is not None
    iterations, salt, salted = int(found[1]), b64decode(found[2]), b64decode(found[3])
    assert 4096 <= iterations <= 16384  # what Kafka accepts for SCRAM-SHA-512
    assert salted == hashlib.pbkdf2_hmac("sha512", "pässword".encode(), salt, iterations)
    assert "pässword" not in argument
    for bad in ("", "x" * (apache_config.MAX_PASSWORD_BYTES + 1)):
        with pytest.raises(ConfigurationError, match="password"):
            apache_config.scram_argument("police.x", bad)


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b"\xf8" + bytes(15), bytes(range(1, 17))])  # the first encodes as "-..."
    monkeypatch.setattr(secrets, "token_bytes", lambda _n: next(draws))
    assert apache._cluster_id() == "AQIDBAUGBwgJCgsMDQ4PEA"


# -- first, without the module's cluster: a start that fails says why and leaves nothing --
async def test_a_node_that_cannot_bind_fails_the_start_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = kafka_unavailable()
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")
    with port_taken() as taken:
        # Node 1's ports come first: client, internal, then the controller's, which it
        # binds soonest (the broker's listeners open only once it is otherwise ready).
        ports = iter([free_port(), free_port(), taken])
        monkeypatch.setattr(apache, "free_port", lambda: next(ports, None) or free_port())
        monkeypatch.setattr(apache, "_PORT_ATTEMPTS", 1)
        doomed = ApacheKafkaCluster(tmp_path, users={ADMIN: "pw"}, nodes=1, start_timeout=60)
        with pytest.raises(ConfigurationError) as failed:
            await doomed.start()
    message = str(failed.value)
    assert message.startswith("Kafka node 1 exited while starting; first error:\n")
    assert f"failed to bind to 127.0.0.1:{taken}: Address already in use" in message
    assert "its log ends:\n" in message
    assert doomed.node_pids == [None]
    assert not jvms_under(tmp_path)


# -- the module's cluster ------------------------------------------------------------------
async def test_admin_produces_and_consumes_over_sasl_ssl(cluster: ApacheKafkaCluster) -> None:
    assert cluster.admin_user == ADMIN
    assert len(cluster.bootstrap.split(",")) == 3
    assert cluster.password_file(ADMIN) == cluster.credentials_dir / ADMIN
    assert cluster.password_file(ADMIN).stat().st_mode & 0o777 == 0o600
    await cluster.create_topics(["mappa.probe.roundtrip"])
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_username=ADMIN,
        kafka_password_file=cluster.password_file(ADMIN),
        kafka_ca_file=cluster.ca_file,
    )
    async with KafkaTransport(settings, bootstrap=cluster.bootstrap) as transport:
        _partition, offset = await transport.send("mappa.probe.roundtrip", b"sealed envelope")
        assert offset == 0
        assert await read_one(transport, "mappa.probe.roundtrip") == b"sealed envelope"


async def test_a_record_carries_the_brokers_append_time_not_the_producers(
    cluster: ApacheKafkaCluster,
) -> None:
    # Receivers bound a message's claimed creation time by its record's timestamp: a
    # producer that dates its record in 1970 must not be believed.
    async with KafkaTransport(admin_settings(cluster), bootstrap=cluster.bootstrap) as transport:
        topic = f"mappa.probe.time{secrets.token_hex(4)}"
        await transport.ensure_topics([topic], partitions=1)
        await transport.producer.send_and_wait(topic, b"backdated", timestamp_ms=1000)
        async with await transport.reader([topic], {}) as reader:
            deadline = time.monotonic() + 30
            records: list[Record] = []
            while not records and time.monotonic() < deadline:
                records = await reader.poll(timeout_ms=500)
    assert records, f"nothing to read on {topic}"
    assert abs(records[0].timestamp_ms / 1000 - time.time()) < 600


async def test_a_wrong_password_is_refused_at_connection(
    cluster: ApacheKafkaCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    settings = admin_settings(cluster).model_copy(update={"kafka_password_file": wrong})
    said = await refused_at_connection(settings, cluster.bootstrap, caplog)
    assert all("SaslAuthenticationFailed" in line for line in said), said


async def test_a_plaintext_client_is_refused(
    cluster: ApacheKafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    plaintext = Settings(kafka_security_protocol="PLAINTEXT")  # allowed to loopback
    said = await refused_at_connection(plaintext, cluster.bootstrap, caplog)
    assert all("closed" in line for line in said), said  # the TLS listener hangs up


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    cluster: ApacheKafkaCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(CertificateAuthority().certificate_pem)
    settings = admin_settings(cluster).model_copy(update={"kafka_ca_file": other_ca})
    said = await refused_at_connection(settings, cluster.bootstrap, caplog)
    assert all("CERTIFICATE_VERIFY_FAILED" in line for line in said), said


async def test_a_user_without_acls_may_not_produce(cluster: ApacheKafkaCluster) -> None:
    await cluster.create_topics(["mappa.probe.acl"])
    async with KafkaTransport(cluster.client_settings(AGENCY)) as transport:
        with pytest.raises(TransportError) as refused:
            await transport.send("mappa.probe.acl", b"not allowed")
    assert isinstance(refused.value.__cause__, TopicAuthorizationFailedError)


async def test_a_killed_node_leaves_the_cluster_writable_and_rejoins(
    cluster: ApacheKafkaCluster,
) -> None:
    topic = "mappa.probe.failover"
    await cluster.create_topics([topic])
    assert await cluster.broker_ids() == {1, 2, 3}
    # Connected before the crash, as a running gateway's transport is.
    async with KafkaTransport(admin_settings(cluster), bootstrap=cluster.bootstrap) as transport:
        assert await transport.send(topic, b"all three up") == (0, 0)
        killed_pid = cluster.node_pids[1]
        assert killed_pid is not None
        await cluster.kill(1)
        assert not alive(killed_pid)
        assert cluster.node_pids[1] is None
        began = time.monotonic()
        # acks=all: the two nodes left are in sync, which min.insync.replicas=2 needs.
        assert await transport.send(topic, b"one node down") == (0, 1)
        assert time.monotonic() - began < _RECOVERY_SECONDS
        await cluster.restart(1)
        restarted = cluster.node_pids[1]
        assert restarted is not None
        _SEEN_PIDS.add(restarted)
        assert await cluster.broker_ids() == {1, 2, 3}
        assert await transport.send(topic, b"all three again") == (0, 2)
