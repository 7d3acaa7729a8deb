"""Named users of agencies, and signing them in.

A user has a username (1-100 lower-case letters, digits, ``.``, ``_``, ``-``, starting
with a letter or digit, unique across the deployment), an agency id, one ``Role``, an
Argon2id password hash, and a TOTP secret: required for the roles whose
``requires_second_factor`` is true, optional (``totp=True``) for the others. The store
is ``users.sqlite`` (``broker.identity.database``).

Sign-in (``UserStore.authenticate``), in order, with the refusal of each (all
``SignInRefused``):

1. a username that is malformed or names nobody: one Argon2id verification against a
   hash nobody can match, then ``auth.failed``;
2. a locked account: the same cost, then ``auth.locked``, whatever was presented, so
   that guessing on after the lock learns nothing (it does tell the guesser that a
   locked account of that name exists: the price of telling its owner why they cannot
   sign in);
3. the password (``Passwords.verify``) and, where the user has a TOTP secret, the code
   (``totp.accepted_step``: in the window, not reused), both checked every time: either
   wrong or missing counts a failure and is ``auth.failed``; the failure that makes
   ``MAX_FAILED_ATTEMPTS`` in a row locks the account (recorded as a ``lock`` event)
   and is ``auth.locked``;
4. a disabled account: ``auth.disabled`` (failures count on it too, so it locks alike);
5. success: the failure count goes to 0, the code's step is remembered, the hash is
   replaced if it was made with older parameters. This is one conditional update: a
   sign-in that raced a reset, a lock or another sign-in with the same code finds the
   row changed, and counts as a failure.

A locked account stays locked, even to the right password and code, until ``reset``.

Administrative acts (``add``, ``disable``, ``reset``) and lockouts are recorded in the
same transaction as the change, in the append-only ``user_events`` table: the act, when,
the username, agency and role, and who did it (``actor``). Never a password, a hash, a
code or a secret.

TOTP secrets are stored as given, in a file only the service user can read (0600):
verifying a code needs the secret itself, and a key to seal it with would have to sit
in the same data directory, readable by the same user, to be of use at each sign-in.
Sealing under the keystore passphrase (``broker.crypto.keys.seal_secret``) would cost a
scrypt derivation per sign-in and tie the console's start to the agency keys' passphrase.
"""

from __future__ import annotations

import enum
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from broker.identity.database import IdentityDatabase, end_sessions
from broker.identity.errors import SignInRefused, UserRefused
from broker.identity.passwords import PasswordMismatch, Passwords
from broker.identity.roles import Role
from broker.identity.totp import TotpRefused, accepted_step, new_secret, provisioning_uri
from schemas.common import AGENCY_ID_PATTERN, format_timestamp

# Consecutive failures that lock an account until an administrator resets it.
MAX_FAILED_ATTEMPTS = 5
# Who did an act: an operating-system account, a console user; a bound, and no controls.
MAX_ACTOR_CHARS = 200
# The same alphabet as the API's principals (``broker.api.credentials``).
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
_USERNAME = re.compile(USERNAME_PATTERN)
_AGENCY = re.compile(AGENCY_ID_PATTERN)
# The actor who locks an account: nobody; repeated failed sign-ins do.
SIGN_IN_ACTOR = "sign-in"

_USER_COLUMNS = (
    "username, agency, role, created_at, failed_attempts, locked_at, disabled_at, "
    "totp_secret IS NOT NULL"
)


class UserState(enum.StrEnum):
    """Whether a user can sign in: ``disabled`` wins over ``locked``."""

    ACTIVE = "active"
    LOCKED = "locked"
    DISABLED = "disabled"


class UserAct(enum.StrEnum):
    """What a ``user_events`` row records."""

    ADD = "add"
    DISABLE = "disable"
    RESET = "reset"
    LOCK = "lock"
    # Signing in with an identity provider (``admit``), the actor naming the method:
    # ``oidc``. Password sign-ins are not recorded, only the lock they can end in.
    SIGN_IN = "sign-in"
    SIGN_IN_REFUSED = "sign-in-refused"


@dataclass(frozen=True)
class User:
    """A user as shown and as signed in: never a hash or a secret."""

    username: str
    agency: str
    role: Role
    created_at: str
    failed_attempts: int
    locked_at: str | None
    disabled_at: str | None
    # Whether signing in needs a TOTP code.
    second_factor: bool

    @property
    def state(self) -> UserState:
        if self.disabled_at is not None:
            return UserState.DISABLED
        if self.locked_at is not None:
            return UserState.LOCKED
        return UserState.ACTIVE


@dataclass(frozen=True)
class Enrolment:
    """A user just added or reset, with the TOTP secret they must enrol (None if they
    have no second factor). Shown once, to the administrator; ``repr`` hides it."""

    user: User
    totp_secret: str | None

    @property
    def provisioning_uri(self) -> str | None:
        """The ``otpauth://`` URI for the user's authenticator app, or None."""
        if self.totp_secret is None:
            return None
        return provisioning_uri(self.totp_secret, username=self.user.username)

    def __repr__(self) -> str:
        secret = "<hidden>" if self.totp_secret else None
        return f"Enrolment({self.user.username}, totp_secret={secret})"


@dataclass(frozen=True)
class UserEvent:
    """One recorded act on a user."""

    seq: int
    at: str
    act: UserAct
    username: str
    agency: str
    role: Role
    actor: str


@dataclass(frozen=True)
class _Secrets:
    password_hash: str
    totp_secret: str | None
    totp_last_step: int | None

    def __repr__(self) -> str:
        return "_Secrets(<hidden>)"


def _user(row: tuple[str, str, str, str, int, str | None, str | None, int]) -> User:
    return User(row[0], row[1], Role(row[2]), row[3], row[4], row[5], row[6], bool(row[7]))


def check_username(username: str) -> None:
    """Returns nothing for a well-formed username; raises ``UserRefused``
    (``users.invalid-username``) otherwise, without quoting it."""
    if _USERNAME.fullmatch(username) is None:
        raise UserRefused(
            "a username is 1-100 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            code="users.invalid-username",
        )


def _check_actor(actor: str) -> None:
    if not 1 <= len(actor) <= MAX_ACTOR_CHARS or not actor.isprintable():
        raise UserRefused(
            f"an actor is 1-{MAX_ACTOR_CHARS} printable characters", code="users.invalid-actor"
        )


class UserStore:
    """The users of a deployment (module docstring), on an ``IdentityDatabase``."""

    def __init__(
        self,
        database: IdentityDatabase,
        *,
        passwords: Passwords | None = None,
        max_failed_attempts: int = MAX_FAILED_ATTEMPTS,
    ) -> None:
        if max_failed_attempts < 1:
            raise ValueError("an account must allow at least one attempt")
        self._database = database
        self._passwords = passwords or Passwords()
        self._max_failed = max_failed_attempts

    # -- administration ---------------------------------------------------------------

    def add(
        self,
        username: str,
        *,
        agency: str,
        role: Role,
        password: str,
        actor: str,
        now: datetime,
        totp: bool = False,
    ) -> Enrolment:
        """Add a user of ``agency`` with ``role`` and ``password``, recorded as done by
        ``actor`` at ``now``. A TOTP secret is made if the role requires a second factor
        or ``totp`` asks for one. Raises ``UserRefused`` (``users.invalid-username``,
        ``users.invalid-agency``, ``users.invalid-actor``, ``users.exists``) or
        ``PasswordRefused``. Whether the agency is in the trust directory is the
        caller's to check (``mappa users add`` does)."""
        check_username(username)
        if _AGENCY.fullmatch(agency) is None:
            raise UserRefused(
                "an agency id looks like kind.local-name (police.staffordshire)",
                code="users.invalid-agency",
            )
        _check_actor(actor)
        password_hash = self._passwords.hash(password, username=username)
        secret = new_secret() if role.requires_second_factor or totp else None
        at = format_timestamp(now)
        try:
            with self._database.transaction() as db:
                db.execute(
                    "INSERT INTO users (username, agency, role, password_hash, totp_secret, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (username, agency, role.value, password_hash, secret, at),
                )
                user = self._get(db, username)
                _record(db, UserAct.ADD, user, actor, at)
        except sqlite3.IntegrityError:
            raise UserRefused(f"user {username} exists already", code="users.exists") from None
        return Enrolment(user, secret)

    def disable(self, username: str, *, actor: str, now: datetime) -> User:
        """Disable ``username`` for good, ending their sessions, recorded as done by
        ``actor`` at ``now``. Raises ``UserRefused`` (``users.unknown``,
        ``users.disabled`` if it is already, ``users.invalid-actor``)."""
        _check_actor(actor)
        at = format_timestamp(now)
        with self._database.transaction() as db:
            user = self._get(db, username)
            if user.disabled_at is not None:
                raise UserRefused(f"user {username} is disabled already", code="users.disabled")
            db.execute("UPDATE users SET disabled_at = ? WHERE username = ?", (at, username))
            end_sessions(db, username)
            user = self._get(db, username)
            _record(db, UserAct.DISABLE, user, actor, at)
        return user

    def reset(
        self, username: str, *, password: str, actor: str, now: datetime, totp: bool = False
    ) -> Enrolment:
        """Give ``username`` a new password and, where the role requires a second
        factor, they had one, or ``totp`` asks, a new TOTP secret; clear the failure
        count and the lock; end their sessions. Recorded as done by ``actor`` at
        ``now``. Raises ``UserRefused`` (``users.unknown``, ``users.disabled``: a
        disabled user stays disabled, ``users.invalid-actor``) or ``PasswordRefused``."""
        _check_actor(actor)
        password_hash = self._passwords.hash(password, username=username)
        at = format_timestamp(now)
        with self._database.transaction() as db:
            user = self._get(db, username)
            if user.disabled_at is not None:
                raise UserRefused(
                    f"user {username} is disabled; add a new user instead", code="users.disabled"
                )
            wanted = user.role.requires_second_factor or user.second_factor or totp
            secret = new_secret() if wanted else None
            db.execute(
                "UPDATE users SET password_hash = ?, totp_secret = ?, totp_last_step = NULL, "
                "failed_attempts = 0, locked_at = NULL WHERE username = ?",
                (password_hash, secret, username),
            )
            end_sessions(db, username)
            user = self._get(db, username)
            _record(db, UserAct.RESET, user, actor, at)
        return Enrolment(user, secret)

    def get(self, username: str) -> User:
        """The user named ``username``. Raises ``UserRefused`` (``users.unknown``)."""
        with self._database.reading() as db:
            return self._get(db, username)

    def find(self, username: str) -> User | None:
        """The user named ``username``, or None if there is none."""
        try:
            return self.get(username)
        except UserRefused:
            return None

    def history(self, *, username: str | None = None) -> list[UserEvent]:
        """Every recorded act (on ``username`` only, if given), oldest first."""
        with self._database.reading() as db:
            rows = db.execute(
                "SELECT seq, at, act, username, agency, role, actor FROM user_events "
                "WHERE ? IS NULL OR username = ? ORDER BY seq",
                (username, username),
            ).fetchall()
        return [
            UserEvent(s, at, UserAct(a), u, ag, Role(r), who) for s, at, a, u, ag, r, who in rows
        ]

    def list(self, *, agency: str | None = None) -> list[User]:
        """Every user (of ``agency`` only, if given), disabled ones included, by
        username."""
        with self._database.reading() as db:
            rows = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users "  # noqa: S608 - fixed column list
                "WHERE ? IS NULL OR agency = ? ORDER BY username",
                (agency, agency),
            ).fetchall()
        return [_user(r) for r in rows]

    # -- signing in -------------------------------------------------------------------

    def admit(self, username: str, *, actor: str, now: datetime) -> User:
        """The user ``username``, whom an identity provider has vouched for (``actor``
        names it: ``oidc``), if the account is neither locked nor disabled: recorded as a
        ``sign-in`` by ``actor`` at ``now``. The provider proves who; the local account
        says what they may do. Raises ``SignInRefused``: ``auth.failed`` for a malformed
        username or one that names nobody (nothing to record it against),
        ``auth.locked`` or ``auth.disabled``, each recorded as a ``sign-in-refused``.
        Failures are not counted: no secret was guessed here."""
        _check_actor(actor)
        if _USERNAME.fullmatch(username) is None:
            raise _failed()
        at = format_timestamp(now)
        with self._database.transaction() as db:
            try:
                user = self._get(db, username)
            except UserRefused:
                raise _failed() from None
            if user.state is UserState.ACTIVE:
                _record(db, UserAct.SIGN_IN, user, actor, at)
                return user
            _record(db, UserAct.SIGN_IN_REFUSED, user, actor, at)
        if user.state is UserState.DISABLED:
            raise SignInRefused("this account is disabled", code="auth.disabled")
        raise _locked()

    def authenticate(
        self, username: str, password: str, totp_code: str | None, *, now: datetime
    ) -> User:
        """The user ``username`` if ``password`` and, where they have a second factor,
        ``totp_code`` are right and the account is neither locked nor disabled. Raises
        ``SignInRefused`` (``auth.failed``, ``auth.locked``, ``auth.disabled``) in the
        order of the module docstring. Counts, locks and records as it goes."""
        found = self._secrets(username) if _USERNAME.fullmatch(username) else None
        if found is None:
            self._passwords.dummy_verify(password)
            raise _failed()
        user, secrets_ = found
        if user.locked_at is not None:
            self._passwords.dummy_verify(password)
            raise _locked()
        right = True
        rehash: str | None = None
        try:
            rehash = self._passwords.verify(secrets_.password_hash, password).rehash
        except PasswordMismatch:
            right = False
        step: int | None = None
        if secrets_.totp_secret is not None:
            try:
                step = accepted_step(
                    secrets_.totp_secret, totp_code, now=now, last_step=secrets_.totp_last_step
                )
            except TotpRefused:
                right = False
        elif user.role.requires_second_factor:
            right = False  # a role that needs a second factor never signs in without one
        if not right:
            self._count_failure(user, now)
        if user.disabled_at is not None:
            raise SignInRefused("this account is disabled", code="auth.disabled")
        with self._database.transaction() as db:
            done = db.execute(
                "UPDATE users SET failed_attempts = 0, password_hash = ?, "
                "totp_last_step = COALESCE(?, totp_last_step) "
                "WHERE username = ? AND password_hash = ? AND locked_at IS NULL "
                "AND disabled_at IS NULL AND (? IS NULL OR totp_last_step IS NULL "
                "OR totp_last_step < ?)",
                (
                    rehash or secrets_.password_hash,
                    step,
                    username,
                    secrets_.password_hash,
                    step,
                    step,
                ),
            )
            raced = done.rowcount != 1
        if raced:
            self._count_failure(user, now)
        return self.get(username)

    def _count_failure(self, user: User, now: datetime) -> NoReturn:
        """Count one failed sign-in for ``user``, locking the account at the limit (and
        recording the lock); raises ``auth.failed``, or ``auth.locked`` when locked."""
        at = format_timestamp(now)
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT failed_attempts, locked_at FROM users WHERE username = ?",
                (user.username,),
            ).fetchone()
            if row is None:  # removed meanwhile: there is nobody left to lock
                raise _failed()
            failures, locked_at = row[0] + 1, row[1]
            locks = locked_at is None and failures >= self._max_failed
            db.execute(
                "UPDATE users SET failed_attempts = ?, locked_at = ? WHERE username = ?",
                (failures, at if locks else locked_at, user.username),
            )
            if locks:
                _record(db, UserAct.LOCK, user, SIGN_IN_ACTOR, at)
        if locks or locked_at is not None:
            raise _locked()
        raise _failed()

    # -- rows -------------------------------------------------------------------------

    @staticmethod
    def _get(db: sqlite3.Connection, username: str) -> User:
        row = db.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?",  # noqa: S608 - fixed columns
            (username,),
        ).fetchone()
        if row is None:
            raise UserRefused(f"there is no user {username}", code="users.unknown")
        return _user(row)

    def _secrets(self, username: str) -> tuple[User, _Secrets] | None:
        with self._database.reading() as db:
            row = db.execute(
                f"SELECT {_USER_COLUMNS}, password_hash, totp_secret, totp_last_step "  # noqa: S608
                "FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        if row is None:
            return None
        return _user(row[:8]), _Secrets(row[8], row[9], row[10])


def _failed() -> SignInRefused:
    return SignInRefused("the username, password or code is not right", code="auth.failed")


def _locked() -> SignInRefused:
    return SignInRefused(
        "this account is locked after repeated failed sign-ins; an administrator can reset it",
        code="auth.locked",
    )


def _record(db: sqlite3.Connection, act: UserAct, user: User, actor: str, at: str) -> None:
    db.execute(
        "INSERT INTO user_events (at, act, username, agency, role, actor) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (at, act.value, user.username, user.agency, user.role.value, actor),
    )
