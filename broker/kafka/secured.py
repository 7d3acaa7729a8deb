"""A secured Apache Kafka cluster made ready for one deployment, as a platform team would:
a SCRAM user per agency principal and for the ledger, the namespace's topics with their
configs, and exactly the ACLs the agreements imply (what ``mappa deploy credentials``
and ``mappa deploy acls --apply`` do on a real cluster). For ``mappa demo --kafka
apache`` and the fault drills, which need a cluster of their own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from broker.kafka.acls import LEDGER_USER, AclBinding, acl_bindings, scram_user
from broker.kafka.admin import KafkaAdmin
from broker.kafka.apache import ApacheKafkaCluster
from broker.kafka.topics import PARTITIONS, Topics
from broker.settings import Settings
from schemas.directory import AgencyEntry
from schemas.isa import Agreement

ADMIN_USER = "admin"
# SCRAM passwords of a throwaway cluster: random, in files only the owner reads.
PASSWORD_BYTES = 18


@asynccontextmanager
async def secured_cluster(
    workdir: Path,
    settings: Settings,
    agencies: Sequence[AgencyEntry],
    agreements: Sequence[Agreement],
    areas: Sequence[str],
) -> AsyncIterator[tuple[ApacheKafkaCluster, Settings, list[AclBinding]]]:
    """Start a 3-node cluster in ``workdir`` ready for ``agencies``: yields it, ``settings``
    pointed at it (the process as the admin, each agency and the ledger as itself) and
    the ACLs in force. Stops it on exit, failure or cancellation. Raises
    ``ConfigurationError`` where it cannot run, ``AdminError`` if the cluster refuses."""
    users = {scram_user(a.kafka_principal) for a in agencies} | {ADMIN_USER, LEDGER_USER}
    passwords = {u: secrets.token_urlsafe(PASSWORD_BYTES) for u in sorted(users)}
    async with ApacheKafkaCluster(workdir, users=passwords, super_users=(ADMIN_USER,)) as cluster:
        secured = cluster.deployment_settings(settings)
        topics = Topics(settings.topic_namespace)
        bindings = acl_bindings(agencies, agreements, topics)
        admin = KafkaAdmin(secured)
        await asyncio.to_thread(
            admin.create_topics, topics.all_topics(areas), partitions=PARTITIONS
        )
        await asyncio.to_thread(admin.apply, bindings, settings.topic_namespace)
        yield cluster, secured, bindings
