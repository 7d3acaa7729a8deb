"""Structured logs: one JSON object per line (or one plain line), with what the line is
about and nothing it must not carry.

Each event has ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``component`` (the
logger's name) and ``message`` (a short event name such as ``publish.accepted``, or
the sentence of a library), then, where known, ``agency``, ``message_id`` and
``request_id``, any other field the call passed (``extra=``), and for an exception its
``exc_type``, its redacted ``exc_message`` and the redacted ``traceback`` (file, line,
function and source line of each frame: Python prints no frame's locals).

The request id (``RequestIds``, ASGI middleware) is the caller's well-formed
``X-Request-Id`` or a fresh one; it is in ``current_request_id()`` while the request
runs, is logged with every line written meanwhile, and comes back in the response's
``X-Request-Id``. What happens later in the background (the relay sending an envelope,
a receipt arriving) finds it through the gateway's ``Correlation``, a bounded map held
in memory: after a restart the message id is the correlation.

``Redaction`` is on every handler ``configure_logging`` installs, and rewrites each
record before any handler formats it: PNC ids, API tokens, bearer and other named
credentials (``Authorization``, ``password=``, ``secret=``, ``token=``...), TOTP
secrets, the password of a URL's user info, and every query value (a query keeps the
names of its parameters, ``?subject=REDACTED``) become ``REDACTED``, in the message,
its arguments, the fields passed with it, and the exception's text.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import sys
import threading
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Final
from urllib.parse import parse_qsl

REDACTED: Final = "REDACTED"

# -- what a log line must never carry ------------------------------------------------------

# A PNC id as ``schemas.messages.base.PncId`` takes it (``2011/0456789K``), anywhere in a
# line, its slash also URL-encoded or JSON-escaped, its letter in either case.
PNC_ID_SHAPE: Final = re.compile(
    r"(?<![0-9A-Za-z])[0-9]{2,4}(?:/|%2[Ff]|\\/)[0-9]{1,7}[A-Za-z](?![0-9A-Za-z])"
)
# An API token (``broker.api.credentials``: ``mappa_<16 hex>_<43 base64url>``), and
# anything that starts like one: a token cut short or mangled is still a secret.
TOKEN_SHAPE: Final = re.compile(r"mappa_[A-Za-z0-9_-]{16,}")
# A TOTP secret (``broker.identity.totp``): 32 base32 characters, 160 bits.
_TOTP_SECRET = re.compile(r"(?<![A-Za-z0-9_])[A-Z2-7]{32}(?![A-Za-z0-9_])")
# The credential after an HTTP authentication scheme.
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s,;\"']+")
# A value given under a name that says it is secret: ``Authorization: Bearer x``,
# ``password=x``, ``"secret": "x"``, ``token: x``.
_NAMED_SECRET = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|password|passwd|passphrase"
    r"|secret|totp_secret|client_secret|token|access_token|refresh_token|api_key|apikey)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic)\s+)?[^\s,;&\"'}]+"
)
# The password in a URL's user info: ``scheme://user:password@host``.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")
# A path or URL with its query: what follows ``?`` up to white space or a quote.
_QUERY = re.compile(r"((?:\b[a-z][a-z0-9+.-]*://|/)[^\s?#\"'<>]*)\?([^\s\"'<>]*)", re.I)
# A query parameter name of the API's own kind is kept; any other (a token sent as a bare
# name) is a value in disguise.
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

# In order: the URL and named forms first, so that what they keep (a scheme, a name) is
# not then taken for a value, the bare shapes after. Each with the text (lower case) one
# of which a line must hold for the pattern to match: most lines hold none, and a plain
# search is far cheaper than a pattern's (a DEBUG log has tens of thousands of lines).
_REWRITES: tuple[tuple[re.Pattern[str], str, tuple[str, ...] | None], ...] = (
    (_URL_PASSWORD, rf"\1:{REDACTED}@", ("@",)),
    (
        _NAMED_SECRET,
        rf"\1\2{REDACTED}",
        ("auth", "cookie", "pass", "secret", "token", "key"),
    ),
    (_SCHEME_CREDENTIAL, rf"\1\2{REDACTED}", ("bearer", "basic")),
    (TOKEN_SHAPE, REDACTED, ("mappa_",)),
    (_TOTP_SECRET, REDACTED, None),
    (PNC_ID_SHAPE, REDACTED, ("/", "%2")),
)


def _redacted_query(match: re.Match[str]) -> str:
    path, query = match.group(1), match.group(2)
    names = [
        name if _PARAMETER_NAME.fullmatch(name) else REDACTED
        for name, _ in parse_qsl(query, keep_blank_values=True)
    ]
    if not names:
        return f"{path}?{REDACTED}"
    return f"{path}?" + "&".join(f"{name}={REDACTED}" for name in names)


def redact(text: str) -> str:
    """``text`` with every query value, PNC id, token, credential and TOTP secret
    replaced by ``REDACTED`` (module docstring)."""
    if "?" in text:
        text = _QUERY.sub(_redacted_query, text)
    lowered = text.lower()
    for pattern, replacement, needles in _REWRITES:
        if needles is None or any(n in lowered for n in needles):
            text = pattern.sub(replacement, text)
            lowered = text.lower()
    return text


# The attributes every LogRecord has; any other was passed with ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is logged as its text, so that is what is redacted.
    return redact(str(value))


class Redaction(logging.Filter):
    """Rewrites each record as ``redact`` does (module docstring): the message with its
    arguments put in, every field passed with ``extra=``, the exception's traceback and
    the stack. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format: the format alone, without them.
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for name, value in _extra_fields(record).items():
            setattr(record, name, _redacted_value(value))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = redact("".join(traceback.format_exception(exc)).rstrip("\n"))
            record.exc_type = type(exc).__name__
            record.exc_message = redact(str(exc))
            # Formatters use ``exc_text`` rather than format the exception again.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# -- request ids ------------------------------------------------------------------------------

REQUEST_ID_HEADER: Final = "x-request-id"
# A caller's request id is kept when it is at most this long and of these characters (a
# UUID, a ULID, a trace id, ``proxy-1:abc``); anything else is replaced by a fresh one.
MAX_REQUEST_ID_CHARS: Final = 64
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_CHARS}}}")
_request_id: ContextVar[str | None] = ContextVar("mappa_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request being served in this context, None outside one."""
    return _request_id.get()


def accepted_request_id(given: str | None) -> str:
    """``given`` if it is a well-formed request id that redaction leaves as it is (never
    a token or a PNC id taken for one), else a fresh one (32 hex digits)."""
    if given is not None and _REQUEST_ID.fullmatch(given) and redact(given) == given:
        return given
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """``current_request_id()`` is ``request_id`` inside the block."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


# -- from a request to the background work it causes -------------------------------------

# Publications remembered per gateway: enough for every envelope still in flight at a
# few hundred publications a second, and a few MB of memory at most.
MAX_CORRELATED: Final = 10_000


@dataclass(frozen=True)
class Correlated:
    """What the relay and the receipt reader log of a publication made in this process."""

    agency: str
    message_id: str
    request_id: str | None


class Correlation:
    """One gateway's memory of its recent publications, for the log lines of what happens
    to them later in the background: each message id with the agency and request that
    published it, and each envelope (by the SHA-256 of its record value, as queued) with
    its message id. Holds the ``MAX_CORRELATED`` most recent publications; forgets
    everything on restart. Thread-safe."""

    def __init__(self, limit: int = MAX_CORRELATED) -> None:
        self._limit = limit
        self._messages: OrderedDict[str, Correlated] = OrderedDict()
        self._envelopes: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def published(self, correlated: Correlated, values: Iterable[bytes]) -> None:
        """Remember ``correlated`` and its envelopes' record ``values``."""
        with self._lock:
            self._messages[correlated.message_id] = correlated
            for value in values:
                self._envelopes[hashlib.sha256(value).digest()] = correlated.message_id
            while len(self._messages) > self._limit:
                self._messages.popitem(last=False)
            # A publication has an envelope per recipient topic: a few each.
            while len(self._envelopes) > 4 * self._limit:
                self._envelopes.popitem(last=False)

    def of_message(self, message_id: str) -> Correlated | None:
        """The publication of ``message_id``, if made here and remembered."""
        with self._lock:
            return self._messages.get(message_id)

    def of_record(self, value: bytes) -> Correlated | None:
        """The publication whose envelope is the record ``value``, if remembered."""
        digest = hashlib.sha256(value).digest()
        with self._lock:
            message_id = self._envelopes.get(digest)
            return self._messages.get(message_id) if message_id else None


def fields(
    *, agency: str | None = None, message_id: str | None = None, request_id: str | None = None
) -> dict[str, str]:
    """The ``extra=`` of a log call about a message: the fields known, none empty."""
    given = {"agency": agency, "message_id": message_id, "request_id": request_id}
    return {k: v for k, v in given.items() if v}


# -- formats and configuration ----------------------------------------------------------------

# First in each line, in this order; the fields a call passed follow.
_LEADING = ("agency", "message_id", "request_id")


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields after the message: request id from the context where the call gave
    none, then what the call passed."""
    extra = _extra_fields(record)
    if "request_id" not in extra and (request_id := current_request_id()) is not None:
        extra["request_id"] = request_id
    leading = {k: extra.pop(k) for k in _LEADING if extra.get(k) is not None}
    return leading | extra


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "component": record.name,
            "message": record.getMessage(),
        }
        event |= _event_fields(record)
        if record.exc_info and not record.exc_text:
            # Not through ``Redaction`` (a handler without it): the type alone.
            event["exc_type"] = type(record.exc_info[1]).__name__
        elif record.exc_text:
            event["traceback"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        # ASCII: no character a reader could take for the end of a line (U+2028...).
        return json.dumps(event, ensure_ascii=True, default=str)


# Said by the traceback a plain line ends with.
_IN_TRACEBACK = frozenset({"exc_type", "exc_message"})


class PlainLines(logging.Formatter):
    """``time LEVEL component: message key=value ...``, and any traceback below: for a
    person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        shown = {k: v for k, v in _event_fields(record).items() if k not in _IN_TRACEBACK}
        pairs = " ".join(f"{k}={v}" for k, v in shown.items())
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line = f"{line} {pairs}" if pairs else line
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        elif record.exc_info:
            line = f"{line}\n{type(record.exc_info[1]).__name__}"
        return line


# uvicorn's loggers, which it gives handlers of its own (``uvicorn.Config``).
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def json_by_default(stream: IO[str]) -> bool:
    """JSON lines unless ``stream`` is a terminal: a collector reads a pipe or a file, a
    person a terminal."""
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


class _OwnCopyHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Filters and formats a copy of each record: what ``Redaction`` rewrites is rewritten
    for this handler alone, and any other handler (a test's log capture) sees the record
    as it was logged."""

    def handle(self, record: logging.LogRecord) -> bool:
        return bool(super().handle(copy.copy(record)))


def log_handler(*, json: bool, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (standard error by default) in JSON lines or plain
    lines, through ``Redaction``."""
    handler = _OwnCopyHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLines() if json else PlainLines())
    handler.addFilter(Redaction())
    return handler


# The name of the handler ``configure_logging`` installs, by which a later call finds it.
CONFIGURED_HANDLER: Final = "mappa"


def configure_logging(
    level: str | int, *, json: bool, stream: IO[str] | None = None
) -> logging.Handler:
    """Give the root logger ``log_handler(json=json, stream=stream)`` at ``level`` (a name
    such as ``"info"``, or a number), in place of one an earlier call gave it, and send
    uvicorn's loggers to it, at its level, instead of uvicorn's own handlers: call after
    ``uvicorn.Config``, which installs those. Any other handler of the root logger
    (a test run's log capture) stays. Returns the handler."""
    handler = log_handler(json=json, stream=stream)
    handler.set_name(CONFIGURED_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == CONFIGURED_HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        # The root's level decides, as for every other logger (uvicorn set its own).
        logger.setLevel(logging.NOTSET)
    return handler
