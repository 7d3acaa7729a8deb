"""Java, Maven and Apache Kafka's jars for the test cluster of ``broker/kafka/apache.py``.

Kafka is not a Python package: ``broker/data/kafka/pom.xml`` pins it, and Maven copies
its class path from Maven Central into a cache folder on first use. Later uses find the
folder and need neither Maven nor the network.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from broker.errors import ConfigurationError
from broker.kafka.process import die_with_parent

KAFKA_VERSION = "4.4.0"  # as pinned in broker/data/kafka/pom.xml
MIN_JAVA = 17  # Kafka 4 brokers need Java 17 or newer
# `java -version` and `mvn -v` start a JVM each; a loaded 2-core machine takes seconds.
_PROBE_SECONDS = 30.0
# The first resolve downloads about 45 jars (some 40 MB); a slow link takes minutes.
_RESOLVE_SECONDS = 900.0
# What of a tool's output goes into a one-line reason: Maven's first error names the
# artifact and the repository; the rest of it is a stack of causes.
_REASON_CHARS = 300


def default_cache_dir() -> Path:
    """``$MAPPA_CACHE_DIR``; else ``.cache`` at the root of the source checkout this
    package sits in (next to ``pyproject.toml``); else ``~/.cache/mappa-broker``."""
    named = os.environ.get("MAPPA_CACHE_DIR")
    if named:
        return Path(named)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "broker").is_dir():
        return root / ".cache"
    return Path.home() / ".cache" / "mappa-broker"


def _run(args: Sequence[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run a tool to completion: (exit status, its output). Status -1 if it could not
    start or did not finish in ``timeout`` seconds (then it is killed)."""
    try:
        done = subprocess.run(  # noqa: S603 - java or mvn from PATH, our fixed arguments
            args,
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # mvn's JVM, too, stops if we are killed
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def _lib_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"


def kafka_unavailable(cache_dir: Path | None = None) -> str | None:
    """``None`` if this machine can run the cluster: Java ``MIN_JAVA`` or newer, and Maven
    unless the jars are already in ``cache_dir``. Otherwise a one-line reason."""
    reason = _java_unavailable()
    if reason is None and not _lib_dir(cache_dir or default_cache_dir()).is_dir():
        reason = _maven_unavailable()
    return reason


def _java_unavailable() -> str | None:
    if shutil.which("java") is None:
        return f"no java on PATH (Kafka 4 needs Java {MIN_JAVA} or newer)"
    status, output = _run(["java", "-version"], _PROBE_SECONDS)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if status != 0 or found is None:
        return f"java -version failed: {output.strip()[:_REASON_CHARS]!r}"
    # Java 8 and older call themselves "1.8"; 9 onwards lead with the major version.
    major = int(found[2]) if found[1] == "1" and found[2] else int(found[1])
    if major < MIN_JAVA:
        return f"java {major} on PATH; Kafka 4 needs Java {MIN_JAVA} or newer"
    return None


def _maven_unavailable() -> str | None:
    if shutil.which("mvn") is None:
        return "no mvn on PATH to fetch Kafka from Maven Central"
    status, output = _run(["mvn", "-v", "-B"], _PROBE_SECONDS)
    return None if status == 0 else f"mvn -v failed: {output.strip()[:_REASON_CHARS]!r}"


def kafka_classpath(cache_dir: Path) -> Path:
    """The folder of Kafka's jars, ``<cache_dir>/kafka-<version>/lib``, resolved with Maven
    on first use. Maven writes into a temporary folder renamed into place only when
    complete, so an interrupted resolve never looks finished; when two resolve at once,
    the first rename wins and the other's copy is dropped.

    Raises ``ConfigurationError`` (one line) if Maven is absent or the resolve fails."""
    lib = _lib_dir(cache_dir)
    if lib.is_dir():
        return lib
    reason = _maven_unavailable()
    if reason is not None:
        raise ConfigurationError(reason)
    lib.parent.mkdir(parents=True, exist_ok=True)
    partial = lib.parent / f"lib.partial-{secrets.token_hex(4)}"
    try:
        with importlib.resources.as_file(
            importlib.resources.files("broker") / "data" / "kafka" / "pom.xml"
        ) as pom:
            status, output = _run(
                [
                    *("mvn", "-q", "-B", "-f", str(pom)),
                    *("dependency:copy-dependencies", f"-DoutputDirectory={partial}"),
                ],
                _RESOLVE_SECONDS,
                cwd=lib.parent,
            )
        if status != 0 or not (partial / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise ConfigurationError(
                f"Maven could not resolve Kafka {KAFKA_VERSION}: {_maven_reason(output)}"
            )
        with contextlib.suppress(OSError):  # someone else finished first: use theirs
            partial.rename(lib)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return lib


def _maven_reason(output: str) -> str:
    """Maven's first ``[ERROR]`` line (the cause; later ones are help), else its last."""
    lines = output.strip().splitlines() or ["no output"]
    first = next((line for line in lines if line.startswith("[ERROR]")), lines[-1])
    return first[:_REASON_CHARS]
