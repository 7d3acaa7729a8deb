"""API credentials: one random bearer token per agency system or governance officer.

A token is ``mappa_<credential id>_<secret>``: the id (64 random bits, hex) finds the
row, the secret (256 random bits, base64url) is what proves possession. Only the
SHA-256 of the whole token is stored: with 256 bits of entropy a slow password hash
buys nothing, and a stolen database yields no usable token. Comparison is in constant
time. Rows live in ``api-credentials.sqlite`` in the data directory, so a token issued
or revoked by ``mappa api token`` takes effect in a running server at once.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from broker.errors import MappaError
from broker.gateway.store import shared_database

CREDENTIALS_FILE = "api-credentials.sqlite"
SECRET_BYTES = 32
ID_BYTES = 8
# Anything longer than a well-formed token is refused before it is hashed.
MAX_TOKEN_CHARS = 128
_TOKEN = re.compile(r"^mappa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_PRINCIPAL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY, kind TEXT NOT NULL, principal TEXT NOT NULL,
    token_sha256 TEXT NOT NULL, label TEXT, issued_at TEXT NOT NULL, revoked_at TEXT
);
"""


class CredentialKind(enum.StrEnum):
    """Whom a credential is for: an agency system, or an information-governance officer."""

    AGENCY = "agency"
    OFFICER = "officer"


class AuthenticationFailed(MappaError):
    """No credential, a malformed one, an unknown one or a revoked one: all look alike."""

    code = "auth.invalid-credential"


class AccessDenied(MappaError):
    """A valid credential that does not cover what was asked."""

    code = "auth.forbidden"


@dataclass(frozen=True)
class Principal:
    """Who a presented token stands for."""

    kind: CredentialKind
    # The agency id for an agency system; the officer's own id for an officer.
    name: str
    credential_id: str


@dataclass(frozen=True)
class CredentialInfo:
    """A credential as listed: never its token, nor the token's hash."""

    credential_id: str
    kind: CredentialKind
    principal: str
    label: str | None
    issued_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class IssuedCredential:
    """A credential just issued, with its token; ``repr`` hides the token."""

    info: CredentialInfo
    # Shown once, to the person issuing it; never stored.
    token: str

    def __repr__(self) -> str:
        return f"IssuedCredential({self.info.credential_id}, token=<hidden>)"


def credentials_path(data_dir: Path) -> Path:
    """Where the credential store lives in ``data_dir``."""
    return data_dir / CREDENTIALS_FILE


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CredentialStore:
    """The API's credentials (module docstring), in SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Every request reads it and `mappa api token` writes it from another process.
        self._db = shared_database(path)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        self._db.close()

    def issue(
        self, kind: CredentialKind, principal: str, *, now: str, label: str | None = None
    ) -> IssuedCredential:
        """Issue a new credential of ``kind`` for ``principal`` at ``now``; returns it with
        its token, which is stored only as a hash. Raises ``AuthenticationFailed``
        (``auth.invalid-principal``) for a name that is not 1-100 lower-case letters,
        digits, ``.``, ``_`` or ``-`` starting with a letter or digit. Whether the
        principal exists is not checked."""
        if not _PRINCIPAL.match(principal):
            raise AuthenticationFailed(
                f"{principal!r} is not a valid {kind.value} name (lower case, digits, . _ -)",
                code="auth.invalid-principal",
            )
        credential_id = secrets.token_hex(ID_BYTES)
        token = f"mappa_{credential_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        info = CredentialInfo(credential_id, kind, principal, label, now, None)
        self._db.execute(
            "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (credential_id, kind.value, principal, _digest(token), label, now),
        )
        return IssuedCredential(info, token)

    def revoke(self, credential_id: str, *, now: str) -> bool:
        """Revoke ``credential_id`` at ``now``; returns False, changing nothing, if there is
        no such credential or it is revoked already."""
        cur = self._db.execute(
            "UPDATE credentials SET revoked_at = ? WHERE credential_id = ? AND revoked_at IS NULL",
            (now, credential_id),
        )
        return cur.rowcount == 1

    def list(self) -> list[CredentialInfo]:
        """Every credential, revoked ones included, in the order issued."""
        rows = self._db.execute(
            "SELECT credential_id, kind, principal, label, issued_at, revoked_at "
            "FROM credentials ORDER BY rowid"
        )
        return [CredentialInfo(c, CredentialKind(k), p, lb, i, r) for c, k, p, lb, i, r in rows]

    def authenticate(self, token: str) -> Principal:
        """The principal a presented token stands for. Raises ``AuthenticationFailed``
        (``auth.invalid-credential``) for every failure alike (too long, malformed,
        unknown, wrong secret, revoked), so a caller learns nothing about which ids
        exist."""
        match = _TOKEN.match(token) if len(token) <= MAX_TOKEN_CHARS else None
        credential_id = match.group(1) if match else ""
        row = self._db.execute(
            "SELECT kind, principal, token_sha256, revoked_at FROM credentials "
            "WHERE credential_id = ?",
            (credential_id,),
        ).fetchone()
        # Hash and compare even when there is no row, so timing does not tell ids apart.
        stored = row[2] if row else "0" * 64
        genuine = hmac.compare_digest(_digest(token), stored)
        if row is None or not genuine or row[3] is not None:
            raise AuthenticationFailed("the bearer credential is missing, invalid or revoked")
        return Principal(CredentialKind(row[0]), row[1], credential_id)
