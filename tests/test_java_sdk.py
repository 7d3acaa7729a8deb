"""The Java library (issue 21): its JUnit suites, and interop on the wire.

- The library's JUnit suites, which run every envelope and receipt vector of
  ``tests/vectors/`` as a test of its own, passed in this run's build (``tests/java_sdk.py``),
  and they did run: the surefire reports written by this build hold the vector suites,
  with at least as many passed tests as vectors (each vector named by a passed test, where
  the pom's surefire reporter writes display names), and no failure or error anywhere.
- On the embedded broker in each suite (classic, and pq-hybrid: ML-KEM-768+X25519 and
  ML-DSA-65 on the wire), and on the secured Apache Kafka cluster in the classic suite,
  a Python gateway publishes a risk assessment through the product's own publish path;
  probation runs no Python gateway, but a Java consumer of the
  library's tests (``org.mappabroker.envelope.interop.ReceiveAndReceipt``) with
  probation's keys from the product's keystore, its signed directory and trust anchor:
  it verifies and opens the envelope, the same view and bytes the Python receiver would
  open, and sends a signed delivery receipt; the police's gateway applies that receipt
  (its row for probation ``delivered``, the receipt audited as a disclosure), and the
  receipt it applied is the Java one, byte for byte. On Apache Kafka the Java consumer
  connects as an agency's system really would: SASL_SSL with SCRAM-SHA-512 as
  probation's own principal (its SCRAM user and password file), TLS checked against the
  cluster's CA and host name, under the ACLs the agreement implies; that it runs as
  probation, under those ACLs, is shown by the cluster refusing it an area topic they
  give probation no right to.

Without Java 17 and Maven these tests skip and say why; the Apache Kafka case skips,
saying why, where the run's cluster is not running (as every ``apache_kafka`` test does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.crypto.envelope import OpenedView, VerifiedEnvelope, open_view, parse_envelope
from broker.crypto.envelope import verify_envelope as verify_signatures
from broker.crypto.suites import suite_named
from broker.gateway.tracking import DELIVERED, SENT
from broker.kafka.acls import acl_bindings, scram_user
from schemas.common import Role, parse_timestamp
from tests import java_sdk
from tests.brokers import Broker
from tests.support import (
    AREA,
    EDUCATION,
    HOUSING,
    PARTIES,
    PNC,
    POLICE,
    PRISON,
    PROBATION,
    World,
    build_world,
    risk_assessment,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
# The JUnit classes that run the vector files, one dynamic test per vector.
VECTOR_SUITES = {
    "org.mappabroker.envelope.EnvelopeVectorsTest": ("envelope-vectors.json",),
    "org.mappabroker.envelope.receipt.ReceiptVectorsTest": ("receipt-vectors.json",),
}
INTEROP_MAIN = "org.mappabroker.envelope.interop.ReceiveAndReceipt"
# Starting the JVM, the Kafka clients and reading a few records take a few seconds on two
# busy cores; past this the consumer is killed and the test fails with what it printed.
JAVA_SECONDS = 45


@pytest.fixture(scope="module")
def java_build(tmp_path_factory: pytest.TempPathFactory) -> java_sdk.Build:
    """The library built and tested once in this run (``java_sdk.built``)."""
    return java_sdk.built(tmp_path_factory)


def vectors_in(name: str) -> list[str]:
    """The names of the vectors the file holds: its ``valid`` and ``invalid`` lists."""
    document = json.loads((VECTORS / name).read_text())
    return [v["name"] for v in (*document["valid"], *document["invalid"])]


def test_the_junit_suites_ran_every_vector_and_passed(java_build: java_sdk.Build) -> None:
    suites = {s.name: s for s in java_build.suites}
    failing = java_build.failing()
    assert not failing, f"JUnit tests failed: {failing}\n{java_build.explain()}"
    assert sum(s.failures + s.errors for s in suites.values()) == 0, suites
    for name, files in VECTOR_SUITES.items():
        assert name in suites, f"no surefire report of {name} in this build: {sorted(suites)}"
        vectors = [v for f in files for v in vectors_in(f)]
        passed = suites[name].passed
        assert len(passed) >= len(vectors), (name, suites[name].tests, len(vectors))
        # With surefire's phrased names (the pom's statelessTestsetReporter), a dynamic
        # test is reported as "method() <display name>", and the display name holds the
        # vector's name as a word ("<name>", "<name> for <agency>", "<name> -> <code>"):
        # then each vector must be named by a test that passed.
        words = {word for test in passed for word in test.split()[1:]}
        if words:
            unreached = [v for v in vectors if v not in words]
            assert not unreached, f"{name} passed no test named for {unreached}"


@pytest.fixture(
    params=[
        pytest.param(("tansu", "classic"), id="tansu-classic"),
        pytest.param(("tansu", "pq-hybrid"), id="tansu-pq-hybrid"),
        # One suite on the secured cluster: its part is the connection, which the suite
        # does not change, and each world there costs a JVM run and a namespace's ACLs.
        pytest.param(("apache", "classic"), id="apache-classic", marks=pytest.mark.apache_kafka),
    ]
)
def interop_case(request: pytest.FixtureRequest) -> tuple[Broker, str]:
    """A broker (skipping, saying why, where the Apache cluster is not running) and a
    suite."""
    name, suite = request.param
    broker: Broker = request.getfixturevalue(f"{name}_broker")
    return broker, suite


@pytest.fixture
async def without_probation(
    tmp_path: Path, interop_case: tuple[Broker, str]
) -> AsyncIterator[World]:
    """The usual world on the case's broker and in its suite, except that probation
    runs no Python gateway: the Java consumer is probation's only reader, so any receipt
    from probation is the Java one."""
    broker, suite = interop_case
    w = await build_world(
        tmp_path,
        broker,
        suite=suite,
        serving=[POLICE, PRISON, HOUSING, EDUCATION],
    )
    w.seed_case_team(PARTIES)
    try:
        yield w
    finally:
        await w.close()


def state_of(world: World, message_id: str, recipient: str) -> str:
    row = world.gw(POLICE).ctx.store.tracking.get(message_id, recipient)
    assert row is not None, (message_id, recipient)
    return row.state


def opened_by_python(
    world: World, value: bytes, agency: str
) -> tuple[VerifiedEnvelope, OpenedView]:
    """What the Python receiver would open of ``value`` as ``agency``: the sender's
    signatures checked with its directory keys, the view opened with ``agency``'s keys
    from the keystore."""
    unverified = parse_envelope(value)
    header = unverified.unverified_header
    suite = suite_named(header.suite)
    signing = world.deployment.directory.signing_keys(
        header.sender,
        header.sender_keys,
        suite=suite,
        signed_at=parse_timestamp(header.created_at),
    )
    verified = verify_signatures(unverified, suite=suite, keys=signing)
    store = world.deployment.keystore
    keys = {kid: store.load(agency, kid) for kid in store.key_ids(agency)}
    return verified, open_view(verified, agency=agency, keys=keys, suite=suite)


def topic_without_rights(world: World, principal: str) -> str:
    """An area topic of the world's namespace on which the ACLs its agreement implies
    (as ``build_world`` applied them) give ``principal`` no right at all."""
    deployment = world.deployment
    bindings = acl_bindings(
        deployment.directory.agencies(), [deployment.agreement], deployment.topics
    )
    granted = {b.topic for b in bindings if b.principal == principal}
    left_out = sorted(set(deployment.topics.area_topics(AREA)) - granted)
    assert left_out, f"{principal} has rights on every topic of {AREA}"
    return left_out[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_java_agency_opens_and_receipts_what_a_python_gateway_sent(
    java_build: java_sdk.Build, without_probation: World
) -> None:
    world = without_probation
    police = world.gw(POLICE)
    result = await police.publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    assert state_of(world, mid, PROBATION) == SENT
    topic = world.deployment.topics.for_role(AREA, Role.PROBATION)
    paths = world.deployment.paths
    agreement = police.ctx.policy.agreement
    settings = world.deployment.settings
    # Probation's own principal, as the signed directory names it for the cluster's ACLs.
    principal = world.deployment.directory.agency(PROBATION).kafka_principal
    client = java_sdk.kafka_client(settings, scram_user(principal))
    arguments = {
        "topic": topic,
        "agency": PROBATION,
        "namespace": world.deployment.settings.topic_namespace,
        "suites": ",".join(sorted(world.deployment.settings.allowed_suites)),
        "key-root": str(paths.keys),
        "directory": str(paths.directory),
        "governance-key": str(paths.governance_pub),
        "agreement": agreement.id,
        "agreement-version": str(agreement.version),
        "expect": "1",
        "timeout-seconds": str(JAVA_SECONDS - 10),
    }
    secured = settings.kafka_security_protocol == "SASL_SSL"
    if secured:
        arguments["unreadable-topic"] = unreadable = topic_without_rights(world, principal)
    run = await asyncio.to_thread(
        java_sdk.run_java,
        java_build.classpath,
        INTEROP_MAIN,
        [
            *client.arguments,
            *(part for name, value in arguments.items() for part in (f"--{name}", value)),
        ],
        env={"MAPPA_KEY_PASSPHRASE": world.passphrase.decode(), **client.env},
        timeout=JAVA_SECONDS,
    )
    assert run.status == 0, f"the Java consumer exited {run.status}: {run.lines}\n{run.errors}"
    lines: list[dict[str, Any]] = [json.loads(line) for line in run.lines]
    if secured:
        # It ran as probation, under the agreement's ACLs: the cluster would not even
        # describe to it a topic those ACLs give probation no right to.
        assert {"topic": unreadable, "access": "denied"} in lines, lines
    answered = [line for line in lines if "receipt_sha256" in line]
    assert [line["message_id"] for line in answered] == [mid], lines
    java = answered[0]
    assert (java["outcome"], java["sender"]) == ("opened", POLICE), java

    # Java opened exactly what the Python receiver would: the same view, the same bytes.
    records = await world.read(topic, 1)
    (record,) = [r for r in records if json.loads(r.value)["header"]["message_id"] == mid]
    assert json.loads(record.value)["header"]["suite"] == world.deployment.settings.suite
    verified, opened = opened_by_python(world, record.value, PROBATION)
    assert java["view"] == opened.kind.value
    assert java["plaintext_sha256"] == sha256(opened.plaintext)
    tracked = world.gw(POLICE).ctx.store.tracking.get(mid, PROBATION)
    assert tracked is not None
    assert java["envelope_digest"] == verified.digest == tracked.digest

    # The police's gateway applies the Java receipt: delivered, and audited as a disclosure.
    await world.pump(lambda: state_of(world, mid, PROBATION) == DELIVERED)
    applied = [h for h in world.receipts(POLICE) if h.message_id == mid and h.sender == PROBATION]
    assert len(applied) == 1
    on_topic = await world.read(world.deployment.topics.receipts, 1)
    from_probation = [
        r for r in on_topic if json.loads(r.value)["receipt"].get("recipient") == PROBATION
    ]
    # The only receipt in probation's name is the one the Java consumer sent.
    assert [sha256(r.value) for r in from_probation] == [java["receipt_sha256"]]
    assert [r.key for r in from_probation] == [POLICE.encode()]
    await world.sync_ledger()
    audited = world.ledger.store.entries(
        agency=POLICE, operation="receipt", message_id=mid, recipient=PROBATION
    )
    assert [(e["act"], e["outcome"], e["view"]) for e in audited] == [
        ("disclosure", "ok", opened.kind.value)
    ]
    for entry in audited:
        assert entry["subject_ref"] == world.deployment.subject_ref(PNC)
        assert entry["message_type"] == "risk-assessment"
        assert entry["isa_id"] == agreement.id
