"""An agency's gateway over its own store, never started and never reaching a broker:
for the commands that act beside a running ``mappa serve`` (``mappa deadletter retry``,
``mappa records``), whose writes wait in the store's outbox until that server's relay
sends them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from broker.agreements import default_agreements, read_agreement
from broker.deployment import Deployment
from broker.gateway import AgencyGateway
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from broker.trust.provision import DataPaths, load_directory

# A port nothing listens on: the gateway is never started, so nothing dials it.
NO_BROKER = "127.0.0.1:9"


@contextmanager
def offline_gateway(
    settings: Settings,
    agency: str,
    agreement_files: Sequence[Path],
    *,
    passphrase: bytes | None = None,
) -> Iterator[tuple[AgencyGateway, Deployment]]:
    """``agency``'s gateway (keys unlocked with ``passphrase``, by default
    ``MAPPA_KEY_PASSPHRASE``) under the
    agreements in ``agreement_files``, else the directory's default ones, with its
    deployment; every store closes on exit. Raises ``ConfigurationError`` and
    ``KeyUnavailable`` as ``Deployment`` does."""
    agreements = (
        [read_agreement(path) for path in agreement_files]
        if agreement_files
        else default_agreements(load_directory(DataPaths(settings.data_dir)))
    )
    deployment = Deployment(
        settings=settings,
        passphrase=passphrase or passphrase_from_env(),
        agreements=agreements,
    )
    try:
        gateway = AgencyGateway(
            deployment.context(agency),
            KafkaTransport(settings.model_copy(update={"kafka_bootstrap": NO_BROKER})),
        )
        yield gateway, deployment
    finally:
        deployment.close()
