"""What one request may cost the service, and what the access log may keep of it.

* ``BodyLimit``: a request body is at most ``MAX_BODY_BYTES``, counted while it is read:
  a ``Content-Length`` over the limit is answered 413 before a byte of the body is read,
  and a body sent without one is cut off (413) as soon as it passes the limit. The body
  must also keep coming: a pause of ``BODY_IDLE_SECONDS`` between two parts of it, or
  more than ``BODY_SECONDS`` in all, is answered 408. Nothing but the body is timed: a
  response may stream, and a handler may wait on the broker, as long as it takes.
* ``FailureLimiter``: failed authentication is rationed per client address and per
  credential id, a token bucket of ``FAILURES_ALLOWED`` failures refilled one every
  ``FAILURE_REFILL_SECONDS``; with the bucket empty the request is answered 429 with
  ``Retry-After`` before its token is looked at. A caller that authenticates is never
  charged and never delayed.
* ``QueryRedaction``: the access log keeps a query's parameter names, never their values:
  a value may be a credential (``?access_token=``, refused but still sent) or personal
  data (a governance query's ``subject``, a PNC id).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.errors import error_response
from broker.errors import MappaError

MAX_BODY_BYTES = 1024 * 1024
# A client that has started a body and then sends nothing for this long has gone, or is
# holding a worker on purpose.
BODY_IDLE_SECONDS = 5.0
# The whole of a body within this: 1 MiB at 35 KB/s.
BODY_SECONDS = 30.0
FAILURES_ALLOWED = 10
FAILURE_REFILL_SECONDS = 6.0
# Buckets kept at most; full ones are dropped first, and they hold nothing to forget.
MAX_BUCKETS = 10_000
TOO_LARGE = "request.too-large"
TIMEOUT = "request.timeout"


def _refusal(status: int, code: str, reason: str) -> HTTPException:
    # The app's error handler answers it in the one error body, keeping the code.
    return HTTPException(status_code=status, detail={"code": code, "reason": reason})


class BodyLimit:
    """ASGI middleware bounding each HTTP request body in size and in time (module
    docstring). A declared length over the limit is answered here; the other refusals
    are ``HTTPException``s raised where the app reads the body (FastAPI lets them
    through as they are), which the app's error handlers answer in the one error body:
    413 ``request.too-large``, 408 ``request.timeout``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        idle_seconds: float = BODY_IDLE_SECONDS,
        total_seconds: float = BODY_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _refusal(413, TOO_LARGE, f"a request body is at most {self.max_bytes} bytes")
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, too_large)
            return
        received = 0
        finished = False
        deadline = time.monotonic() + self.total_seconds

        async def bounded() -> Message:
            nonlocal received, finished
            if finished:
                # The body is in; what follows is the wait for a disconnect, untimed.
                return await receive()
            wait = min(self.idle_seconds, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0))
            except TimeoutError:
                raise _refusal(408, TIMEOUT, "the request body did not arrive in time") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise too_large
            return message

        await self.app(scope, bounded, send)


async def _answer(send: Send, exc: HTTPException) -> None:
    """Our error body for a refusal made before the app runs; the connection is closed
    after it (``errors.HEADERS``), since the body was not read."""
    detail: dict[str, object] = exc.detail if isinstance(exc.detail, dict) else {}
    response = error_response(exc.status_code, str(detail.get("code")), str(detail.get("reason")))
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class TooManyFailures(MappaError):
    """Too many failed authentications from this address or for this credential: wait
    ``retry_after`` seconds (429)."""

    code = "auth.rate-limited"
    retriable = True

    def __init__(self, reason: str, *, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailureLimiter:
    """Token buckets of failed authentications by key (a client address, a credential
    id): ``FAILURES_ALLOWED`` failures, refilled one every ``FAILURE_REFILL_SECONDS``.
    Thread-safe: FastAPI runs the (synchronous) authentication in worker threads."""

    def __init__(
        self,
        *,
        allowed: int = FAILURES_ALLOWED,
        refill_seconds: float = FAILURE_REFILL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = allowed
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.allowed)
        return min(self.allowed, bucket.tokens + (now - bucket.at) / self.refill_seconds)

    def check(self, *keys: str) -> None:
        """Raises ``TooManyFailures`` (``auth.rate-limited``) if any of ``keys`` has no
        failure left, with the seconds until it has one."""
        with self._lock:
            now = self._clock()
            levels = [self._level(key, now) for key in keys]
        for level in levels:
            if level < 1:
                wait = math.ceil((1 - level) * self.refill_seconds)
                raise TooManyFailures(
                    "too many failed authentications; retry later", retry_after=max(wait, 1)
                )

    def failed(self, *keys: str) -> None:
        """Charge one failure to each of ``keys``."""
        with self._lock:
            now = self._clock()
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            for key in keys:
                self._buckets[key] = _Bucket(max(self._level(key, now) - 1, 0), now)

    def __len__(self) -> int:
        """How many keys have a bucket: at most ``MAX_BUCKETS``."""
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        full = [k for k in self._buckets if self._level(k, now) >= self.allowed]
        for key in full or list(self._buckets)[: MAX_BUCKETS // 10]:
            del self._buckets[key]


class QueryRedaction(logging.Filter):
    """For uvicorn's access log (``uvicorn.access``): the request line's query keeps its
    parameter names, each value replaced by ``REDACTED``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


REDACTED = "REDACTED"
# A parameter name as the API's own are; anything else (a token sent as a bare name,
# ``?mappa_...``) is a value in disguise and is redacted too.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def redact_query(target: str) -> str:
    """``target`` (a path, with a query or without) with every query value replaced, and
    every name that is not one of the API's kind."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name if _NAME.fullmatch(name) else REDACTED for name, _ in pairs]
    if not names:
        return f"{path}?{REDACTED}"
    return f"{path}?" + "&".join(f"{name}={REDACTED}" for name in names)
