"""Administering a production cluster: topics with explicit configs, the agreement-derived
ACLs, SCRAM credentials, through the Kafka Admin API.

aiokafka has no ACL or SCRAM admin calls, so this module uses confluent-kafka's
``AdminClient`` (librdkafka), configured from the same settings and with the same
refusals as every other client (``broker.kafka.security.librdkafka_config``). It runs
as the platform's admin principal, the one whose grants the cluster's ``super.users``
holds; agencies' principals may do none of this.

What the ACLs must be is derived elsewhere (``broker.kafka.acls``); here they are
compared with what the cluster holds, within the namespace's scope: every ACL on a
topic of the namespace (``<ns>.``), and every ACL on a resource other than a topic
(the cluster, a group, a transactional id) naming one of the principals the derivation
covers. Another namespace's topics on a shared cluster (a staging deployment) are
that namespace's to manage. ``apply`` adds what is missing and removes what is extra
in that scope, so the cluster grants exactly what the agreements imply; ``diff`` says
what differs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AclBinding as KafkaAclBinding
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from broker.errors import ConfigurationError, MappaError
from broker.kafka.acls import AclBinding, Operation
from broker.kafka.security import librdkafka_config
from broker.kafka.topics import topic_configs
from broker.settings import Settings

log = logging.getLogger(__name__)
# Each admin call waits at most this long for the cluster: a controller election after
# a node loss takes seconds, an unreachable cluster should not hang a command.
ADMIN_TIMEOUT_SECONDS = 30.0
# How often ``apply`` looks whether the brokers show the ACLs it made.
_SETTLE_PAUSE_SECONDS = 0.2
# SCRAM iterations (RFC 7677 asks for at least 4096; Kafka's tools use 4096 too).
SCRAM_ITERATIONS = 8192

_OPERATIONS = {
    Operation.READ: AclOperation.READ,
    Operation.WRITE: AclOperation.WRITE,
    Operation.DESCRIBE: AclOperation.DESCRIBE,
}


class AdminError(MappaError):
    """The cluster refused or failed an administrative call."""

    code = "kafka.admin-failed"
    retriable = True


@dataclass(frozen=True)
class AclDiff:
    """How the cluster's ACLs differ from the derived ones, within the managed scope.
    ``other`` holds grants in scope that are not simple topic allows (a DENY, a prefixed
    pattern, a group or cluster grant): the derivation never makes them, so they count
    as differences and ``apply`` removes them too."""

    missing: tuple[AclBinding, ...]
    extra: tuple[AclBinding, ...]
    other: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.other)


def _kafka_binding(b: AclBinding) -> KafkaAclBinding:
    return KafkaAclBinding(
        ResourceType.TOPIC,
        b.topic,
        ResourcePatternType.LITERAL,
        b.principal,
        "*",
        _OPERATIONS[b.operation],
        AclPermissionType.ALLOW,
    )


def _ours(k: KafkaAclBinding) -> AclBinding | None:
    """The binding as ours, if it is the kind the derivation makes (a literal topic allow
    from any host for one of our three operations); else None."""
    ours = {v: k_ for k_, v in _OPERATIONS.items()}
    if (
        k.restype is ResourceType.TOPIC
        and k.resource_pattern_type is ResourcePatternType.LITERAL
        and k.permission_type is AclPermissionType.ALLOW
        and k.host == "*"
        and k.operation in ours
    ):
        return AclBinding(k.principal, k.name, ours[k.operation])
    return None


def _exactly(k: KafkaAclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        k.restype, k.name, k.resource_pattern_type, k.principal, k.host, k.operation,
        k.permission_type,
    )  # fmt: skip


class KafkaAdmin:
    """An admin connection, as the process's own principal (``MAPPA_KAFKA_USERNAME``).
    Raises ``ConfigurationError`` like ``KafkaTransport`` for insecure settings."""

    def __init__(self, settings: Settings, *, bootstrap: str | None = None) -> None:
        address = bootstrap or settings.kafka_bootstrap
        if not address:
            raise ConfigurationError("no Kafka bootstrap address: give --bootstrap")
        self._settings = settings
        config: dict[str, str | int | float | bool] = {**librdkafka_config(settings, address)}
        # librdkafka logs to stderr by default; ours go through logging like the rest.
        self._client = AdminClient(config, logger=log)

    def _wait(self, futures: Mapping[Any, Any] | Sequence[Any], what: str) -> list[Any]:
        pending = list(futures.values()) if isinstance(futures, Mapping) else list(futures)
        try:
            return [f.result(timeout=ADMIN_TIMEOUT_SECONDS) for f in pending]
        except KafkaException as exc:
            raise AdminError(f"{what} failed: {exc.args[0].str()}") from None
        except TimeoutError:
            raise AdminError(f"{what}: no answer within {ADMIN_TIMEOUT_SECONDS:.0f}s") from None

    def _metadata(self) -> Any:
        try:
            return self._client.list_topics(timeout=ADMIN_TIMEOUT_SECONDS)
        except KafkaException as exc:
            raise AdminError(f"cannot reach the cluster: {exc.args[0].str()}") from None

    def brokers(self) -> int:
        """How many brokers the cluster has. Raises ``AdminError``."""
        return len(self._metadata().brokers)

    def create_topics(self, names: Iterable[str], *, partitions: int) -> list[str]:
        """Create whichever of ``names`` the cluster lacks, with replication up to 3
        and the namespace's configs (``topic_configs``); returns those created. Raises
        ``AdminError``."""
        meta = self._metadata()
        missing = sorted(set(names) - set(meta.topics))
        if not missing:
            return []
        replication = min(3, len(meta.brokers))
        configs = topic_configs(self._settings, replication)
        new = [NewTopic(n, partitions, replication, config=configs) for n in missing]
        self._wait(self._client.create_topics(new), "creating topics")
        return missing

    def _in_scope(self, namespace: str, principals: set[str]) -> list[KafkaAclBinding]:
        """Every ACL on a topic of the namespace, or on another kind of resource naming
        one of ``principals``."""
        # None matches anything in a filter; the stubs type these as plain str.
        every = AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
            AclOperation.ANY, AclPermissionType.ANY,
        )  # fmt: skip
        [found] = self._wait([self._client.describe_acls(every)], "reading ACLs")
        return [
            k
            for k in found
            if (k.restype is ResourceType.TOPIC and str(k.name).startswith(f"{namespace}."))
            or (k.restype is not ResourceType.TOPIC and k.principal in principals)
        ]

    def diff(self, wanted: Iterable[AclBinding], namespace: str) -> AclDiff:
        """How the cluster's ACLs in scope differ from ``wanted``. Raises ``AdminError``."""
        target = set(wanted)
        found = self._in_scope(namespace, {b.principal for b in target})
        held = {mine for k in found if (mine := _ours(k)) is not None}
        other = tuple(sorted(str(k) for k in found if _ours(k) is None))
        return AclDiff(tuple(sorted(target - held)), tuple(sorted(held - target)), other)

    def apply(self, wanted: Iterable[AclBinding], namespace: str) -> AclDiff:
        """Make the cluster's ACLs in scope exactly ``wanted``: add the missing, delete
        the extra and every other kind of grant in scope. Returns what differed before.
        Raises ``AdminError``."""
        target = set(wanted)
        found = self._in_scope(namespace, {b.principal for b in target})
        held = {mine for k in found if (mine := _ours(k)) is not None}
        missing = sorted(target - held)
        doomed = [k for k in found if (mine := _ours(k)) is None or mine not in target]
        if missing:
            self._wait(
                self._client.create_acls([_kafka_binding(b) for b in missing]), "creating ACLs"
            )
        if doomed:
            self._wait(self._client.delete_acls([_exactly(k) for k in doomed]), "deleting ACLs")
        self._settled(target, namespace)
        return AclDiff(
            tuple(missing),
            tuple(sorted(held - target)),
            tuple(sorted(str(k) for k in found if _ours(k) is None)),
        )

    def _settled(self, target: set[AclBinding], namespace: str) -> None:
        """Wait until the brokers serve what was applied: the controller commits ACLs at
        once, the brokers' caches follow a moment later, and a client that connects in
        between is refused. Raises ``AdminError`` if they do not within the timeout."""
        deadline = time.monotonic() + ADMIN_TIMEOUT_SECONDS
        while not self.diff(target, namespace).same:
            if time.monotonic() > deadline:
                raise AdminError(
                    f"the cluster did not show the applied ACLs within {ADMIN_TIMEOUT_SECONDS:.0f}s"
                )
            time.sleep(_SETTLE_PAUSE_SECONDS)

    def upsert_scram_users(self, passwords: Mapping[str, str]) -> None:
        """Create or reset a SCRAM-SHA-512 credential for each user. Raises ``AdminError``."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, info, password.encode())
            for user, password in sorted(passwords.items())
        ]
        if upserts:
            self._wait(
                self._client.alter_user_scram_credentials(upserts), "setting SCRAM credentials"
            )
