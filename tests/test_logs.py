"""Structured logs (``broker.observe.logs``, docs/operations.md "Logs"): what each line
holds, what it never holds, and a request id from the HTTP request through publish,
relay and receipt; then a whole `mappa demo` and a `mappa serve` session at DEBUG, every
line of which is searched for PNC ids and tokens."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from broker.api.models import ARMS_EXAMPLE
from broker.api.request_ids import RequestIds
from broker.cli.main import main
from broker.identity.totp import new_secret
from broker.observe.logs import (
    MAX_REQUEST_ID_CHARS,
    PNC_ID_SHAPE,
    REDACTED,
    REQUEST_ID_HEADER,
    TOKEN_SHAPE,
    UVICORN_LOGGERS,
    Correlated,
    Correlation,
    accepted_request_id,
    configure_logging,
    current_request_id,
    json_by_default,
    log_handler,
    redact,
    request_context,
)
from tests.served import SERVED, serve, stop
from tests.support import PNC, POLICE, PROBATION

TOKEN = "mappa_0123456789abcdef_" + "A" * 20 + "-_" + "b" * 21
log = logging.getLogger("tests.logs")


@contextmanager
def product_logging(level: str = "debug", *, json: bool = True) -> Iterator[io.StringIO]:
    """``configure_logging`` writing to a buffer, and the logging set-up as it was after."""
    root = logging.getLogger()
    saved_level = root.level
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
        for n in UVICORN_LOGGERS
    }
    buffer = io.StringIO()
    handler = configure_logging(level, json=json, stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


def events(text: str) -> list[dict[str, Any]]:
    """Each line of ``text`` as the JSON object it must be."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def leaks(text: str) -> list[str]:
    """What in ``text`` looks like a PNC id or a token: the kind, never the value."""
    return [
        kind
        for kind, shape in (("pnc", PNC_ID_SHAPE), ("token", TOKEN_SHAPE))
        if shape.search(text)
    ]


# -- redaction, one pattern at a time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("logged", "kept"),
    [
        (f"subject {PNC} held", "subject REDACTED held"),
        ("as 2011%2F0456789K in a URL", "as REDACTED in a URL"),
        ("escaped 2011\\/0456789K in JSON", "escaped REDACTED in JSON"),
        ("lower case 11/1k", "lower case REDACTED"),
        (f"token {TOKEN}.", "token REDACTED."),
        ("cut short mappa_0123456789abcdef_AAA", "cut short REDACTED"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: REDACTED"),
        ("sent bearer abc.def-ghi", "sent bearer REDACTED"),
        ("header basic dXNlcjpwYXNz=", "header basic REDACTED"),
        ('{"password": "hunter2", "n": 1}', '{"password": "REDACTED", "n": 1}'),
        ("client_secret=s3cr3t&scope=openid", "client_secret=REDACTED&scope=openid"),
        ("passphrase: correct-horse", "passphrase: REDACTED"),
        ("postgresql://ledger:hunter2@db:5432/x", "postgresql://ledger:REDACTED@db:5432/x"),
        (
            "GET /v1/inbox?subject=x&cursor=7 HTTP/1.1",
            "GET /v1/inbox?subject=REDACTED&cursor=REDACTED HTTP/1.1",
        ),
        ("https://idp.example/cb?code=abc#f", "https://idp.example/cb?code=REDACTED"),
        (f"/v1/x?{TOKEN}", "/v1/x?REDACTED=REDACTED"),
        ("/v1/x?", "/v1/x?REDACTED"),
    ],
)
def test_redaction_removes_each_kind_of_secret(logged: str, kept: str) -> None:
    assert redact(logged) == kept


def test_a_totp_secret_and_its_provisioning_uri_are_redacted() -> None:
    secret = new_secret()
    assert redact(f"enrolled {secret}") == f"enrolled {REDACTED}"
    uri = f"otpauth://totp/MAPPA:alice?secret={secret}&issuer=MAPPA"
    assert secret not in redact(uri)


@pytest.mark.parametrize(
    "innocent",
    [
        "message 3f2b8c1e-9d4a-4c1e-8f3a-0b1c2d3e4f5a relayed to mappa.staffordshire.police",
        "at 2026-12-06T07:56:50.123Z, 12/2026 and 3/4 done",
        "is it there? yes",
        "OFFICIAL_SENSITIVE agency police.staffordshire",
    ],
)
def test_redaction_leaves_what_is_not_secret(innocent: str) -> None:
    assert redact(innocent) == innocent


def lookup() -> None:
    raise ValueError(f"no subject {PNC}")


def test_the_filter_redacts_arguments_fields_and_exceptions_for_its_handler_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buffer = io.StringIO()
    handler = log_handler(json=True, stream=buffer)
    log.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            try:
                lookup()
            except ValueError:
                log.exception("looked up %s with %s", PNC, TOKEN, extra={"path": f"/s?pnc={PNC}"})
    finally:
        log.removeHandler(handler)
    [event] = events(buffer.getvalue())
    assert event["message"] == "looked up REDACTED with REDACTED"
    assert event["path"] == "/s?pnc=REDACTED"
    assert event["exc_type"] == "ValueError"
    assert event["exc_message"] == "no subject REDACTED"
    assert "Traceback" in event["traceback"]
    assert leaks(buffer.getvalue()) == []
    # A copy was rewritten: the test's own capture saw the record as logged.
    [record] = caplog.records
    assert record.args == (PNC, TOKEN)
    assert record.exc_info is not None


# -- the line ---------------------------------------------------------------------------------


def test_a_json_line_has_time_level_component_message_and_the_known_fields() -> None:
    with product_logging("info") as buffer, request_context("req-7"):
        log.info("publish.accepted", extra={"agency": POLICE, "message_id": "m-1"})
        log.debug("not at info")
        log.warning("two\nlines\u2028")
    first, second = events(buffer.getvalue())
    assert datetime.fromisoformat(first.pop("time")).utcoffset() is not None
    assert first == {
        "level": "info",
        "component": "tests.logs",
        "message": "publish.accepted",
        "agency": POLICE,
        "message_id": "m-1",
        "request_id": "req-7",
    }
    assert second["message"] == "two\nlines\u2028"  # one event, one line
    assert buffer.getvalue().count("\n") == 2


def test_a_text_line_is_for_a_person() -> None:
    with product_logging("info", json=False) as buffer:
        log.info("relay.sent", extra={"agency": POLICE, "message_id": "m-1"})
    [line] = buffer.getvalue().splitlines()
    assert line.endswith(" INFO tests.logs: relay.sent agency=police.staffordshire message_id=m-1")


def test_uvicorn_loggers_go_through_the_products_handler() -> None:
    # As uvicorn leaves them: a handler of its own, and a level (here an earlier server's).
    logging.getLogger("uvicorn.access").addHandler(logging.NullHandler())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    with product_logging("info") as buffer:
        assert logging.getLogger("uvicorn.access").handlers == []
        logging.getLogger("uvicorn.access").info('1.2.3.4 - "GET /x?subject=%s HTTP/1.1" 200', PNC)
    [event] = events(buffer.getvalue())
    assert event["component"] == "uvicorn.access"
    assert "?subject=REDACTED" in event["message"]


def test_json_is_the_default_where_nobody_reads_at_a_terminal() -> None:
    assert json_by_default(io.StringIO())

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not json_by_default(Terminal())


# -- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "x" * (MAX_REQUEST_ID_CHARS + 1),
        "has space",
        "a/b",
        PNC,
        "mappa_0123456789abcdef_AAAAAAAA",
        "line\nbreak",
    ],
)
def test_a_malformed_request_id_is_replaced_by_a_fresh_one(given: str | None) -> None:
    fresh = accepted_request_id(given)
    assert fresh != given
    assert len(fresh) == 32
    assert accepted_request_id(fresh) == fresh


def test_a_well_formed_request_id_is_kept() -> None:
    for given in (
        "3f2b8c1e-9d4a-4c1e-8f3a-0b1c2d3e4f5a",
        "proxy-1:abc.def_7",
        "x" * MAX_REQUEST_ID_CHARS,
    ):
        assert accepted_request_id(given) == given


async def test_the_middleware_runs_each_request_with_its_id_and_answers_it() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        log.warning("in the route")
        return PlainTextResponse(current_request_id() or "")

    app = RequestIds(Starlette(routes=[Route("/", echo)]))
    transport = httpx.ASGITransport(app=app)
    with product_logging("info") as buffer:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            kept = await client.get("/", headers={REQUEST_ID_HEADER: "caller-1"})
            replaced = await client.get("/", headers={REQUEST_ID_HEADER: PNC})
            fresh = await client.get("/")
    assert kept.text == kept.headers[REQUEST_ID_HEADER] == "caller-1"
    assert replaced.text == replaced.headers[REQUEST_ID_HEADER] != PNC
    assert fresh.text == fresh.headers[REQUEST_ID_HEADER]
    assert fresh.text != replaced.text
    logged = [e["request_id"] for e in events(buffer.getvalue()) if e["message"] == "in the route"]
    assert logged == ["caller-1", replaced.text, fresh.text]
    assert current_request_id() is None


def test_the_correlation_is_bounded() -> None:
    correlation = Correlation(limit=2)
    for n in range(3):
        correlation.published(Correlated(POLICE, f"m-{n}", f"r-{n}"), [f"envelope {n}".encode()])
    assert correlation.of_message("m-0") is None
    assert correlation.of_record(b"envelope 0") is None
    assert correlation.of_message("m-2") == Correlated(POLICE, "m-2", "r-2")
    assert correlation.of_record(b"envelope 1") == Correlated(POLICE, "m-1", "r-1")
    assert correlation.of_record(b"never sent") is None


# -- whole runs -------------------------------------------------------------------------------


def test_a_whole_demo_logs_no_pnc_id_and_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At DEBUG, but aiokafka's at INFO: its DEBUG lines are the client's fetch and
    connection bookkeeping (topics, partitions, offsets, never a record), 20,000 of them,
    which would double the demo's time; the serve session below has them all."""
    monkeypatch.delenv("MAPPA_KAFKA_BOOTSTRAP", raising=False)
    aiokafka = logging.getLogger("aiokafka")
    with product_logging("debug") as buffer:
        aiokafka.setLevel(logging.INFO)
        try:
            assert main(["demo", "--json", "--data-dir", str(tmp_path / "demo")]) == 0
        finally:
            aiokafka.setLevel(logging.NOTSET)
    lines = events(buffer.getvalue())
    assert any(e["message"] == "publish.accepted" for e in lines)  # it did log, at DEBUG too
    assert any(e["level"] == "debug" for e in lines)
    assert leaks(buffer.getvalue()) == []
    # The demo's subject is what the demo prints (its summary), never what it logs.
    assert PNC not in buffer.getvalue()
    capsys.readouterr()


async def test_a_serve_session_logs_no_pnc_id_and_no_token(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    arguments = ("--bootstrap", kafka_bootstrap, "--log-level", "debug", "--log-format", "json")
    async with (
        serve(tmp_path, *arguments, *SERVED) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        police, probation = served.auth(POLICE), served.auth(PROBATION)
        submitted = await client.post(
            f"/v1/agencies/{POLICE}/records",
            json={"record": ARMS_EXAMPLE, "purpose": "risk management"},
            headers=police | {REQUEST_ID_HEADER: "serve-req-1"},
        )
        assert submitted.status_code == 201, submitted.text
        assert submitted.headers[REQUEST_ID_HEADER] == "serve-req-1"
        mid = submitted.json()["message_id"]
        # A PNC id and a token in a query, in a path, in a request id, and as a bad token.
        token = served.tokens[PROBATION]
        await client.get(
            f"/v1/agencies/{PROBATION}/inbox?subject={PNC}&access_token={token}", headers=probation
        )
        await client.get(f"/v1/agencies/{PROBATION}/inbox/{PNC}", headers=probation)
        await client.get(
            f"/v1/agencies/{PROBATION}/inbox", headers=probation | {REQUEST_ID_HEADER: PNC}
        )
        refused = await client.get(
            f"/v1/agencies/{POLICE}/inbox", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert refused.status_code == 401
        deadline = time.monotonic() + 20
        while (
            f'"receipt.received", "agency": "{POLICE}", "message_id": "{mid}"'
            not in served.log.decode()
        ):
            assert time.monotonic() < deadline, served.log.decode()[-3000:]
            await asyncio.sleep(0.1)
        assert await stop(served, signal.SIGTERM) == 0
    text = served.log.decode()
    lines = events(text)  # every line is one JSON event
    assert leaks(text) == []
    for secret in served.tokens.values():
        assert secret not in text
    told = {(e["message"], e.get("request_id")) for e in lines if e.get("message_id") == mid}
    assert {
        ("publish.accepted", "serve-req-1"),
        ("relay.sent", "serve-req-1"),
        ("receipt.received", "serve-req-1"),
    } <= told
    # The Kafka broker's address and the HTTP API's, each said as what it is.
    assert any(f"Kafka broker: Kafka at {kafka_bootstrap};" in e["message"] for e in lines)
    assert any(e["message"].startswith("Uvicorn running on http://127.0.0.1:") for e in lines)
    access = [e for e in lines if e["component"] == "uvicorn.access"]
    assert any("?subject=REDACTED&access_token=REDACTED" in e["message"] for e in access)
    assert all(e.get("request_id") for e in access)  # the access log knows the request too
    print(f"{len(lines)} log lines searched", file=sys.stderr)
