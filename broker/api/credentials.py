"""API credentials: service accounts, each an expiring bearer token for one agency
system or one governance officer.

A token is ``mappa_<credential id>_<secret>``: the id (64 random bits, hex) finds the
row, the secret (256 random bits, base64url) is what proves possession. Only the
SHA-256 of the whole token is stored: with 256 bits of entropy a slow password hash
buys nothing, and a stolen database yields no usable token. Comparison is in constant
time. Rows live in ``api-credentials.sqlite`` in the data directory, so a token issued,
rotated or revoked by ``mappa api token`` takes effect in a running server at once.

Every token expires (at most ``MAX_LIFETIME`` after it is issued), so a forgotten one
stops working by itself. Rotation issues the successor and lets the old token run on for
a grace period at most, so a system can switch without a gap. Who issued, rotated and
revoked each credential, and when, stays in its row: ``mappa api token list`` shows it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from broker.errors import MappaError
from broker.files.migrations import Migration, Schema, SqliteTarget, run_script, upgrade
from broker.gateway.store import shared_database
from schemas.common import format_timestamp, parse_timestamp

CREDENTIALS_FILE = "api-credentials.sqlite"
SECRET_BYTES = 32
ID_BYTES = 8
# Anything longer than a well-formed token is refused before it is hashed.
MAX_TOKEN_CHARS = 128
_TOKEN = re.compile(r"^mappa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_PRINCIPAL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# The longest a token may live, and what it gets when nobody says.
MAX_LIFETIME = timedelta(days=397)
DEFAULT_LIFETIME = timedelta(days=90)
# Tokens from before expiry existed expire this long after they were issued.
LEGACY_LIFETIME = DEFAULT_LIFETIME
MAX_ACTOR_CHARS = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY, kind TEXT NOT NULL, principal TEXT NOT NULL,
    token_sha256 TEXT NOT NULL, label TEXT, issued_at TEXT NOT NULL, revoked_at TEXT,
    expires_at TEXT, issued_by TEXT, revoked_by TEXT, replaces TEXT
);
"""
# Columns added since the first schema, each with what an older row gets.
_ADDED_COLUMNS = ("expires_at", "issued_by", "revoked_by", "replaces")


def _create_table(db: sqlite3.Connection) -> None:
    """Step 1: the table, if missing, as every open made it before versions existed."""
    run_script(db.execute, _SCHEMA)


def _add_expiry(db: sqlite3.Connection) -> None:
    """Step 2: bring a store from before expiry up to date: the new columns, and an
    expiry for each older token (``LEGACY_LIFETIME`` after issue). A store that has
    them already is left alone."""
    have = {row[1] for row in db.execute("PRAGMA table_info(credentials)")}
    for column in [c for c in _ADDED_COLUMNS if c not in have]:
        db.execute(f"ALTER TABLE credentials ADD COLUMN {column} TEXT")
    rows = db.execute(
        "SELECT credential_id, issued_at FROM credentials WHERE expires_at IS NULL"
    ).fetchall()
    for credential_id, issued_at in rows:
        try:
            expires = format_timestamp(parse_timestamp(issued_at) + LEGACY_LIFETIME)
        except ValueError:  # a time we cannot read: the token expires at once
            expires = issued_at
        db.execute(
            "UPDATE credentials SET expires_at = ? WHERE credential_id = ?",
            (expires, credential_id),
        )


# The credential store's layout, step by step (``broker.files.migrations``); steps 1 and 2
# are what every open did before versions existed (commit 2fda6ad and earlier).
SCHEMA: Schema[sqlite3.Connection] = Schema(
    store="credential store",
    markers=frozenset({"credentials"}),
    migrations=(
        Migration(1, "credentials table, where missing", _create_table),
        Migration(2, "credentials: expiry and who issued, revoked, replaced", _add_expiry),
    ),
)


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

    @property
    def audit_name(self) -> str:
        """How the audit names this service account: ``service:<credential id>``."""
        return f"service:{self.credential_id}"


@dataclass(frozen=True)
class CredentialInfo:
    """A credential as listed: never its token, nor the token's hash."""

    credential_id: str
    kind: CredentialKind
    principal: str
    label: str | None
    issued_at: str
    revoked_at: str | None
    expires_at: str
    issued_by: str | None = None
    revoked_by: str | None = None
    # The credential this one was issued to replace (``rotate``), if any.
    replaces: str | None = None

    def state(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        return "active" if _before(now, self.expires_at) else "expired"


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


def _checked_actor(actor: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in actor)[:MAX_ACTOR_CHARS] or "unknown"


_SELECT = (
    "SELECT credential_id, kind, principal, label, issued_at, revoked_at, expires_at, "
    "issued_by, revoked_by, replaces FROM credentials "
)


class CredentialStore:
    """The API's credentials (module docstring), in SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Every request reads it and `mappa api token` writes it from another process.
        self._db = shared_database(path)
        self._lock = threading.Lock()
        try:
            upgrade(SCHEMA, self._db, SqliteTarget(self._db))
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        self._db.close()

    def issue(
        self,
        kind: CredentialKind,
        principal: str,
        *,
        now: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
        label: str | None = None,
        actor: str = "unknown",
        replaces: str | None = None,
    ) -> IssuedCredential:
        """Issue a new credential of ``kind`` for ``principal`` at ``now``, expiring
        ``lifetime`` later, recording ``actor`` as who issued it; returns it with its
        token, which is stored only as a hash. Raises ``AuthenticationFailed``
        (``auth.invalid-principal``) for a name that is not 1-100 lower-case letters,
        digits, ``.``, ``_`` or ``-`` starting with a letter or digit, and
        (``auth.invalid-lifetime``) for a lifetime not above zero or beyond
        ``MAX_LIFETIME``. Whether the principal exists is not checked."""
        if not _PRINCIPAL.match(principal):
            raise AuthenticationFailed(
                f"{principal!r} is not a valid {kind.value} name (lower case, digits, . _ -)",
                code="auth.invalid-principal",
            )
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise AuthenticationFailed(
                f"a token lives more than no time and at most {MAX_LIFETIME.days} days",
                code="auth.invalid-lifetime",
            )
        credential_id = secrets.token_hex(ID_BYTES)
        token = f"mappa_{credential_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        issued_at, expires_at = format_timestamp(now), format_timestamp(now + lifetime)
        info = CredentialInfo(
            credential_id, kind, principal, label, issued_at, None, expires_at,
            issued_by=_checked_actor(actor), replaces=replaces,
        )  # fmt: skip
        self._db.execute(
            "INSERT INTO credentials (credential_id, kind, principal, label, issued_at, "
            "expires_at, issued_by, replaces, token_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                credential_id, kind.value, principal, label, issued_at, expires_at,
                info.issued_by, replaces, _digest(token),
            ),
        )  # fmt: skip
        return IssuedCredential(info, token)

    def rotate(
        self,
        credential_id: str,
        *,
        now: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
        grace: timedelta = timedelta(0),
        actor: str = "unknown",
    ) -> IssuedCredential:
        """Issue the successor of the active credential ``credential_id`` (same kind,
        principal and label) and let the old one run on for ``grace`` at most (none: it
        stops now), both in one transaction; returns the successor with its token.
        Raises ``AuthenticationFailed`` (``auth.no-such-credential``) when there is no
        such active credential, (``auth.invalid-lifetime``) for a negative grace or one
        beyond the new token's lifetime, and as ``issue`` does."""
        if not timedelta(0) <= grace <= lifetime:
            raise AuthenticationFailed(
                "the grace period is between none and the new token's lifetime",
                code="auth.invalid-lifetime",
            )
        with self._transaction():
            old = self._active(credential_id, now)
            issued = self.issue(
                old.kind, old.principal, now=now, lifetime=lifetime, label=old.label,
                actor=actor, replaces=credential_id,
            )  # fmt: skip
            if grace:
                until = min(format_timestamp(now + grace), old.expires_at)
                self._db.execute(
                    "UPDATE credentials SET expires_at = ? WHERE credential_id = ?",
                    (until, credential_id),
                )
            else:
                self._revoke(credential_id, now, actor)
        return issued

    def revoke(self, credential_id: str, *, now: datetime, actor: str = "unknown") -> bool:
        """Revoke ``credential_id`` at ``now``, recording ``actor``; returns False,
        changing nothing, if there is no such credential or it is revoked already."""
        with self._transaction():
            return self._revoke(credential_id, now, actor)

    def _revoke(self, credential_id: str, now: datetime, actor: str) -> bool:
        cur = self._db.execute(
            "UPDATE credentials SET revoked_at = ?, revoked_by = ? "
            "WHERE credential_id = ? AND revoked_at IS NULL",
            (format_timestamp(now), _checked_actor(actor), credential_id),
        )
        return cur.rowcount == 1

    def _active(self, credential_id: str, now: datetime) -> CredentialInfo:
        found = _infos(self._db.execute(_SELECT + "WHERE credential_id = ?", (credential_id,)))
        if not found or found[0].state(now) != "active":
            raise AuthenticationFailed(
                f"no active credential {credential_id}", code="auth.no-such-credential"
            )
        return found[0]

    def list(self) -> list[CredentialInfo]:
        """Every credential, revoked and expired ones included, in the order issued."""
        return _infos(self._db.execute(_SELECT + "ORDER BY rowid"))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The connection commits each statement on its own (``shared_database``); a
        # rotation's two writes stand or fall together.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def authenticate(self, token: str, *, now: datetime) -> Principal:
        """The principal a presented token stands for at ``now``. Raises
        ``AuthenticationFailed`` (``auth.invalid-credential``) for every failure alike
        (too long, malformed, unknown, wrong secret, revoked, expired), so a caller
        learns nothing about which ids exist."""
        match = _TOKEN.match(token) if len(token) <= MAX_TOKEN_CHARS else None
        credential_id = match.group(1) if match else ""
        row = self._db.execute(
            "SELECT kind, principal, token_sha256, revoked_at, expires_at FROM credentials "
            "WHERE credential_id = ?",
            (credential_id,),
        ).fetchone()
        # Hash and compare even when there is no row, so timing does not tell ids apart.
        stored = row[2] if row else "0" * 64
        genuine = hmac.compare_digest(_digest(token), stored)
        if row is None or not genuine or row[3] is not None or not _before(now, row[4]):
            raise AuthenticationFailed("the bearer credential is missing, invalid or revoked")
        return Principal(CredentialKind(row[0]), row[1], credential_id)


def _infos(rows: Iterable[tuple[str, ...]]) -> list[CredentialInfo]:
    return [
        CredentialInfo(c, CredentialKind(k), p, lb, i, r, e, ib, rb, rp)
        for c, k, p, lb, i, r, e, ib, rb, rp in rows
    ]


def _before(now: datetime, expires_at: str | None) -> bool:
    """Whether ``now`` is before a stored expiry; a missing or unreadable one is past."""
    try:
        return expires_at is not None and now < parse_timestamp(expires_at)
    except ValueError:
        return False
