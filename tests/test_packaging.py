"""The wheel as a user gets it: built from the source without warnings, installed into a
clean environment, and run from outside the source tree (`mappa schemas check`, `mappa
demo`, `mappa serve`), so that a file the CLI reads but the wheel lacks fails here.

The clean environment is a fresh venv with the wheel installed without its dependencies,
which it finds through a path entry to this test run's own venv: a path entry, not a
site directory, so that venv's editable install of this project (a meta path finder
loaded by a ``.pth`` file) stays out, and ``broker`` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.kafka.process import die_with_parent
from tests.served import LISTENING, provisioned

ROOT = Path(__file__).resolve().parent.parent
# What a clean clone holds besides the source: none of it belongs in a build.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", "node_modules", ".*_cache", "tests"
)
# setuptools and pip say "warning:"/"Warning:", or a "!!" banner around a deprecation.
WARNING = re.compile(r"warn|!!|deprecat", re.IGNORECASE)


def _quiet_env() -> dict[str, str]:
    """The environment without what makes setuptools warn about it rather than about us
    (``PYTHONDONTWRITEBYTECODE`` turns byte-compiling off, which it reports)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built from a copy of the source tree, and the build's output."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    result = subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(base / "dist"), "."],
        cwd=source,
        env=_quiet_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 and "Could not find a version" in result.stderr:
        pytest.skip("pip cannot reach an index for the build's setuptools (no network)")
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (base / "dist").glob("mappa_broker-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; returns its ``bin`` directory."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("clean") / "venv"
    venv_args = [sys.executable, "-m", "venv", "--without-pip", str(venv)]
    subprocess.run(venv_args, check=True)  # noqa: S603 - fixed arguments
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True, timeout=300, env=_quiet_env(),
    )  # fmt: skip
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - the installed console script
        [str(bin_dir / "mappa"), *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mappa {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


def test_the_build_says_no_warning(built: tuple[Path, str]) -> None:
    _, output = built
    warned = [line.strip() for line in output.splitlines() if WARNING.search(line)]
    assert warned == []


def test_the_wheel_holds_every_file_the_cli_reads(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        p.relative_to(ROOT).as_posix()
        for top in ("broker", "schemas", "agency_adapters")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    assert needed, "no source files found"
    assert sorted(set(needed) - names) == []


def test_installed_cli_runs_outside_the_source_tree(installed: Path, tmp_path: Path) -> None:
    where = _run(installed, "--version", cwd=tmp_path)
    assert where.startswith("mappa ")
    located = subprocess.run(  # noqa: S603 - the clean venv's interpreter
        [str(installed / "python"), "-c", "import broker, schemas; print(broker.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert Path(located).resolve().is_relative_to(installed.parent.resolve())
    assert "up to date" in _run(installed, "schemas", "check", cwd=tmp_path)
    summary = json.loads(_run(installed, "demo", "--json", cwd=tmp_path))
    # The whole scenario ran: every audit record reached the ledger, none refused.
    assert summary["audit"]["records"] == summary["audit"]["expected"] > 0
    assert summary["audit"]["rejected"] == 0


@pytest.fixture
def serving(installed: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The installed ``mappa serve`` on a provisioned data directory, until the test ends."""
    data = provisioned(tmp_path)
    env = {
        **os.environ,
        "MAPPA_KEY_PASSPHRASE": data.passphrase,
        "MAPPA_TOPIC_NAMESPACE": data.namespace,
    }
    env.pop("MAPPA_KAFKA_BOOTSTRAP", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as into:
        proc = subprocess.Popen(  # noqa: S603 - the installed console script
            [str(installed / "mappa"), "serve", "--data-dir", str(data.path), "--port", "0"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=into,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a prctl call, nothing that locks
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (found := LISTENING.search(log.read_bytes())):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield proc, f"http://127.0.0.1:{int(found.group(1))}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_installed_serve_answers_and_stops(
    serving: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = serving
    deadline = time.monotonic() + 60
    while (status := httpx.get(f"{url}/readyz", timeout=10).status_code) != 200:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
