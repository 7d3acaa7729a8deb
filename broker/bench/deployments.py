"""A benchmark's deployment: a fresh data directory, its agencies provisioned, a topic
namespace of its own on the bench's broker, the default agreement of its area.

Everything another process needs to open the same deployment (the latency section's
receiver) is in ``environment``: the ``MAPPA_*`` settings and the key passphrase, the way
every ``mappa`` process is configured, never a command-line argument.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.agreements import default_agreements
from broker.deployment import Deployment
from broker.settings import Settings
from broker.trust.provision import AgencySpec, DataPaths, load_directory, provision


@dataclass(frozen=True)
class BenchDeployment:
    """The settings and passphrase of one provisioned benchmark deployment."""

    settings: Settings
    passphrase: bytes = field(repr=False)

    def deployment(self) -> Deployment:
        """Its parts, under the default agreement of each area (every agency a party)."""
        agreements = default_agreements(load_directory(DataPaths(self.settings.data_dir)))
        return Deployment(settings=self.settings, passphrase=self.passphrase, agreements=agreements)

    def environment(self) -> dict[str, str]:
        """The environment under which another process opens this deployment."""
        s = self.settings
        return {
            "MAPPA_DATA_DIR": str(s.data_dir),
            "MAPPA_TOPIC_NAMESPACE": s.topic_namespace,
            "MAPPA_SUITE": s.suite,
            "MAPPA_KAFKA_BOOTSTRAP": s.kafka_bootstrap or "",
            "MAPPA_KEY_PASSPHRASE": self.passphrase.decode(),
        }


def provisioned(
    bootstrap: str, root: Path, suite: str, specs: Sequence[AgencySpec]
) -> BenchDeployment:
    """A new deployment of ``specs`` under ``root`` (a directory of its own, as is its
    topic namespace), sealing and signing with ``suite``, on the broker at ``bootstrap``."""
    namespace = f"bench{secrets.token_hex(4)}"
    settings = Settings(
        data_dir=root / namespace,
        topic_namespace=namespace,
        suite=suite,
        kafka_bootstrap=bootstrap,
    )
    passphrase = secrets.token_urlsafe(18).encode()
    provision(
        DataPaths(settings.data_dir),
        specs,
        passphrase=passphrase,
        now=datetime.now(UTC) - timedelta(days=1),
        suites=(suite,),
    )
    return BenchDeployment(settings, passphrase)
