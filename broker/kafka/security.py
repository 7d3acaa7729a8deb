"""Client-side transport security for a production Kafka cluster.

The envelope protects content end to end whatever the transport; SASL_SSL adds
what the envelope cannot hide (who talks to which topic, sizes, timing, the
subject reference used as the record key) and lets the cluster enforce the ACLs
of ``broker.kafka.acls``. Plaintext is therefore allowed only to a broker on this
machine (the embedded one, or a test cluster) unless explicitly permitted.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Any

from broker.errors import ConfigurationError
from broker.settings import Settings

_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host = server.strip().rsplit(":", 1)[0].strip("[]")
        if host in _LOOPBACK_NAMES:
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return True


def _read_secret(path: Path | None, what: str) -> str:
    if path is None:
        raise ConfigurationError(f"SASL_SSL needs {what}", code="kafka.security-incomplete")
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {what} from {path}: {exc.strerror}", code="kafka.security-incomplete"
        ) from None


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    if settings.kafka_ca_file is None:
        raise ConfigurationError(
            "TLS to Kafka needs MAPPA_KAFKA_CA_FILE (the cluster's CA certificate)",
            code="kafka.security-incomplete",
        )
    try:
        context = ssl.create_default_context(cafile=str(settings.kafka_ca_file))
        if settings.kafka_cert_file is not None:
            context.load_cert_chain(
                str(settings.kafka_cert_file),
                str(settings.kafka_key_file) if settings.kafka_key_file else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load Kafka TLS material: {exc}", code="kafka.security-incomplete"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security protocol."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        if not _is_loopback(bootstrap) and not settings.kafka_allow_plaintext:
            raise ConfigurationError(
                f"refusing plaintext Kafka to {bootstrap}: set MAPPA_KAFKA_SECURITY_PROTOCOL="
                "SASL_SSL (or MAPPA_KAFKA_ALLOW_PLAINTEXT=true for a trusted test network)",
                code="kafka.plaintext-refused",
            )
        return {}
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "ssl_context": _ssl_context(settings),
    }
    if protocol == "SASL_SSL":
        if settings.kafka_username is None:
            raise ConfigurationError(
                "SASL_SSL needs MAPPA_KAFKA_USERNAME", code="kafka.security-incomplete"
            )
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": _read_secret(
                settings.kafka_password_file, "MAPPA_KAFKA_PASSWORD_FILE"
            ),
        }
    return options
