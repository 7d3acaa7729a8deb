"""The two brokers the end-to-end tests run on: the embedded tansu, and a shared Apache
Kafka cluster (three KRaft nodes, SASL_SSL, ACLs enforced).

The Apache cluster is started once per test run by the controlling process (conftest's
``pytest_configure``), before any worker, and stopped when the run ends; workers find it
through the environment. Every agency the worlds run on it has a SCRAM user of its own
name, the ledger ``mappa-ledger``, the harness ``admin`` (a super user). A world on it
creates its topics and applies the ACLs its agreements imply as the platform team
would (``mappa deploy acls --apply``), then runs each agency as its own principal, so
every produce and fetch of the product is authorised by the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.kafka.acls import LEDGER_USER, acl_bindings
from broker.kafka.admin import KafkaAdmin
from broker.kafka.apache import ApacheKafkaCluster, kafka_unavailable
from broker.kafka.topics import PARTITIONS, Topics
from broker.settings import Settings
from schemas.directory import AgencyEntry
from schemas.isa import Agreement

APACHE_ENV = "MAPPA_TEST_APACHE_KAFKA"
APACHE_ABSENT = "MAPPA_TEST_APACHE_KAFKA_ABSENT"
ADMIN = "admin"
# A user nobody grants anything.
STRANGER = "eve.nowhere"


@dataclass(frozen=True)
class Broker:
    """How a world reaches one of the brokers: a name for test ids, and the Kafka part of
    its settings (for Apache: SASL_SSL as the admin, each agency as itself)."""

    name: str
    settings: dict[str, Any]

    @property
    def secured(self) -> bool:
        return self.settings.get("kafka_security_protocol") == "SASL_SSL"

    def as_user(self, user: str) -> Settings:
        """Settings connecting as ``user`` alone (an agency's own deployment)."""
        fields = {k: v for k, v in self.settings.items() if k != "kafka_credentials_dir"}
        if self.secured:
            creds = Path(self.settings["kafka_credentials_dir"])
            fields |= {"kafka_username": user, "kafka_password_file": creds / user}
        return Settings(**fields)


def tansu(bootstrap: str) -> Broker:
    return Broker("tansu", {"kafka_bootstrap": bootstrap})


def apache_from_environment() -> Broker | None:
    """The shared cluster the controlling process started, if it did."""
    found = os.environ.get(APACHE_ENV)
    if not found:
        return None
    info = json.loads(found)
    creds = Path(info["workdir"]) / "users"
    return Broker(
        "apache",
        {
            "kafka_bootstrap": info["bootstrap"],
            "kafka_security_protocol": "SASL_SSL",
            "kafka_username": ADMIN,
            "kafka_password_file": creds / ADMIN,
            "kafka_ca_file": Path(info["workdir"]) / "tls" / "ca.pem",
            "kafka_credentials_dir": creds,
        },
    )


def apache_absent() -> str:
    return os.environ.get(APACHE_ABSENT) or "the Apache Kafka cluster was not started"


@contextmanager
def shared_cluster(workdir: Path, agencies: Sequence[str]) -> Iterator[ApacheKafkaCluster]:
    """Start the run's cluster, with a SCRAM user for each of ``agencies``, in this (the
    main) thread, since PR_SET_PDEATHSIG ties each JVM to the thread that started it; stop
    it when the block ends. Raises ``ConfigurationError`` saying why when it cannot run."""
    reason = kafka_unavailable()
    if reason is not None:
        from broker.errors import ConfigurationError

        raise ConfigurationError(reason)
    users = {u: secrets.token_urlsafe(18) for u in (ADMIN, LEDGER_USER, STRANGER, *agencies)}
    cluster = ApacheKafkaCluster(workdir, users=users, super_users=(ADMIN,))
    try:
        asyncio.run(cluster.start())
        yield cluster
    finally:
        asyncio.run(cluster.stop())


def export(cluster: ApacheKafkaCluster, workdir: Path) -> None:
    """Hand the cluster to the workers through the environment they inherit."""
    found = {"bootstrap": cluster.bootstrap, "workdir": str(workdir)}
    os.environ[APACHE_ENV] = json.dumps(found)


def prepare_namespace(
    broker: Broker,
    settings: Settings,
    agencies: Sequence[AgencyEntry],
    agreements: Sequence[Agreement],
    areas: Sequence[str],
) -> None:
    """What the platform team does before a deployment runs on the secured cluster: its
    topics, with their configs, and exactly the ACLs its agreements imply."""
    admin = KafkaAdmin(broker.as_user(ADMIN))
    topics = Topics(settings.topic_namespace)
    admin.create_topics(topics.all_topics(areas), partitions=PARTITIONS)
    admin.apply(acl_bindings(agencies, agreements, topics), settings.topic_namespace)
