"""The Java library, ``sdk/java``, in the test run: found, built and tested once per run.

Where ``java`` (17 or newer) and ``mvn`` are on PATH, the first worker to ask runs
``mvn -B -q test`` in ``sdk/java`` (the JUnit suites, which run every vector of
``tests/vectors/``), then writes the test classpath with the dependency plugin, so that a
test can start a Java class of the library's tests with plain ``java -cp``
(``tests/test_java_sdk.py``). The build's outcome, Maven's output and the surefire reports
this build wrote are kept for the run (``tests.once``): a failed build fails each test that
needs it, with Maven's output, and is not tried again by every worker.

Without ``java`` or ``mvn`` the tests skip and say why. A Maven that cannot reach Maven
Central and lacks a dependency in ``~/.m2`` is a failure, not a skip: the machine was
meant to build the library.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.settings import Settings
from tests.once import once, run_directory

SDK = Path(__file__).resolve().parent.parent / "sdk" / "java"
MIN_JAVA = 17
# Pinned: build-classpath from the command line would otherwise ask Maven Central which
# version is newest on every run.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# A cold ~/.m2 downloads Bouncy Castle, JUnit and kafka-clients first (about 30 MB).
BUILD_SECONDS = 900
_PROBE_SECONDS = 30
# Maven's output shown in a failure: its last lines say what went wrong.
_SHOWN_OUTPUT_CHARS = 6000
# Small and quick to start: the interop consumer reads a few records and exits.
# Maven's console library writes colour resets even in batch mode.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def unavailable() -> str | None:
    """``None`` if this machine can build the library: Java ``MIN_JAVA`` or newer and
    Maven on PATH. Otherwise the reason, in one line (printed, for the skip)."""
    reason = _java_unavailable() or _maven_unavailable()
    if reason is not None:
        print(f"sdk/java not built: {reason}")
    return reason


def _java_unavailable() -> str | None:
    if shutil.which("java") is None:
        return f"no java on PATH (sdk/java needs Java {MIN_JAVA} or newer)"
    status, output = _run(["java", "-version"], timeout=_PROBE_SECONDS)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if status != 0 or found is None:
        return f"java -version failed: {output.strip()[:200]!r}"
    # Java 8 and older call themselves "1.8"; 9 onwards lead with the major version.
    major = int(found[2]) if found[1] == "1" and found[2] else int(found[1])
    if major < MIN_JAVA:
        return f"java {major} on PATH; sdk/java needs Java {MIN_JAVA} or newer"
    return None


def _maven_unavailable() -> str | None:
    if shutil.which("mvn") is None:
        return "no mvn on PATH to build sdk/java"
    status, output = _run(["mvn", "-v", "-B"], timeout=_PROBE_SECONDS)
    return None if status == 0 else f"mvn -v failed: {output.strip()[:200]!r}"


@dataclass(frozen=True)
class Suite:
    """One surefire report: a JUnit class and what became of its tests."""

    name: str
    tests: int
    failures: int
    errors: int
    skipped: int
    failing: tuple[str, ...]
    passed: tuple[str, ...]


@dataclass(frozen=True)
class Build:
    """What ``mvn test`` made of ``sdk/java`` in this run."""

    status: int
    output: str
    classpath: str
    suites: tuple[Suite, ...] = field(default=())

    @property
    def built(self) -> bool:
        return self.status == 0 and bool(self.classpath)

    def failing(self) -> list[str]:
        return [name for s in self.suites for name in s.failing]

    def explain(self) -> str:
        """Maven's exit status and the tail of its output, for a failure message."""
        tail = self.output[-_SHOWN_OUTPUT_CHARS:]
        return f"mvn exited {self.status}; the end of its output:\n{tail}"


def build_once(factory: pytest.TempPathFactory) -> Build:
    """The library built and tested once in this run, whichever worker asks first."""
    return once(factory, "java-sdk", lambda: build(run_directory(factory)))


def built(factory: pytest.TempPathFactory) -> Build:
    """The library built once in this run, for a test that needs it: skips where Java or
    Maven is absent, fails (with Maven's output) where it does not compile or resolve."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    build_ = build_once(factory)
    if not build_.built:
        pytest.fail(f"sdk/java did not build: {build_.explain()}")
    return build_


def build(scratch: Path) -> Build:
    """``mvn -B -q test`` in ``sdk/java``, then its test classpath. A failing JUnit test
    does not stop the build (``maven.test.failure.ignore``): it is read from the surefire
    reports, which name it; a build that does not compile or resolve has ``status != 0``.
    Only reports written by this build count, so stale ones from an earlier build cannot
    pass for this one."""
    started = time.time()
    status, output = _run(
        ["mvn", "-B", "-q", "-Dstyle.color=never", "test", "-Dmaven.test.failure.ignore=true"],
        cwd=SDK,
        timeout=BUILD_SECONDS,
    )
    if status != 0:
        return Build(status, output, "")
    listed = scratch / "java-sdk-classpath.txt"
    status, more = _run(
        [
            *("mvn", "-B", "-q", "-Dstyle.color=never", f"{DEPENDENCY_PLUGIN}:build-classpath"),
            *(f"-Dmdep.outputFile={listed}", "-Dmdep.includeScope=test"),
        ],
        cwd=SDK,
        timeout=BUILD_SECONDS,
    )
    output += more
    if status != 0 or not listed.exists():
        return Build(status or 1, output, "")
    target = SDK / "target"
    classpath = os.pathsep.join(
        [str(target / "test-classes"), str(target / "classes"), listed.read_text().strip()]
    )
    return Build(0, output, classpath, tuple(_reports(target / "surefire-reports", started)))


def _reports(directory: Path, since: float) -> list[Suite]:
    """The surefire reports in ``directory`` written at or after ``since``."""
    suites = []
    for path in sorted(directory.glob("TEST-*.xml")):
        if path.stat().st_mtime < since - 1:
            continue
        # Written by this build's own surefire, from this checkout's own tests.
        root = ET.parse(path).getroot()  # noqa: S314
        cases = list(root.iter("testcase"))
        failing = tuple(
            f"{case.get('classname')}.{case.get('name')}"
            for case in cases
            if case.find("failure") is not None or case.find("error") is not None
        )
        passed = tuple(
            case.get("name", "")
            for case in cases
            if not any(case.find(tag) is not None for tag in ("failure", "error", "skipped"))
        )
        suites.append(
            Suite(
                name=root.get("name", path.stem),
                tests=int(root.get("tests", "0")),
                failures=int(root.get("failures", "0")),
                errors=int(root.get("errors", "0")),
                skipped=int(root.get("skipped", "0")),
                failing=failing,
                passed=passed,
            )
        )
    return suites


def _run(command: Sequence[str], *, timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``command`` to its end (or ``timeout``), output and errors together."""
    try:
        done = subprocess.run(  # noqa: S603 - java and mvn from PATH, our fixed arguments
            list(command),
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    output = (done.stdout + done.stderr).decode(errors="replace")
    return done.returncode, _ANSI_ESCAPE.sub("", output)


@dataclass(frozen=True)
class KafkaClient:
    """How a Java Kafka client of the library's tests connects as one agency: its
    arguments (``--bootstrap`` and, on a secured cluster, ``--security-protocol``,
    ``--sasl-mechanism``, ``--sasl-username`` and ``--ca-file``) and the environment
    naming its password file. The password itself is on neither."""

    arguments: tuple[str, ...]
    env: dict[str, str]


def kafka_client(settings: Settings, user: str) -> KafkaClient:
    """The connection of a deployment with ``settings`` for SCRAM user ``user``: as the
    product connects an agency (``broker.kafka.security``: the cluster's CA file, the
    user's password file in ``kafka_credentials_dir``). Raises ``ValueError`` for what
    the Java client does not speak (``SSL`` alone) or a secured deployment without a
    credentials folder."""
    assert settings.kafka_bootstrap is not None  # every world names its broker
    plain = ("--bootstrap", settings.kafka_bootstrap)
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return KafkaClient(plain, {})
    if protocol != "SASL_SSL":
        raise ValueError(f"the Java client speaks PLAINTEXT or SASL_SSL, not {protocol}")
    if settings.kafka_credentials_dir is None:
        raise ValueError(f"SASL_SSL without kafka_credentials_dir: no password file for {user}")
    assert settings.kafka_ca_file is not None  # SASL_SSL settings name their CA
    secured = (
        *("--security-protocol", protocol),
        *("--sasl-mechanism", settings.kafka_sasl_mechanism),
        *("--sasl-username", user),
        *("--ca-file", str(settings.kafka_ca_file)),
    )
    password = settings.kafka_credentials_dir / user
    return KafkaClient((*plain, *secured), {"MAPPA_KAFKA_PASSWORD_FILE": str(password)})


@dataclass(frozen=True)
class JavaRun:
    """A finished Java process: its exit status, its standard output's lines, and its
    standard error (shown only when something fails)."""

    status: int
    lines: list[str]
    errors: str


def run_java(
    classpath: str,
    main_class: str,
    arguments: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
) -> JavaRun:
    """Run ``main_class`` to its end. Never leaves it running: past ``timeout`` or on any
    error here (an interrupted test included) its process group is killed and waited for.
    ``env`` is added to this process's environment."""
    java = shutil.which("java") or "java"
    process = subprocess.Popen(  # noqa: S603 - java from PATH, our own class
        [java, *JVM_OPTIONS, "-cp", classpath, main_class, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        out, err = process.communicate()
        return JavaRun(-1, out.decode(errors="replace").splitlines(), _timed_out(timeout, err))
    finally:
        if process.poll() is None:
            _kill(process)
            process.wait()
    return JavaRun(
        process.returncode, out.decode(errors="replace").splitlines(), err.decode(errors="replace")
    )


def _timed_out(timeout: float, err: bytes) -> str:
    return f"killed after {timeout:.0f}s\n{err.decode(errors='replace')}"


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
