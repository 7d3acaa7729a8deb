"""Settings, built once in ``main()`` and handed down. Environment prefix ``MAPPA_``."""

from __future__ import annotations

from pathlib import Path

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
    suite: str = "classic"
    allowed_suites: frozenset[str] = frozenset({"classic", "pq-hybrid"})
    # Clocks of agency systems drift; beyond this a message is from the future.
    clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    # Message ids are remembered this long; anything older is refused as stale.
    replay_window_seconds: int = Field(default=14 * 24 * 3600, ge=60)
