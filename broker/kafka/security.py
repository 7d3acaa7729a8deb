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


def _check_plaintext(settings: Settings, bootstrap: str) -> None:
    if not _is_loopback(bootstrap) and not settings.kafka_allow_plaintext:
        raise ConfigurationError(
            f"refusing plaintext Kafka to {bootstrap}: set MAPPA_KAFKA_SECURITY_PROTOCOL="
            "SASL_SSL (or MAPPA_KAFKA_ALLOW_PLAINTEXT=true for a trusted test network)",
            code="kafka.plaintext-refused",
        )


def scram_credentials(settings: Settings, username: str | None = None) -> tuple[str, str]:
    """The SCRAM user and password to connect as: ``username``'s password file in
    ``kafka_credentials_dir`` when a username is given, else ``kafka_username`` with
    ``kafka_password_file``. Raises ``ConfigurationError`` (``kafka.security-incomplete``)
    when either is missing or unreadable."""
    if username is not None:
        if settings.kafka_credentials_dir is None:
            raise ConfigurationError(
                f"connecting as {username} needs MAPPA_KAFKA_CREDENTIALS_DIR",
                code="kafka.security-incomplete",
            )
        return username, _read_secret(
            settings.kafka_credentials_dir / username, f"the password of {username}"
        )
    if settings.kafka_username is None:
        raise ConfigurationError(
            "SASL_SSL needs MAPPA_KAFKA_USERNAME", code="kafka.security-incomplete"
        )
    return settings.kafka_username, _read_secret(
        settings.kafka_password_file, "MAPPA_KAFKA_PASSWORD_FILE"
    )


def client_options(
    settings: Settings, bootstrap: str, *, username: str | None = None
) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security protocol, connecting as
    ``username`` (see ``scram_credentials``) or the process's own principal. Raises
    ``ConfigurationError``: ``kafka.plaintext-refused`` for plaintext to a broker not on
    this machine, ``kafka.security-incomplete`` for missing TLS or SASL material."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        _check_plaintext(settings, bootstrap)
        return {}
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "ssl_context": _ssl_context(settings),
    }
    if protocol == "SASL_SSL":
        user, password = scram_credentials(settings, username)
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }
    return options


def librdkafka_config(
    settings: Settings, bootstrap: str, *, username: str | None = None
) -> dict[str, str]:
    """The same security, as librdkafka configuration (the admin client's). Raises as
    ``client_options``."""
    protocol = settings.kafka_security_protocol
    config = {"bootstrap.servers": bootstrap}
    if protocol == "PLAINTEXT":
        _check_plaintext(settings, bootstrap)
        return config
    _ssl_context(settings)  # the same checks on the TLS material, with the same errors
    assert settings.kafka_ca_file is not None  # noqa: S101 - _ssl_context requires it
    config |= {"security.protocol": protocol, "ssl.ca.location": str(settings.kafka_ca_file)}
    if settings.kafka_cert_file is not None:
        config["ssl.certificate.location"] = str(settings.kafka_cert_file)
        if settings.kafka_key_file is not None:
            config["ssl.key.location"] = str(settings.kafka_key_file)
    if protocol == "SASL_SSL":
        user, password = scram_credentials(settings, username)
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }
    return config
