"""Server-side sessions, with idle and absolute timeouts, and their CSRF tokens.

A session is started for a user who has just signed in (``UserStore.authenticate``): a
new one every time, so no id given out before sign-in survives it. Its id is 256 random
bits (43 base64url characters), handed to the browser once, in the signed cookie
(``broker.identity.cookies``), and stored only as its SHA-256: a copy of the database
opens no session. Each session has its own CSRF token, 256 random bits, which the
console puts in every form it serves and checks (``broker.identity.csrf.check_csrf``) on
every request that changes something.

``SessionStore.resume`` checks a presented id, in order, with the refusal of each (all
``SessionRefused``):

1. not 43 base64url characters: ``session.invalid``;
2. no session with that id's hash (never was, signed out, ended by a disable or a
   reset, pruned): ``session.invalid``;
3. its user disabled or locked since: ``session.invalid``, and the session is ended;
4. more than ``ABSOLUTE_TIMEOUT`` (8 h) since sign-in: ``session.expired``, ended;
5. more than ``IDLE_TIMEOUT`` (15 min) since it was last used: ``session.expired``,
   ended;

and otherwise marks it used at ``now`` and returns it. A timeout is reached at its
exact length (15 min idle is expired). Every time is passed in (``now``), never read
from the clock here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker.identity.database import IdentityDatabase, end_sessions
from broker.identity.errors import SessionRefused
from broker.identity.roles import Role
from broker.identity.users import User, UserState
from schemas.common import format_timestamp, parse_timestamp

IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_TIMEOUT = timedelta(hours=8)
SESSION_ID_BYTES = 32
CSRF_TOKEN_BYTES = 32
# token_urlsafe(32): 43 characters, no padding. Anything else is refused unhashed.
RANDOM_ID_PATTERN = r"[A-Za-z0-9_-]{43}"
_TOKEN = re.compile(RANDOM_ID_PATTERN)


@dataclass(frozen=True)
class Session:
    """A live session: whose it is, and the CSRF token its forms carry (hidden from
    ``repr``)."""

    username: str
    agency: str
    role: Role
    created_at: datetime
    last_seen_at: datetime
    # When it ends unless used again (idle), or at the latest (absolute).
    expires_at: datetime
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class StartedSession:
    """A session just started, with its id: for the cookie, once. ``repr`` hides the id."""

    session_id: str
    session: Session

    def __repr__(self) -> str:
        return f"StartedSession({self.session.username}, session_id=<hidden>)"


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionStore:
    """Sessions (module docstring), in the identity database beside the users."""

    def __init__(
        self,
        database: IdentityDatabase,
        *,
        idle_timeout: timedelta = IDLE_TIMEOUT,
        absolute_timeout: timedelta = ABSOLUTE_TIMEOUT,
    ) -> None:
        if not timedelta(0) < idle_timeout <= absolute_timeout:
            raise ValueError("timeouts must be positive, the idle one no longer than the other")
        self._database = database
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout

    def start(self, user: User, *, now: datetime) -> StartedSession:
        """A new session for ``user`` (as ``UserStore.authenticate`` returned them),
        begun at ``now``. Raises ``SessionRefused`` (``session.invalid``) for a user who
        is not active."""
        if user.state is not UserState.ACTIVE:
            raise SessionRefused("this account cannot sign in")
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        csrf = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
        at = format_timestamp(now)
        with self._database.transaction() as db:
            db.execute(
                "INSERT INTO sessions (session_sha256, username, csrf_token, created_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?)",
                (_digest(session_id), user.username, csrf, at, at),
            )
        begun = parse_timestamp(at)
        return StartedSession(
            session_id,
            self._session(
                user.username, user.agency, user.role, created=begun, seen=begun, csrf=csrf
            ),
        )

    def resume(self, session_id: str, *, now: datetime) -> Session:
        """The session ``session_id`` names, marked used at ``now``. Raises
        ``SessionRefused`` (``session.invalid``, ``session.expired``) in the order of the
        module docstring."""
        if _TOKEN.fullmatch(session_id) is None:
            raise SessionRefused("no such session; sign in")
        digest = _digest(session_id)
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT s.username, u.agency, u.role, s.csrf_token, s.created_at, "
                "s.last_seen_at, u.locked_at IS NOT NULL OR u.disabled_at IS NOT NULL "
                "FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.session_sha256 = ?",
                (digest,),
            ).fetchone()
            if row is None:
                raise SessionRefused("no such session; sign in")
            username, agency, role, csrf, created_text, seen_text, barred = row
            created, seen = parse_timestamp(created_text), parse_timestamp(seen_text)
            refusal = self._refusal(barred=bool(barred), created=created, seen=seen, now=now)
            if refusal is not None:
                _end(db, digest)
            else:
                seen = max(seen, now)
                db.execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE session_sha256 = ?",
                    (format_timestamp(seen), digest),
                )
        if refusal is not None:
            raise refusal
        return self._session(username, agency, Role(role), created=created, seen=seen, csrf=csrf)

    def end(self, session_id: str) -> bool:
        """Sign out: end the session ``session_id`` names. Returns False, changing
        nothing, if there is none (a malformed id included)."""
        if _TOKEN.fullmatch(session_id) is None:
            return False
        with self._database.transaction() as db:
            return _end(db, _digest(session_id))

    def end_all(self, username: str) -> int:
        """End every session of ``username`` ("sign out everywhere"); returns how many."""
        with self._database.transaction() as db:
            return end_sessions(db, username)

    def prune(self, *, now: datetime) -> int:
        """Delete the sessions that have timed out by ``now``; returns how many. Resume
        refuses them anyway: this only keeps the table small."""
        idle_since = format_timestamp(now - self.idle_timeout)
        begun_since = format_timestamp(now - self.absolute_timeout)
        with self._database.transaction() as db:
            return db.execute(
                "DELETE FROM sessions WHERE last_seen_at <= ? OR created_at <= ?",
                (idle_since, begun_since),
            ).rowcount

    def _refusal(
        self, *, barred: bool, created: datetime, seen: datetime, now: datetime
    ) -> SessionRefused | None:
        if barred:
            return SessionRefused("this account can no longer sign in")
        if now - created >= self.absolute_timeout:
            return SessionRefused(
                "signed out: a session lasts at most "
                f"{_hours(self.absolute_timeout)}; sign in again",
                code="session.expired",
            )
        if now - seen >= self.idle_timeout:
            return SessionRefused(
                f"signed out after {_minutes(self.idle_timeout)} without use; sign in again",
                code="session.expired",
            )
        return None

    def _session(
        self,
        username: str,
        agency: str,
        role: Role,
        *,
        created: datetime,
        seen: datetime,
        csrf: str,
    ) -> Session:
        expires = min(seen + self.idle_timeout, created + self.absolute_timeout)
        return Session(username, agency, role, created, seen, expires, csrf)


def _end(db: sqlite3.Connection, digest: str) -> bool:
    return db.execute("DELETE FROM sessions WHERE session_sha256 = ?", (digest,)).rowcount == 1


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} minutes"


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours"
