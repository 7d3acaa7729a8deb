"""Settings, built once in ``main()`` and handed down. Environment prefix ``MAPPA_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
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
    # For fault drills only: this process's clock runs this many seconds off the system's
    # (a receiver whose clock is slow, without touching the machine's clock).
    clock_offset_seconds: float = Field(default=0.0, ge=-86400, le=86400)
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

    @classmethod
    def with_flags(cls, **flags: object) -> Settings:
        """The environment's settings, with each command-line flag that was given (not
        None, not empty) in place of its variable. Raises pydantic's ValidationError for a
        value out of bounds (the CLI reports it in one line)."""
        return cls(**{k: v for k, v in flags.items() if v not in (None, "")})  # type: ignore[arg-type]
