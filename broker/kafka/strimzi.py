"""Strimzi resources for a cluster run by the Strimzi operator on Kubernetes.

Where the cluster is Strimzi's, the operator owns topics, users and ACLs: it applies
``KafkaTopic`` and ``KafkaUser`` resources (``kafka.strimzi.io/v1``) rather than Admin
API calls, so ``mappa deploy acls --apply`` and ``mappa deploy credentials`` give way to
``kubectl apply`` of what this module makes. The content is the same:

- one ``KafkaTopic`` per topic of the namespace (``Topics.all_topics`` over the
  directory's areas), with ``PARTITIONS`` partitions and the configs
  ``topic_configs`` gives every topic ``mappa deploy acls --apply`` creates;
- one ``KafkaUser`` per principal (each agency's ``kafka_principal`` and
  ``mappa-ledger``), authenticated by SCRAM-SHA-512 (the operator generates the password
  into a Secret named after the user), authorised ``simple`` with exactly the bindings
  ``broker.kafka.acls.acl_bindings`` derives for that principal: one allow ACL per
  topic, naming its operations. Nothing is derived here, so the two paths cannot drift.

Resource names are the Kafka names (topic, SCRAM user), which must therefore be
Kubernetes object names too (``RESOURCE_NAME``); a name that is not is refused rather
than rewritten, since a rewritten user name would no longer be the directory's principal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from broker.errors import ConfigurationError
from broker.kafka.acls import LEDGER_PRINCIPAL, AclBinding, scram_user
from broker.kafka.topics import PARTITIONS, topic_configs
from broker.settings import Settings

API_VERSION = "kafka.strimzi.io/v1"
# The label by which the operator finds the Kafka cluster a resource belongs to.
CLUSTER_LABEL = "strimzi.io/cluster"
# A Kubernetes object name (DNS-1123 subdomain): lower-case alphanumerics, '-' and '.',
# starting and ending alphanumeric, at most 253 characters. Topic names and agency ids
# fit it already; a directory whose principal does not is refused.
RESOURCE_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
# A namespace or cluster name is a DNS-1123 label: the same without dots, at most 63.
LABEL_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# The replicas of a production topic (deploy/kafka/server.properties: three, two in sync).
DEFAULT_REPLICAS = 3
# Kafka caps a partition's replicas at the number of brokers; Strimzi's CRD at this.
MAX_REPLICAS = 32767


def check_label(kind: str, name: str) -> str:
    """``name`` if it is a DNS-1123 label (a Kubernetes namespace or Strimzi cluster
    name). Raises ``ConfigurationError`` otherwise."""
    if not LABEL_NAME.fullmatch(name):
        raise ConfigurationError(f"{kind} {name!r}: 1-63 of a-z 0-9 -, alphanumeric at each end")
    return name


def _object_name(kind: str, name: str) -> str:
    if not RESOURCE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{kind} {name!r} is not a Kubernetes object name (a-z 0-9 . -): "
            "Strimzi names the Kafka resource after it"
        )
    return name


def _metadata(name: str, namespace: str | None, cluster: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {CLUSTER_LABEL: cluster}
    return meta


def kafka_topics(
    names: Iterable[str],
    settings: Settings,
    *,
    namespace: str | None,
    cluster: str,
    replicas: int = DEFAULT_REPLICAS,
) -> list[dict[str, Any]]:
    """A ``KafkaTopic`` for each topic name, sorted, with the configs every topic of ours
    is created with (``topic_configs``). Raises ``ConfigurationError`` for a name that is
    not a Kubernetes object name, or ``replicas`` out of 1..``MAX_REPLICAS``."""
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigurationError(f"replicas must be 1 to {MAX_REPLICAS}, not {replicas}")
    configs = topic_configs(settings, replicas)
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "KafkaTopic",
            "metadata": _metadata(_object_name("topic", name), namespace, cluster),
            "spec": {
                "topicName": name,
                "partitions": PARTITIONS,
                "replicas": replicas,
                "config": dict(configs),
            },
        }
        for name in sorted(set(names))
    ]


def kafka_users(
    principals: Iterable[str],
    bindings: Sequence[AclBinding],
    *,
    namespace: str | None,
    cluster: str,
) -> list[dict[str, Any]]:
    """A SCRAM-SHA-512 ``KafkaUser`` for each principal (``User:<name>``), sorted by
    name, whose ``simple`` authorization holds exactly ``bindings``' grants to it: one
    literal topic allow per topic, its operations sorted. Raises ``ConfigurationError``
    for a user name that is not a Kubernetes object name, or a binding to a principal
    not among ``principals`` (it would be dropped silently otherwise)."""
    users = {scram_user(p): p for p in principals}
    unknown = sorted({b.principal for b in bindings} - set(users.values()))
    if unknown:
        raise ConfigurationError(f"bindings name principals without a user: {unknown}")
    resources = []
    for user in sorted(users):
        grants: dict[str, set[str]] = {}
        for b in bindings:
            if b.principal == users[user]:
                grants.setdefault(b.topic, set()).add(b.operation.value)
        acls = [
            {
                "type": "allow",
                "resource": {"type": "topic", "name": topic, "patternType": "literal"},
                "operations": sorted(operations),
            }
            for topic, operations in sorted(grants.items())
        ]
        resources.append(
            {
                "apiVersion": API_VERSION,
                "kind": "KafkaUser",
                "metadata": _metadata(_object_name("user", user), namespace, cluster),
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return resources


def strimzi_resources(
    agency_principals: Iterable[str],
    bindings: Sequence[AclBinding],
    topic_names: Iterable[str],
    settings: Settings,
    *,
    namespace: str | None,
    cluster: str,
    replicas: int = DEFAULT_REPLICAS,
) -> list[dict[str, Any]]:
    """The topics, then the users (the agencies' and the ledger's) of a deployment.
    Raises ``ConfigurationError`` as ``kafka_topics``, ``kafka_users`` and
    ``check_label`` do."""
    check_label("cluster", cluster)
    if namespace is not None:
        check_label("namespace", namespace)
    principals = {*agency_principals, LEDGER_PRINCIPAL}
    return [
        *kafka_topics(
            topic_names, settings, namespace=namespace, cluster=cluster, replicas=replicas
        ),
        *kafka_users(principals, bindings, namespace=namespace, cluster=cluster),
    ]


def as_yaml(resources: Sequence[dict[str, Any]]) -> str:
    """The resources as one multi-document YAML stream, for ``kubectl apply -f``."""
    header = (
        "# Generated by `mappa deploy strimzi`: do not edit; regenerate after a directory\n"
        "# or agreement change, then `kubectl apply -f` it.\n"
    )
    body: str = yaml.safe_dump_all(resources, sort_keys=False, explicit_start=True)
    return header + body
