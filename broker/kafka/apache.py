"""A real Apache Kafka cluster on this machine: three KRaft nodes in combined mode on
127.0.0.1, for tests and the Apache Kafka demo.

Kafka 4.4.0 comes from Maven Central (``broker/data/kafka/pom.xml``), resolved once into
a cache folder (``default_cache_dir``) and run as ``java -cp 'lib/*' kafka.Kafka``. The
cluster is secured as a production one would be (``broker/kafka/apache_config.py`` has
the listener layout): SASL_SSL with SCRAM-SHA-512 for clients and between brokers, mutual
TLS for the controller quorum, ``StandardAuthorizer`` denying all but super users until
ACLs say otherwise, replication factor 3 with at least 2 in sync.

Start-up, in order: a throwaway CA and node certificates (``broker.crypto.tls``); a
password file per user; every node's storage formatted with one cluster id and every
user's SCRAM credential (KIP-900, so SASL works from the first start; the storage tool
reads them salted, from a private file); the three JVMs; ready when each node answers
an admin SASL_SSL connection on its own client port and lists all three brokers. Ports
are free ones; if a JVM finds one taken after all, the start is tried again.

No JVM outlives its owner: ``async with`` stops the cluster on exit, exceptions and
cancellation (SIGTERM for a controlled shutdown, SIGKILL after a grace period);
``PR_SET_PDEATHSIG`` stops it if our process dies without cleanup; ``__del__`` kills.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.resources
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from broker.crypto.tls import CertificateAuthority
from broker.errors import ConfigurationError
from broker.kafka import apache_config
from broker.kafka.apache_install import (
    KAFKA_VERSION,
    default_cache_dir,
    kafka_classpath,
    kafka_unavailable,
)
from broker.kafka.parts import AsyncPart
from broker.kafka.process import die_with_parent, free_port, stop_processes
from broker.kafka.security import client_options
from broker.settings import Settings

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafkaCluster",
    "default_cache_dir",
    "kafka_classpath",
    "kafka_unavailable",
]

# The storage tool is one short JVM per node.
_FORMAT_SECONDS = 90.0
# Three JVMs starting on two cores beside a running test suite.
_START_SECONDS = 180.0
# A controlled shutdown moves leadership away first: some 6 s for the whole cluster.
# With a node already down the last ones can wait for a quorum that has gone; the data
# is a test's, so after this, SIGKILL.
_STOP_GRACE_SECONDS = 20.0
# One readiness probe may not hang a start: a node that is up answers in milliseconds.
_PROBE_REQUEST_MS = 5000
_PROBE_SECONDS = 10.0  # a whole probe: TCP, TLS, SCRAM, two requests
_PROBE_PAUSE_SECONDS = 0.5
# Enough of a node's log to show why it failed, short enough for an exception: its
# first error (the cause, often long before the end) and its last lines.
_LOG_TAIL_CHARS = 3000
_FIRST_ERROR_CHARS = 600
_ERROR_LINE = re.compile(r"^\[[^]]+\] (?:ERROR|FATAL) ", re.MULTILINE)
# Another process may take a free port between our probe and the JVM's bind.
_PORT_ATTEMPTS = 3
_PORT_TAKEN = re.compile(r"BindException|Address already in use")
DEFAULT_HEAP_MB = 384  # enough for a test cluster; three of them fit beside the tests
# Below this a node runs out of memory under a test's load; above, it is no test cluster.
HEAP_MB_RANGE = range(128, 4096 + 1)
_TOOL_HEAP_MB = 128  # the storage tool writes a few small files
_JVM_OPTIONS = (
    "-XX:+UseSerialGC",  # one GC thread: the cores belong to the tests
    "-XX:TieredStopAtLevel=1",  # C1 only: quicker start, less compiling, enough speed
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_PRIVATE = 0o600


def _tail(*logs: Path) -> str:
    text = ""
    for log in logs:
        with contextlib.suppress(OSError):
            text += log.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
    return text[-_LOG_TAIL_CHARS:] or "(no log output)"


def _first_error(log: Path) -> str:
    """The first ERROR line of ``log`` and the line after it (the exception), if any. The
    log rolls at 10 MiB (log4j2.xml), so reading it whole is bounded."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    found = _ERROR_LINE.search(text)
    if found is None:
        return ""
    return "\n".join(text[found.start() :].splitlines()[:2])[:_FIRST_ERROR_CHARS]


def _write_private(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=_PRIVATE)
    path.chmod(_PRIVATE)
    path.write_bytes(data)
    return path


@dataclass
class _Node:
    """One JVM: broker and controller. ``node_id`` is 1-based, its index 0-based."""

    node_id: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def logs(self) -> tuple[Path, Path]:
        return self.home / "jvm.out", self.home / "server.log"

    def failure(self, what: str) -> ConfigurationError:
        """Our error for this node failing to start: its first error, then its log's end."""
        first = _first_error(self.logs[1])
        cause = f"; first error:\n{first}\n" if first else "; "
        return ConfigurationError(
            f"Kafka node {self.node_id} {what}{cause}its log ends:\n{_tail(*self.logs)}"
        )


class ApacheKafkaCluster(AsyncPart):
    """``async with ApacheKafkaCluster(workdir, users={...}) as cluster:`` a running cluster.

    ``users`` maps user names to passwords; every one gets a SCRAM credential, and
    ``super_users`` (the first is ``admin_user``, which the launcher itself connects as)
    may do anything. Everything lives under ``workdir``: the CA certificate
    (``ca_file``), a password file per user (``credentials_dir``), each node's
    configuration, data and log.
    Raises ``ConfigurationError`` for bad arguments, a machine that cannot run Kafka, or
    a node that does not come up in time (quoting the end of its log).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str],
        super_users: Sequence[str] = ("admin",),
        nodes: int = 3,
        heap_mb: int = DEFAULT_HEAP_MB,
        cache_dir: Path | None = None,
        start_timeout: float = _START_SECONDS,
    ) -> None:
        if not 1 <= nodes <= 9:  # ports and JVMs on one machine; 3 is the design
            raise ConfigurationError("an Apache Kafka test cluster has 1 to 9 nodes")
        if heap_mb not in HEAP_MB_RANGE:
            raise ConfigurationError(
                f"heap_mb is {HEAP_MB_RANGE.start} to {HEAP_MB_RANGE.stop - 1} MiB a node"
            )
        if not super_users or any(u not in users for u in super_users):
            raise ConfigurationError("super users must be among the users, and one at least")
        self._users = {apache_config.check_user_name(u): p for u, p in users.items()}
        self.super_users = tuple(super_users)
        self.admin_user = self.super_users[0]
        self._workdir = workdir.resolve()
        self._heap_mb = heap_mb
        self._cache_dir = cache_dir or default_cache_dir()
        self._start_timeout = start_timeout
        self._nodes = [_Node(i, self._workdir / f"node-{i}") for i in range(1, nodes + 1)]
        self._lib: Path | None = None
        self._layout: list[apache_config.NodePorts] = []
        self._node_password = ""
        self.ca_file = self._workdir / "tls" / "ca.pem"
        self.bootstrap = ""
        self.startup_seconds = 0.0

    # -- what callers use --------------------------------------------------------------
    @property
    def credentials_dir(self) -> Path:
        """The folder of password files, each named after its user (a credentials folder
        as ``broker.kafka.security`` reads one)."""
        return self._workdir / "users"

    def password_file(self, user: str) -> Path:
        """The file holding ``user``'s password (mode 0600), for ``MAPPA_KAFKA_PASSWORD_FILE``.
        Raises ``ConfigurationError`` for a name that is not a user of this cluster."""
        if user not in self._users:
            raise ConfigurationError(f"{user!r} is not a user of this cluster")
        return self.credentials_dir / user

    def client_settings(self, user: str, bootstrap: str | None = None) -> Settings:
        """Settings for a client of this cluster as ``user`` over SASL_SSL."""
        return Settings(
            kafka_bootstrap=bootstrap or self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=apache_config.SCRAM_MECHANISM,
            kafka_username=user,
            kafka_password_file=self.password_file(user),
            kafka_ca_file=self.ca_file,
        )

    def deployment_settings(self, base: Settings) -> Settings:
        """``base`` pointed at this cluster over SASL_SSL: the process as the admin user,
        each agency (and the ledger) as its own user from ``credentials_dir``."""
        return base.model_copy(
            update={
                "kafka_bootstrap": self.bootstrap,
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": apache_config.SCRAM_MECHANISM,
                "kafka_username": self.admin_user,
                "kafka_password_file": self.password_file(self.admin_user),
                "kafka_ca_file": self.ca_file,
                "kafka_credentials_dir": self.credentials_dir,
            }
        )

    @property
    def node_pids(self) -> list[int | None]:
        """Each node's JVM process id, ``None`` for a node not running."""
        return [n.proc.pid if n.proc and n.proc.poll() is None else None for n in self._nodes]

    async def kill(self, node_index: int) -> None:
        """SIGKILL node ``node_index`` (0-based), as a crash would: no controlled shutdown."""
        node = self._nodes[node_index]
        proc, node.proc = node.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()  # after SIGKILL: at once

    async def restart(self, node_index: int) -> None:
        """Start node ``node_index`` again on its storage and ports, and wait until it
        serves clients and knows every broker. Raises ``ConfigurationError`` if it does
        not within the start timeout."""
        node = self._nodes[node_index]
        if node.proc is not None and node.proc.poll() is None:
            return
        self._launch(node)
        try:
            await self._wait_ready([node], time.monotonic() + self._start_timeout)
        except BaseException:
            await self.kill(node_index)
            raise

    async def create_topics(self, names: Sequence[str], *, partitions: int = 1) -> None:
        """Create ``names`` as the admin user, replicated to every node (at most 3).
        Raises ``ConfigurationError`` if the cluster refuses (one exists, say)."""
        replicas = min(3, len(self._nodes))
        try:
            async with self._admin(self.bootstrap) as admin:
                await admin.create_topics([NewTopic(n, partitions, replicas) for n in names])
        except KafkaError as exc:
            raise ConfigurationError(f"creating topics {list(names)} failed: {exc}") from exc

    async def broker_ids(self) -> set[int]:
        """The node ids of the brokers the cluster lists to clients: a killed node
        drops out once its session times out, and comes back when restarted."""
        try:
            async with self._admin(self.bootstrap) as admin:
                brokers = (await admin.describe_cluster())["brokers"]
        except KafkaError as exc:
            raise ConfigurationError(f"describing the cluster failed: {exc}") from exc
        return {int(b["node_id"]) for b in brokers}

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Prepare, format and start every node, and wait until the cluster is ready.
        Idempotent. On any failure or cancellation, stops what it started."""
        if any(n.proc is not None for n in self._nodes):
            return
        began = time.monotonic()
        try:
            # Synchronous: Maven runs once per machine, and preexec_fn wants this thread.
            self._lib = kafka_classpath(self._cache_dir)
            self._prepare()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    await self._start_once()
                except ConfigurationError as exc:
                    await self.stop()
                    if attempt == _PORT_ATTEMPTS or not _PORT_TAKEN.search(str(exc)):
                        raise
                    continue
                break
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    async def stop(self) -> None:
        """Idempotent. SIGTERM every node together (controlled shutdown), SIGKILL those
        left after the grace period; also on cancellation."""
        procs = [n.proc for n in self._nodes if n.proc is not None]
        for node in self._nodes:
            node.proc = None
        await stop_processes(procs, _STOP_GRACE_SECONDS)

    def __del__(self) -> None:
        for node in getattr(self, "_nodes", ()):  # pragma: no cover - a last resort
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()

    # -- steps -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """The TLS material, the password files and the logging configuration."""
        ca = CertificateAuthority(name="mappa kafka test CA")
        _write_private(self.ca_file, ca.certificate_pem)
        for node in self._nodes:
            pem = ca.issue_node(apache_config.NODE_USER).keystore_pem
            _write_private(self._workdir / "tls" / f"node-{node.node_id}.pem", pem)
        for user, password in self._users.items():
            _write_private(self.password_file(user), password.encode())
        self._node_password = secrets.token_urlsafe(24)
        log_config = importlib.resources.files("broker") / "data" / "kafka" / "log4j2.xml"
        (self._workdir / "log4j2.xml").write_bytes(log_config.read_bytes())

    async def _start_once(self) -> None:
        ports = _free_ports(3 * len(self._nodes))
        layout = [apache_config.NodePorts(*ports[i : i + 3]) for i in range(0, len(ports), 3)]
        cluster_id = _cluster_id()
        everyone = {**self._users, apache_config.NODE_USER: self._node_password}
        credentials = [
            arg
            for user, password in everyone.items()
            for arg in ("--add-scram", apache_config.scram_argument(user, password))
        ]
        for node in self._nodes:
            shutil.rmtree(node.home, ignore_errors=True)  # a fresh storage every attempt
            node.home.mkdir(parents=True)
            text = apache_config.server_properties(
                node_id=node.node_id,
                ports=layout,
                node_dir=node.home,
                keystore=self._workdir / "tls" / f"node-{node.node_id}.pem",
                truststore=self.ca_file,
                node_password=self._node_password,
                super_users=self.super_users,
            )
            _write_private(node.properties, text.encode())
        await asyncio.gather(*(self._format(n, cluster_id, credentials) for n in self._nodes))
        self.bootstrap = ",".join(f"127.0.0.1:{p.client}" for p in layout)
        self._layout = layout
        for node in self._nodes:
            self._launch(node)
        await self._wait_ready(self._nodes, time.monotonic() + self._start_timeout)

    def _java(self, heap_mb: int, *system_properties: str) -> list[str]:
        """A ``java`` command line up to the main class: Kafka's class path, our JVM
        options, and logging to the file that ``-Dkafka.logs.dir`` names."""
        return [
            *("java", f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", *_JVM_OPTIONS),
            f"-Dlog4j2.configurationFile={self._workdir / 'log4j2.xml'}",
            *system_properties,
            *("-cp", f"{self._lib}/*"),
        ]

    async def _format(self, node: _Node, cluster_id: str, credentials: Sequence[str]) -> None:
        """Format ``node``'s storage. The arguments go in a private file that the tool reads
        (``@file``, one per line), so no credential is ever on a command line."""
        args = ("format", "-t", cluster_id, "-c", str(node.properties), *credentials)
        arg_file = _write_private(node.home / "format.args", "\n".join(args).encode())
        log_file = _write_private(node.home / "format.log", b"")  # it echoes the SCRAM keys
        with log_file.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *self._java(_TOOL_HEAP_MB, f"-Dkafka.logs.dir={node.home}"),
                *("kafka.tools.StorageTool", f"@{arg_file}"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # forked from the loop's thread, like the nodes
            )
            try:
                status = await asyncio.wait_for(proc.wait(), _FORMAT_SECONDS)
            finally:
                arg_file.unlink()
                if proc.returncode is None:  # timed out or cancelled
                    proc.kill()
                    await proc.wait()
        if status != 0:
            tail = _tail(node.home / "format.log")
            raise ConfigurationError(f"formatting Kafka node {node.node_id} failed: {tail}")

    def _launch(self, node: _Node) -> None:
        out = node.logs[0].open("ab")
        try:
            node.proc = subprocess.Popen(  # noqa: S603 - our fixed arguments
                [
                    *self._java(self._heap_mb, f"-Dkafka.logs.dir={node.home}"),
                    *("kafka.Kafka", str(node.properties)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # PR_SET_PDEATHSIG fires when the forking *thread* ends: this is the event
                # loop's, which outlives the cluster.
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads of ours fork meanwhile
                # Ctrl-C reaches us alone; we stop the nodes in order (``stop_processes``).
                process_group=0,
            )
        finally:
            out.close()

    async def _wait_ready(self, nodes: Sequence[_Node], deadline: float) -> None:
        """Until each of ``nodes`` answers the admin on its client port and lists every
        broker. Raises ``ConfigurationError`` with the node's log if one exits or time
        runs out."""
        pending = list(nodes)
        while True:
            for node in nodes:  # a node that died (a port taken) will not come
                if node.proc is None or node.proc.poll() is not None:
                    raise node.failure("exited while starting")
            pending = [n for n in pending if not await self._serves(n)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise pending[0].failure(f"was not ready within {self._start_timeout:.0f}s")
            await asyncio.sleep(_PROBE_PAUSE_SECONDS)

    async def _serves(self, node: _Node) -> bool:
        """Whether ``node`` answers the admin user on its client port and lists every
        node of the cluster as a broker."""
        port = self._layout[node.node_id - 1].client
        own = f"127.0.0.1:{port}"
        try:
            async with asyncio.timeout(_PROBE_SECONDS):
                # The listener opens only once the broker is ready: until then a plain TCP
                # connect fails at once, and the admin client need not try (and log) it.
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                async with self._admin(own) as admin:
                    await admin.list_topics()
                    brokers = (await admin.describe_cluster())["brokers"]
        except (KafkaError, OSError):  # OSError covers TimeoutError
            return False
        return {b["node_id"] for b in brokers} >= {n.node_id for n in self._nodes}

    @contextlib.asynccontextmanager
    async def _admin(self, bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
        options = client_options(self.client_settings(self.admin_user, bootstrap), bootstrap)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=_PROBE_REQUEST_MS, **options
        )
        try:
            await admin.start()
            yield admin
        finally:
            await admin.close()


def _cluster_id() -> str:
    """A random cluster id as Kafka writes one (a UUID in unpadded URL-safe base64), and
    as Kafka's own ``Uuid.randomUuid`` never begins with "-": the storage tool would take
    it for an option."""
    while True:
        candidate = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
