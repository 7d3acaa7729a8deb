"""One error root, a few kinds, each with a stable reason code.

Reason codes go into dead-letter records and audit events; the message is for a
person to act on. Neither reveals key material or plaintext, and a decryption
failure never says which check failed inside the AEAD.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: the ledger's verify workers import this module lean
    from pydantic import ValidationError


class MappaError(Exception):
    """Root of every error this product raises on purpose."""

    code = "error"
    retriable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
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
    is and what it is (``"<what> invalid at <field path>: <message>"``), as ``kind`` with
    ``code``. Raise it ``from None``: pydantic's own report can quote the input, which may
    be personal data, and must not reach a log through the exception chain."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the top level"
    return kind(f"{what} invalid at {where}: {first['msg']}", code=code)
