"""The ``server.properties`` of each node of the Apache Kafka test cluster, and the SCRAM
credentials its storage is formatted with (``broker/kafka/apache.py`` runs both).

Every node is broker and controller at once (KRaft combined mode) on 127.0.0.1, with
three listeners:

  CLIENT      SASL_SSL, SCRAM-SHA-512   what clients bootstrap from (advertised)
  INTERNAL    SASL_SSL, SCRAM-SHA-512   broker to broker, as ``NODE_USER`` (advertised)
  CONTROLLER  SSL, mutual TLS           the KRaft quorum; KRaft cannot use SCRAM here,
                                        since the credentials live in the metadata the
                                        quorum itself serves

A node's TLS certificate (``CN=kafka-node``, from ``broker.crypto.tls``) serves on all
three and is its client certificate towards the other controllers; the principal
mapping rule turns ``CN=<name>`` into ``User:<name>``, and ``User:kafka-node`` is a super
user, as is the cluster's admin. With ``StandardAuthorizer`` and no ACL found meaning
"deny", anyone else may do nothing until granted.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from broker.errors import ConfigurationError

# The nodes' principal on every listener: the SCRAM user of the INTERNAL listener and
# the common name of their certificates. Not available as a cluster user.
NODE_USER = "kafka-node"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
# Kafka accepts 4096 to 16384 iterations for SCRAM-SHA-512 (ScramMechanism); the
# minimum costs a client the least at every connection, and these are test passwords.
SCRAM_ITERATIONS = 4096
# SCRAM-SHA-512's SaltedPassword is one SHA-512 output (RFC 5802 Hi, dkLen = hLen).
_SALTED_PASSWORD_BYTES = 64
_SALT_BYTES = 16
# User names go into principals, SCRAM arguments and file names: a plain set, and a
# bound well inside every one of those.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Every user's password becomes a SCRAM credential; 1 KiB is far beyond any generated
# one, and bounds what is hashed.
MAX_PASSWORD_BYTES = 1024

# Sized for a test cluster on a small machine running the test suite at the same time:
# few threads per node, and small internal topics (the defaults make 50 partitions).
_SMALL_NODE = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.replica.fetchers": "1",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
}


@dataclass(frozen=True)
class NodePorts:
    """The three listener ports of one node on 127.0.0.1."""

    client: int
    internal: int
    controller: int


def check_user_name(name: str) -> str:
    """``name`` if it may be a cluster user (``USER_NAME``, and not ``NODE_USER``).
    Raises ``ConfigurationError`` otherwise."""
    if not USER_NAME.fullmatch(name) or name == NODE_USER:
        raise ConfigurationError(
            f"cluster user {name!r}: 1-64 of A-Z a-z 0-9 . _ - (not {NODE_USER!r})"
        )
    return name


def scram_argument(name: str, password: str) -> str:
    """The storage tool's ``--add-scram`` value for ``name``: the salted password
    (RFC 5802 SaltedPassword: PBKDF2-HMAC-SHA-512 over the UTF-8 password with a random
    salt), so the plain password is never handed to the tool nor written for it.
    Raises ``ConfigurationError`` for a password that is empty or longer than
    ``MAX_PASSWORD_BYTES``."""
    secret = password.encode()
    if not 0 < len(secret) <= MAX_PASSWORD_BYTES:
        raise ConfigurationError(f"a password is 1 to {MAX_PASSWORD_BYTES} bytes")
    salt = secrets.token_bytes(_SALT_BYTES)
    salted = hashlib.pbkdf2_hmac(
        "sha512", secret, salt, SCRAM_ITERATIONS, dklen=_SALTED_PASSWORD_BYTES
    )
    return (
        f"{SCRAM_MECHANISM}=[name={name},iterations={SCRAM_ITERATIONS},"
        f'salt="{_b64(salt)}",saltedpassword="{_b64(salted)}"]'
    )


def server_properties(
    *,
    node_id: int,
    ports: Sequence[NodePorts],
    node_dir: Path,
    keystore: Path,
    truststore: Path,
    node_password: str,
    super_users: Sequence[str],
) -> str:
    """The ``server.properties`` text of node ``node_id`` (1-based) of a cluster whose
    nodes listen on ``ports`` (index ``node_id - 1`` is this node's)."""
    own = ports[node_id - 1]
    voters = ",".join(f"{i}@127.0.0.1:{p.controller}" for i, p in enumerate(ports, 1))
    replicas = str(min(3, len(ports)))
    in_sync = str(min(2, len(ports)))
    principals = ";".join(f"User:{u}" for u in (*super_users, NODE_USER))
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # A static quorum: the voters are in every node's configuration, so the storage
        # needs no directory ids at format time, and a restarted node finds its peers.
        "controller.quorum.voters": voters,
        "listeners": (
            f"CLIENT://127.0.0.1:{own.client},INTERNAL://127.0.0.1:{own.internal},"
            f"CONTROLLER://127.0.0.1:{own.controller}"
        ),
        "advertised.listeners": (
            f"CLIENT://127.0.0.1:{own.client},INTERNAL://127.0.0.1:{own.internal}"
        ),
        "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        # The server side of SCRAM reads credentials from the metadata; only the node's
        # own logins (INTERNAL, as a client of the other brokers) carry a password.
        "listener.name.client.scram-sha-512.sasl.jaas.config": f"{scram_login};",
        "listener.name.internal.scram-sha-512.sasl.jaas.config": (
            f'{scram_login} username="{NODE_USER}" password="{node_password}";'
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(truststore),
        "ssl.endpoint.identification.algorithm": "https",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": principals,
        "log.dirs": str(node_dir / "data"),
        "auto.create.topics.enable": "false",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        # As deploy/kafka/server.properties: receivers judge key revocation against the
        # later of the signed time and the broker's append time, so a stolen key cannot
        # sign "in the past"; and no replica that missed writes may become leader.
        "log.message.timestamp.type": "LogAppendTime",
        "unclean.leader.election.enable": "false",
        **_SMALL_NODE,
    }
    return "".join(f"{key}={_escape(value)}\n" for key, value in settings.items())


def _escape(value: str) -> str:
    """A value as ``java.util.Properties`` reads it back: backslashes and line breaks
    escaped (a path or password could hold either)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
