"""`mappa serve --demo` as a person starts it: it prints the console's address and a
sign-in for each role; each works; the housing officer finds police's risk assessment in
the inbox; Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops
everything cleanly, exit 0, the temporary data directory gone and no broker left."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.cli.demo.console import DEMO_USERS
from broker.identity.totp import code_at
from tests.console_world import csrf_of

pytestmark = pytest.mark.xdist_group("serve-demo")

BANNER = re.compile(rb"mappa console \(demo\) at (http://127\.0\.0\.1:\d+)/console/")
SIGN_IN = re.compile(r"^\s+([a-z-]+)\s+(\S+)\s+password (\S+)$", re.MULTILINE)
SECRET = re.compile(r"^\s+TOTP secret ([A-Z2-7]+)$", re.MULTILINE)
DATA = re.compile(r"^Data in (\S+) \(removed on exit\)", re.MULTILINE)


@dataclass
class Demo:
    proc: asyncio.subprocess.Process
    url: str
    out: bytearray
    err: bytearray


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(65536):
        into.extend(chunk)


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPA_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli.main", "serve", "--demo", "--port", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # Its own process group, so the test can send Ctrl-C's SIGINT to all of it.
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = bytearray(), bytearray()
    drains = [
        asyncio.create_task(_drain(proc.stdout, out)),
        asyncio.create_task(_drain(proc.stderr, err)),
    ]
    try:
        deadline = time.monotonic() + 120
        while not (found := BANNER.search(out)) or b"Ctrl-C" not in out:
            assert proc.returncode is None, err.decode()
            assert time.monotonic() < deadline, err.decode()
            await asyncio.sleep(0.1)
        yield Demo(proc, found.group(1).decode(), out, err)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        await asyncio.gather(*drains)


class LocalBrowser:
    """What a browser does with the console's ``Secure`` cookies on http://127.0.0.1
    (a secure context to Chromium; httpx's cookie jar would keep them back): keeps
    each one set, and sends them all."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url)
        self.cookies: dict[str, str] = {}

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.client.request(method, path, headers={"cookie": cookie}, **kw)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response

    async def sign_in(self, username: str, password: str, secret: str | None = None) -> None:
        form = await self.request("GET", "/console/sign-in")
        code = code_at(secret, datetime.now(UTC)) if secret else ""
        fields = {"csrf_token": csrf_of(form.text), "username": username}
        done = await self.request(
            "POST", "/console/sign-in", data=fields | {"password": password, "totp": code}
        )
        assert done.status_code == 303, done.text


async def test_the_demo_prints_sign_ins_that_work_and_stops_on_ctrl_c(demo: Demo) -> None:
    text = demo.out.decode()
    sign_ins = {user: (role, password) for role, user, password in SIGN_IN.findall(text)}
    assert {u: r.value for u, _, r, _ in DEMO_USERS} == {u: r for u, (r, _) in sign_ins.items()}
    secrets = SECRET.findall(text)
    # The roles that need a second factor get a secret each (IG officer, administrator).
    assert len(secrets) == sum(r.requires_second_factor for _, _, r, _ in DEMO_USERS) == 2
    [data_dir] = DATA.findall(text)
    assert os.path.isdir(data_dir)  # noqa: ASYNC240 - a moment's stat

    housing = LocalBrowser(demo.url)
    await housing.sign_in("h.officer", sign_ins["h.officer"][1])
    inbox = await housing.request("GET", "/console/inbox")
    assert inbox.status_code == 200
    assert "Risk assessment" in inbox.text
    second_factor = [u for u, _, r, _ in DEMO_USERS if r.requires_second_factor]
    secret_of = dict(zip(second_factor, secrets, strict=True))
    ig = LocalBrowser(demo.url)
    await ig.sign_in("ig.officer", sign_ins["ig.officer"][1], secret_of["ig.officer"])
    assert (await ig.request("GET", "/console/home")).status_code == 200
    for browser in (housing, ig):
        await browser.client.aclose()

    os.killpg(demo.proc.pid, signal.SIGINT)
    assert await asyncio.wait_for(demo.proc.wait(), timeout=60) == 0, demo.err.decode()
    assert not os.path.exists(data_dir)  # noqa: ASYNC240 - a moment's stat
    log = demo.err.decode()
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log


async def test_the_demo_refuses_options_that_choose_a_deployment(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli.main", "serve", "--demo", "--agency", "police.x",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().strip().splitlines() == [
        "mappa: config.invalid: --demo chooses its own deployment: drop --agency"
    ]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli.main", "serve", "--demo", "--data-dir", str(busy),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "is not empty" in err.decode()
    assert (busy / "x").read_text() == "x"
