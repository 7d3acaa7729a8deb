"""The broker refuses what the agreement refuses: on the shared Apache Kafka cluster, with
each agency's own SCRAM credentials, after `mappa deploy acls --apply`.

Every agency may produce to and fetch from exactly the topics the agreements give it;
everything else (another role's topic, the ledger's, creating or deleting topics,
altering ACLs) the cluster itself refuses, whatever the agency's keys could or could
not open. `--check` notices a grant the agreements do not imply; `--apply` removes it.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from broker.agreements import agreement_for_area
from broker.cli.main import main
from broker.kafka.acls import LEDGER_USER, Operation, acl_bindings, scram_user
from broker.kafka.admin import AdminError, KafkaAdmin
from broker.kafka.security import librdkafka_config
from broker.kafka.topics import Topics
from broker.kafka.transport import KafkaTransport, TransportError
from broker.settings import Settings
from broker.trust.provision import AgencySpec, DataPaths, load_directory, provision
from tests.brokers import ADMIN, STRANGER, Broker
from tests.support import AREA, HOUSING, PARTIES, POLICE, SPECS

pytestmark = pytest.mark.apache_kafka


class Namespace:
    """A provisioned directory and a fresh topic namespace on the secured cluster, its
    topics and ACLs made by `mappa deploy acls --apply` as a platform team would."""

    def __init__(self, root: Path, broker: Broker, roster: tuple[AgencySpec, ...] = SPECS) -> None:
        self.broker = broker
        self.data = root / "data"
        self.namespace = f"a{secrets.token_hex(6)}"
        provision(
            DataPaths(self.data),
            roster,
            passphrase=secrets.token_urlsafe(18).encode(),
            now=datetime.now(UTC) - timedelta(days=1),
        )
        directory = load_directory(DataPaths(self.data))
        self.agencies = directory.agencies()
        self.agreements = [agreement_for_area(AREA, directory.agencies(area=AREA))]
        self.topics = Topics(self.namespace)
        self.bindings = acl_bindings(self.agencies, self.agreements, self.topics)

    def settings(self, user: str) -> Settings:
        return self.broker.as_user(user).model_copy(
            update={"data_dir": self.data, "topic_namespace": self.namespace}
        )

    def deploy(self, *action: str, monkeypatch: pytest.MonkeyPatch) -> int:
        """`mappa deploy acls ACTION` as the admin, through the environment."""
        admin = self.settings(ADMIN)
        for name in (
            "kafka_security_protocol",
            "kafka_username",
            "kafka_password_file",
            "kafka_ca_file",
            "topic_namespace",
        ):
            monkeypatch.setenv(f"MAPPA_{name.upper()}", str(getattr(admin, name)))
        bootstrap = str(admin.kafka_bootstrap)
        return main(
            ["deploy", "acls", "--data-dir", str(self.data), *action, "--bootstrap", bootstrap]
        )

    def granted(self, user: str, operation: Operation) -> set[str]:
        principal = f"User:{user}"
        return {
            b.topic for b in self.bindings if b.principal == principal and b.operation is operation
        }

    def raw_admin(self, user: str) -> AdminClient:
        """confluent-kafka's own admin client as ``user``: for the calls the product never
        makes (deleting a topic, one stray grant)."""
        settings = self.settings(user)
        config: dict[str, str | int | float | bool] = {
            **librdkafka_config(settings, str(settings.kafka_bootstrap))
        }
        return AdminClient(config)


@pytest.fixture
def ns(tmp_path: Path, apache_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Namespace:
    space = Namespace(tmp_path, apache_broker)
    assert space.deploy("--apply", monkeypatch=monkeypatch) == 0
    return space


async def fetch_refused(transport: KafkaTransport, topic: str) -> bool:
    """True if the cluster refuses to let this principal read ``topic``."""
    return not await transport.may_fetch(topic)


async def produce_refused(transport: KafkaTransport, topic: str) -> bool:
    try:
        await transport.send(topic, b"probe", key=b"x")
    except TransportError as exc:
        if isinstance(exc.__cause__, TopicAuthorizationFailedError):
            return True
        raise
    return False


async def test_each_agency_reaches_exactly_the_topics_its_agreements_give_it(
    ns: Namespace,
) -> None:
    every = ns.topics.all_topics([AREA])
    for agency in [*PARTIES, "education.staffordshire"]:
        user = scram_user(f"User:{agency}")
        async with KafkaTransport(ns.settings(user)) as transport:
            assert transport.idempotent  # WRITE on some topic is enough for a producer id
            reads, writes = ns.granted(user, Operation.READ), ns.granted(user, Operation.WRITE)
            for topic in every:
                assert await fetch_refused(transport, topic) is (topic not in reads), (
                    agency,
                    topic,
                )
                assert await produce_refused(transport, topic) is (topic not in writes), (
                    agency,
                    topic,
                )


async def test_a_dtc_agency_cannot_even_fetch_ra_ciphertext(ns: Namespace) -> None:
    """A stolen housing credential reads nothing of the Responsible Authority's topic."""
    ra = ns.topics.for_role(AREA, SPECS[0].role)
    async with KafkaTransport(ns.settings(HOUSING)) as housing:
        with pytest.raises(TopicAuthorizationFailedError):
            async with await housing.reader([ra], {}) as reader:
                await reader.poll(timeout_ms=2000)
        # Nor the ledger's audit trail. It may write to the RA topic (its referrals go
        # there), but not to a topic whose readers it may send nothing.
        assert await fetch_refused(housing, ns.topics.audit)
        assert not await produce_refused(housing, ra)
        unsent = sorted(set(ns.topics.all_topics([AREA])) - ns.granted(HOUSING, Operation.WRITE))
        assert unsent
        for topic in unsent:
            assert await produce_refused(housing, topic), topic
    async with KafkaTransport(ns.settings(LEDGER_USER)) as ledger:
        assert not await fetch_refused(ledger, ns.topics.audit)
        assert await fetch_refused(ledger, ra)


async def test_an_agency_may_not_administer_the_cluster(ns: Namespace) -> None:
    police = KafkaAdmin(ns.settings(POLICE))
    with pytest.raises(AdminError, match="creating topics"):
        police.create_topics([f"{ns.namespace}.staffordshire.extra"], partitions=1)
    with pytest.raises(AdminError):
        police.apply(ns.bindings, ns.namespace)
    raw = ns.raw_admin(POLICE)  # held: the futures die with their client
    [deleted] = raw.delete_topics([ns.topics.audit], operation_timeout=10).values()
    with pytest.raises(KafkaException, match=r"TOPIC_AUTHORIZATION_FAILED"):
        deleted.result(timeout=30)
    # Its own transport does not create topics either: it says so and goes on.
    async with KafkaTransport(ns.settings(POLICE)) as transport:
        assert await transport.ensure_topics([f"{ns.namespace}.staffordshire.extra"]) == []
    async with KafkaTransport(ns.settings(STRANGER)) as stranger:
        assert not stranger.idempotent  # no write anywhere: no producer id either
        assert await fetch_refused(stranger, ns.topics.transfers)


async def test_check_notices_an_extra_grant_and_apply_removes_it(
    ns: Namespace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ns.deploy("--check", monkeypatch=monkeypatch) == 0
    assert "holds exactly" in capsys.readouterr().out
    ra = ns.topics.for_role(AREA, SPECS[0].role)
    admin = ns.raw_admin(ADMIN)
    extra = AclBinding(
        ResourceType.TOPIC,
        ra,
        ResourcePatternType.LITERAL,
        f"User:{HOUSING}",
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    [made] = admin.create_acls([extra]).values()
    made.result(timeout=30)
    # The brokers show a new grant a moment after the controller commits it.
    watcher = KafkaAdmin(ns.settings(ADMIN))
    for _ in range(150):
        if watcher.diff(ns.bindings, ns.namespace).extra:
            break
        await asyncio.sleep(0.2)
    assert ns.deploy("--check", monkeypatch=monkeypatch) == 1
    out = capsys.readouterr().out
    assert f"extra    User:{HOUSING} Read {ra}" in out
    assert ns.deploy("--apply", monkeypatch=monkeypatch) == 0
    assert "1 removed" in capsys.readouterr().out
    assert ns.deploy("--check", monkeypatch=monkeypatch) == 0
    async with KafkaTransport(ns.settings(HOUSING)) as housing:
        assert await fetch_refused(housing, ra)


async def test_credentials_are_made_for_each_principal_and_work(
    tmp_path: Path, apache_broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mappa deploy credentials` gives each principal a SCRAM password through the Admin
    API and a file to hand over; with it, and the ACLs, the agency is let in."""
    suffix = secrets.token_hex(3)
    roster = tuple(
        AgencySpec(f"{s.agency_id.split('.')[0]}.c{suffix}", s.name, s.role, s.areas)
        for s in SPECS
        if s.agency_id in PARTIES
    )
    space = Namespace(tmp_path, apache_broker, roster)
    out = tmp_path / "passwords"
    admin = space.settings(ADMIN)
    for name in (
        "kafka_security_protocol",
        "kafka_username",
        "kafka_password_file",
        "kafka_ca_file",
    ):
        monkeypatch.setenv(f"MAPPA_{name.upper()}", str(getattr(admin, name)))
    where = ("--data-dir", str(space.data), "--bootstrap", str(admin.kafka_bootstrap))
    police = roster[0].agency_id
    assert main(["deploy", "credentials", *where, "--out", str(out), "--user", police]) == 0
    assert (out / police).stat().st_mode & 0o777 == 0o600
    assert space.deploy("--apply", monkeypatch=monkeypatch) == 0
    as_police = admin.model_copy(
        update={"kafka_username": police, "kafka_password_file": out / police}
    )
    async with KafkaTransport(as_police) as transport:
        await transport.send(space.topics.audit, b"an audit event", key=b"x")
    assert main(["deploy", "credentials", *where, "--out", str(out), "--user", "nobody.x"]) == 1
