"""One error root, a few kinds, each with a stable reason code.

Reason codes go into dead-letter records and audit events; the message is for a
person to act on. Neither reveals key material or plaintext, and a decryption
failure never says which check failed inside the AEAD.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not at run time: the ledger's verify workers import this module lean
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

# A reason goes into an audit event (``reason``, at most 4,000 characters), a dead letter
# and an API answer: every error's text is cut to this, so a refusal always fits where
# it is recorded, whatever the input it is about.
MAX_REASON_CHARS = 1000


class MappaError(Exception):
    """Root of every error this product raises on purpose."""

    code = "error"
    retriable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(str(message)[:MAX_REASON_CHARS])
        if code is not None:
            self.code = code

    @property
    def reason(self) -> str:
        return str(self)


class ConfigurationError(MappaError):
    code = "config.invalid"


class SchemaError(MappaError):
    """Input that is not a well-formed document of the kind expected."""

    code = "schema.invalid"


class VerificationError(MappaError):
    """A signature, a key, a sender or a binding did not check out."""

    code = "verification.failed"


class DecryptionError(MappaError):
    code = "decryption.failed"


class ReplayError(MappaError):
    """Seen before with other content, or outside the freshness window."""

    code = "replay.refused"


class PolicyDenied(MappaError):
    """An information-sharing agreement does not allow this."""

    code = "policy.denied"


class TransferRefused(PolicyDenied):
    """An area transfer step, or a message about a moving case, that the transfer's state
    or its actors' roles do not allow."""

    code = "transfer.refused"


class KeyUnavailable(MappaError):
    """A key we need is missing or locked; may resolve once it is provided."""

    code = "key.unavailable"
    retriable = True


class StoreUnavailable(MappaError):
    """A database cannot be used just now: locked past its busy timeout, full, read-only,
    failing, or its server not answering. What was being written was not written; the
    same request may succeed later."""

    code = "store.unavailable"
    retriable = True


# The SQLite result codes (the low byte of the extended code) that say the database
# cannot be used just now, rather than that the statement is wrong.
SQLITE_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
    }
)


@contextmanager
def sqlite_unavailable() -> Iterator[None]:
    """Turn SQLite's "cannot be used just now" errors (``SQLITE_UNAVAILABLE_CODES``: locked
    past the busy timeout, disk full, read-only, I/O) into ``StoreUnavailable``; any
    other ``sqlite3.Error`` (a wrong statement, a constraint) passes unchanged."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in SQLITE_UNAVAILABLE_CODES:
            raise
        raise StoreUnavailable(
            f"the database cannot be used just now ({exc.sqlite_errorname}); retry later"
        ) from exc


class Unprocessable(MappaError):
    """A record on which an exception that is not ours was raised (a fault nobody
    foresaw): refused, naming the exception's type only, since its message may quote
    the input. Made by ``Unprocessable.of``."""

    code = "record.unprocessable"

    @classmethod
    def of(cls, exc: BaseException) -> Unprocessable:
        return cls(f"the record could not be processed ({type(exc).__name__})")


# What a consumer of records raises out of its one boundary (its batch is rolled back and
# read again): the trouble is the machine's, not the record's. Any other exception on a
# record refuses that record (code ``record.unprocessable``).
INFRASTRUCTURE_FAILURES: tuple[type[BaseException], ...] = (StoreUnavailable, MemoryError)


class NotAddressed(MappaError):
    """The envelope carries nothing for this agency. Not an attack: not for us."""

    code = "envelope.not-addressed"


def invalid(
    exc: ValidationError,
    what: str,
    *,
    code: str | None = None,
    kind: type[MappaError] = SchemaError,
) -> MappaError:
    """Our error for a pydantic ``ValidationError`` about ``what``: where the first problem
    is and the rule it breaks (``"<what> invalid at <field path>: <rule>"``), as ``kind``
    with ``code``. Never the value: the input is personal data as often as not, so the
    path keeps only field names the schema declares and the rule is ``rule_of``'s. Raise
    it ``from None``: pydantic's own report quotes the input and must not reach a log
    through the exception chain."""
    errors = exc.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return kind(f"{what} invalid at {where_of(first)}: {rule_of(first)}{more}", code=code)


# A location step that is a name the schema gave a field; anything else in a location
# (a dictionary key) came from the input.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Rules by pydantic error type: fixed text, filled in only from the schema's constraints
# (``ctx``), never from the input.
_RULES: Mapping[str, str] = {
    "missing": "required",
    "extra_forbidden": "not a field of this document",
    "string_type": "must be text",
    "string_unicode": "must be text",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of a sensible size",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "enum": "must be one of {expected}",
    "literal_error": "must be {expected}",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "is_instance_of": "must be an object of the right kind",
    "frozen_instance": "cannot be changed",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "json_invalid": "must be well-formed JSON",
    "json_type": "must be JSON text",
    "union_tag_invalid": "names no known kind",
    "union_tag_not_found": "names no kind",
    "date_type": "must be a date",
    "date_parsing": "must be a date",
    "datetime_type": "must be a time",
    "datetime_parsing": "must be a time",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "bytes_type": "must be bytes",
    "recursion_loop": "is nested too deeply",
}
# The shortest input text the leak check looks for in a validator's own message.
_LEAK_MIN = 3
# A schema's own code ("very-high", "notification-requirements").
_VOCABULARY = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def where_of(detail: ErrorDetails) -> str:
    """The dotted field path of one pydantic error, without steps the input supplied (the
    unknown key of ``extra_forbidden``, any dictionary key that is not a field name)."""
    loc = list(detail["loc"])
    if detail["type"] == "extra_forbidden" and loc:
        loc = loc[:-1]
    steps = [str(p) if isinstance(p, int) or _FIELD_NAME.match(str(p)) else "<key>" for p in loc]
    return ".".join(steps) or "the top level"


def rule_of(detail: ErrorDetails) -> str:
    """The rule one pydantic error says was broken, as fixed text: the schema's constraint
    for the error types in ``_RULES``; a validator's own message (``value_error``,
    ``assertion_error``) unless it quotes the input; else the error type's name."""
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    template = _RULES.get(kind)
    if template is not None:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError, ValueError):
            return template.split("{", 1)[0].strip()
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", ""))
        if message and not _quotes(message, detail.get("input")):
            return message[:300]
        return "not an acceptable value"
    return kind.replace("_", " ")


def _quotes(message: str, value: Any) -> bool:
    """Whether ``message`` holds any text of ``value`` (or, for a document, of its
    leaves) long enough to say something. A schema's own vocabulary (lower-case codes
    such as "notification-requirements") is what validators name on purpose, and is
    nobody's personal data."""
    if isinstance(value, str):
        vocabulary = _VOCABULARY.fullmatch(value) is not None
        return len(value) >= _LEAK_MIN and not vocabulary and value in message
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        text = str(value)
        return len(text) >= _LEAK_MIN and text in message
    if isinstance(value, Mapping):
        return any(_quotes(message, v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_quotes(message, v) for v in value)
    return False
