"""Settings, built once in ``main()`` and handed down. Environment prefix ``MAPPA_``."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAPPA_", frozen=True)

    data_dir: Path = Field(default=Path(".mappa"), description="keys, stores, audit ledger")
    kafka_bootstrap: str | None = Field(
        default=None, description="external cluster; unset starts the embedded broker"
    )
    database_url: str | None = Field(
        default=None, description="audit ledger database; unset uses SQLite in data_dir"
    )
    topic_namespace: str = Field(default="mappa", description="first part of every topic")
    # How long a topic keeps records: well past the 14-day replay window, so a recipient
    # away for days can still catch up from the log (see broker/kafka/topics.py).
    topic_retention_days: int = Field(default=30, ge=1, le=3650)
    suite: str = "classic"
    allowed_suites: frozenset[str] = frozenset({"classic", "pq-hybrid"})
    # Clocks of agency systems drift; beyond this a message is from the future.
    clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    # Message ids are remembered this long; anything older is refused as stale.
    replay_window_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # Delivery is end to end (docs/delivery.md): a record nobody receipted within this
    # wait is sent again, the wait doubling up to the cap; after the last, undeliverable.
    receipt_wait_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    resend_cap_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    # Well inside the replay window: a copy re-sent later would be refused as stale.
    undeliverable_after_seconds: float = Field(default=2 * 24 * 3600, gt=0, le=10 * 24 * 3600)
    # How long a read waits at the broker for records to arrive before it answers empty:
    # the latency of a quiet system (a broker that does not wake a waiting fetch when a
    # record arrives answers only when it expires), against idle fetches per second.
    fetch_max_wait_ms: int = Field(default=10, ge=1, le=1000)
    # Worker processes sealing publications (broker/gateway/sealing_pool.py): unset, one
    # per core; 0 seals on the event loop itself.
    seal_workers: int | None = Field(default=None, ge=0, le=64)
    # For fault drills only: this process's clock runs this many seconds off the system's
    # (a receiver whose clock is slow, without touching the machine's clock).
    clock_offset_seconds: float = Field(default=0.0, ge=-86400, le=86400)
    # The running ledger verifies itself whole this often (docs/audit-ledger.md, "The
    # ledger watches itself"); 0: never. Six hours: a million entries take a few seconds.
    ledger_verify_every: float = Field(default=6 * 3600, ge=0, le=7 * 24 * 3600)
    # Transport security to a production cluster (see broker/kafka/security.py).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    # A file, never the password itself, so it stays out of the environment and ps.
    kafka_password_file: Path | None = None
    kafka_ca_file: Path | None = None
    kafka_cert_file: Path | None = None
    kafka_key_file: Path | None = None
    kafka_allow_plaintext: bool = False
    # A folder of password files named after SCRAM users: where set, a process serving
    # several agencies connects each agency's gateway as that agency's own principal (the
    # directory's kafka_principal) and the ledger as mappa-ledger, as separate deployments
    # would; MAPPA_KAFKA_USERNAME stays the process's own principal (topics, tools).
    kafka_credentials_dir: Path | None = None
    # Console sign-in with the force's own identity provider (OpenID Connect, see
    # docs/identity.md). Unset: local accounts only, the embedded default. The provider
    # proves who someone is; their local account (same username) decides what they may do.
    oidc_issuer: str | None = Field(
        default=None, description="https issuer URL; http only to 127.0.0.1 or localhost"
    )
    oidc_client_id: str | None = None
    # A file, never the secret itself, as for kafka_password_file.
    oidc_client_secret_file: Path | None = None
    oidc_username_claim: str = Field(default="preferred_username", min_length=1, max_length=100)
    oidc_scopes: str = Field(default="openid profile", max_length=500)
    # The callback's public URL (https://console.example/console/sign-in/oidc/callback)
    # as registered with the provider; unset, it is derived from each request, which
    # behind a proxy is right only if the proxy passes the public host and scheme on.
    oidc_redirect_url: str | None = None
    # Where the ledger reaches the witnesses it does not hold (a split deployment: each
    # agency's gateway serves its own): "<witness name>=<https url>,..." (docs/operations.md;
    # ``broker.witness.http_client.witness_urls``). The witness policy stays the trust
    # anchor: a URL only says where to ask.
    witness_urls: str = Field(default="", max_length=20_000)

    @field_validator("oidc_issuer", "oidc_redirect_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not is_secure_url(value):
            raise ValueError("must be an https URL (http only to 127.0.0.1 or localhost)")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("must include openid")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer is not None and (
            self.oidc_client_id is None or self.oidc_client_secret_file is None
        ):
            raise ValueError(
                "MAPPA_OIDC_ISSUER needs MAPPA_OIDC_CLIENT_ID and MAPPA_OIDC_CLIENT_SECRET_FILE"
            )
        return self

    @classmethod
    def with_flags(cls, **flags: object) -> Settings:
        """The environment's settings, with each command-line flag that was given (not
        None, not empty) in place of its variable. Raises pydantic's ValidationError for a
        value out of bounds (the CLI reports it in one line)."""
        return cls(**{k: v for k, v in flags.items() if v not in (None, "")})  # type: ignore[arg-type]


def is_secure_url(url: str) -> bool:
    """Whether ``url`` is an https URL with a host and no query or fragment, or an http
    one to this machine (127.0.0.1, ::1 or localhost: a test provider). Raises nothing."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
