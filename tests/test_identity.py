"""broker/identity: every check that can refuse, made to refuse, on a real SQLite file.

The password and sign-in tests use the production Argon2id parameters (a quarter of a
second a hash); the lockout, session and administration tests, where what a hash costs
is beside the point, use argon2-cffi's cheapest parameters so that the file stays fast.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import argon2
import pyotp
import pytest
from argon2.profiles import CHEAPEST

from broker.crypto.mac import MacKey
from broker.errors import KeyUnavailable, VerificationError
from broker.identity import passwords as passwords_module
from broker.identity.cookies import (
    COOKIE_NAME,
    CookieSigner,
    clear_cookie_header,
    cookie_key_path,
    load_cookie_key,
    set_cookie_header,
)
from broker.identity.csrf import (
    SIGN_IN_COOKIE_NAME,
    SIGN_IN_TOKEN_LIFETIME,
    SignInCsrf,
    check_csrf,
    clear_sign_in_cookie_header,
    sign_in_cookie_header,
)
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.errors import (
    CsrfRefused,
    PasswordRefused,
    SessionRefused,
    SignInRefused,
    UserRefused,
)
from broker.identity.passwords import (
    ARGON2_PARAMETERS,
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    PasswordMismatch,
    Passwords,
    Verified,
    check_password_policy,
)
from broker.identity.roles import Role
from broker.identity.sessions import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    SessionStore,
    StartedSession,
)
from broker.identity.totp import (
    STEP_SECONDS,
    TotpRefused,
    accepted_step,
    code_at,
    new_secret,
    provisioning_uri,
    step_at,
)
from broker.identity.users import UserAct, UserState, UserStore

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PASSWORD = "plum tree harbour lantern"  # noqa: S105 - a test user's
OTHER_PASSWORD = "quiet river copper kettle"  # noqa: S105
HOUSING = "housing.stoke-on-trent"
POLICE = "police.staffordshire"
ADMIN = "os:operator@host"
STEP = timedelta(seconds=STEP_SECONDS)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[IdentityDatabase]:
    with IdentityDatabase(identity_path(tmp_path / "data")) as db:
        yield db


@pytest.fixture
def users(database: IdentityDatabase) -> UserStore:
    """Production Argon2id parameters."""
    return UserStore(database)


@pytest.fixture
def cheap_users(database: IdentityDatabase) -> UserStore:
    return UserStore(database, passwords=Passwords(CHEAPEST))


@pytest.fixture
def sessions(database: IdentityDatabase) -> SessionStore:
    return SessionStore(database)


def refusal(exc: pytest.ExceptionInfo[BaseException]) -> str:
    return str(getattr(exc.value, "code", ""))


def refused_code(
    store: UserStore, username: str, password: str, code: str | None, *, now: datetime
) -> str:
    """The code of the ``SignInRefused`` that this sign-in raises."""
    with pytest.raises(SignInRefused) as exc:
        store.authenticate(username, password, code, now=now)
    return refusal(exc)


# -- passwords ------------------------------------------------------------------------


def test_hashes_are_argon2id_with_the_stated_parameters() -> None:
    stored = Passwords().hash(PASSWORD, username="j.smith")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert argon2.extract_parameters(stored) == ARGON2_PARAMETERS
    # RFC 9106's second recommended option, as argon2-cffi names it.
    assert argon2.profiles.RFC_9106_LOW_MEMORY == ARGON2_PARAMETERS
    # The unknown user's hash costs what a real one does.
    assert argon2.extract_parameters(passwords_module._DUMMY_HASH) == ARGON2_PARAMETERS
    assert PASSWORD not in stored


def test_verify_refuses_a_wrong_damaged_or_oversized_password_and_rehashes_old_ones() -> None:
    old = Passwords(CHEAPEST).hash(PASSWORD, username="j.smith")
    passwords = Passwords()
    verified = passwords.verify(old, PASSWORD)
    assert verified.rehash is not None
    assert argon2.extract_parameters(verified.rehash) == ARGON2_PARAMETERS
    assert "<new hash>" in repr(verified)
    assert passwords.verify(verified.rehash, PASSWORD).rehash is None
    for wrong in (OTHER_PASSWORD, PASSWORD + " ", "x" * (MAX_PASSWORD_CHARS + 1)):
        with pytest.raises(PasswordMismatch):
            Passwords(CHEAPEST).verify(old, wrong)
    with pytest.raises(PasswordMismatch):
        Passwords(CHEAPEST).verify("$argon2id$not-a-hash", PASSWORD)
    # The same characters from another keyboard (NFKC) are the same password.
    fullwidth = "\uff50\uff4c\uff55\uff4d tree harbour lantern"  # fullwidth "plum"
    Passwords(CHEAPEST).verify(old, fullwidth)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("x" * (MIN_PASSWORD_CHARS - 1), "password.too-short"),
        ("", "password.too-short"),
        ("x" * (MAX_PASSWORD_CHARS + 1), "password.too-long"),
        ("tab\tseparated words", "password.control-character"),
        ("nul\x00byte in the middle", "password.control-character"),
        ("delete\x7fcharacter here", "password.control-character"),
        ("c1 control \x85 character", "password.control-character"),
        ("line\nbreak in password", "password.control-character"),
        ("lone surrogate \udcff here", "password.control-character"),
        ("my name is J.Smith really", "password.contains-username"),
    ],
)
def test_password_policy_refuses(password: str, code: str) -> None:
    with pytest.raises(PasswordRefused) as exc:
        check_password_policy(password, username="j.smith")
    assert exc.value.code == code
    if password:
        assert password not in str(exc.value)


@pytest.mark.parametrize(
    "password",
    [
        "x" * MIN_PASSWORD_CHARS,
        "x" * MAX_PASSWORD_CHARS,
        "all lower case words are fine",  # no composition rules
        "mot de passe très long 🙂",
        "   spaces count too   ",
    ],
)
def test_password_policy_accepts(password: str) -> None:
    check_password_policy(password, username="j.smith")


def test_a_short_username_inside_a_password_is_not_refused() -> None:
    check_password_policy("mixed words ab cd ef", username="ab")


# -- TOTP -----------------------------------------------------------------------------

# RFC 6238 appendix B's SHA-1 secret ("12345678901234567890") as base32, and its
# vectors cut to our six digits.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # noqa: S105 - the RFC's


@pytest.mark.parametrize(
    ("unix", "code"),
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_totp_matches_rfc_6238_vectors(unix: int, code: str) -> None:
    assert code_at(RFC_SECRET, datetime.fromtimestamp(unix, UTC)) == code


def test_totp_window_and_reuse() -> None:
    secret = new_secret()
    assert len(secret) == 32
    step = step_at(NOW)
    for offset in (-1, 0, 1):
        assert accepted_step(secret, code_at(secret, NOW + offset * STEP), now=NOW, last_step=None)
    assert accepted_step(secret, code_at(secret, NOW), now=NOW, last_step=step - 1) == step
    refused = [
        (code_at(secret, NOW - 2 * STEP), None),  # expired
        (code_at(secret, NOW + 2 * STEP), None),  # not yet
        (code_at(secret, NOW), step),  # reused
        (code_at(secret, NOW - STEP), step),  # older than one already used
        (None, None),
        ("12345", None),
        ("1234567", None),
        ("abcdef", None),
        ("١٢٣٤٥٦", None),  # Arabic-Indic digits are not ASCII digits
        (" " + code_at(secret, NOW), None),
    ]
    for code, last in refused:
        with pytest.raises(TotpRefused):
            accepted_step(secret, code, now=NOW, last_step=last)
    with pytest.raises(TotpRefused):
        accepted_step("not a secret", "123456", now=NOW, last_step=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        step_at(NOW.replace(tzinfo=None))


def test_provisioning_uri_enrols_the_same_codes() -> None:
    secret = new_secret()
    uri = provisioning_uri(secret, username="igo.smith")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "secret": secret,
        "issuer": "MAPPA broker",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }
    app = pyotp.parse_uri(uri)
    assert isinstance(app, pyotp.TOTP)
    assert app.at(NOW) == code_at(secret, NOW)


# -- users: administration ------------------------------------------------------------


def test_roles_say_what_they_need_and_see() -> None:
    assert {r for r in Role if r.requires_second_factor} == {Role.AGENCY_ADMIN, Role.IG_OFFICER}
    assert {r for r in Role if not r.sees_message_content} == {Role.IG_OFFICER}
    assert {r for r in Role if r.sees_audit_ledger} == {Role.IG_OFFICER}


def test_add_gives_a_second_factor_where_the_role_needs_one(cheap_users: UserStore) -> None:
    plain = cheap_users.add(
        "j.smith", agency=HOUSING, role=Role.AGENCY_USER, password=PASSWORD, actor=ADMIN, now=NOW
    )
    assert plain.totp_secret is None
    assert plain.provisioning_uri is None
    assert not plain.user.second_factor
    for name, role in (("igo.smith", Role.IG_OFFICER), ("adm.jones", Role.AGENCY_ADMIN)):
        enrolled = cheap_users.add(
            name, agency=POLICE, role=role, password=PASSWORD, actor=ADMIN, now=NOW
        )
        assert enrolled.totp_secret is not None
        assert enrolled.user.second_factor
        assert enrolled.totp_secret not in repr(enrolled)
        assert enrolled.provisioning_uri is not None
        assert enrolled.provisioning_uri.startswith(f"otpauth://totp/MAPPA%20broker:{name}?")
    chosen = cheap_users.add(
        "c.ord",
        agency="coord.staffordshire",
        role=Role.COORDINATOR,
        password=PASSWORD,
        actor=ADMIN,
        now=NOW,
        totp=True,
    )
    assert chosen.user.second_factor
    listed = cheap_users.list()
    assert [u.username for u in listed] == ["adm.jones", "c.ord", "igo.smith", "j.smith"]
    assert {u.state for u in listed} == {UserState.ACTIVE}
    assert [u.username for u in cheap_users.list(agency=POLICE)] == ["adm.jones", "igo.smith"]


@pytest.mark.parametrize(
    ("username", "agency", "actor", "code"),
    [
        ("J.Smith", HOUSING, ADMIN, "users.invalid-username"),
        ("", HOUSING, ADMIN, "users.invalid-username"),
        (".hidden", HOUSING, ADMIN, "users.invalid-username"),
        ("x" * 101, HOUSING, ADMIN, "users.invalid-username"),
        ("j smith", HOUSING, ADMIN, "users.invalid-username"),
        ("j.smith", "Housing", ADMIN, "users.invalid-agency"),
        ("j.smith", "housing", ADMIN, "users.invalid-agency"),
        ("j.smith", HOUSING, "", "users.invalid-actor"),
        ("j.smith", HOUSING, "os:root\n@host", "users.invalid-actor"),
        ("j.smith", HOUSING, "x" * 201, "users.invalid-actor"),
    ],
)
def test_add_refuses(
    cheap_users: UserStore, username: str, agency: str, actor: str, code: str
) -> None:
    with pytest.raises(UserRefused) as exc:
        cheap_users.add(
            username, agency=agency, role=Role.AGENCY_USER, password=PASSWORD, actor=actor, now=NOW
        )
    assert exc.value.code == code
    assert cheap_users.list() == []
    assert cheap_users.history() == []


def test_add_refuses_a_duplicate_and_a_weak_password(cheap_users: UserStore) -> None:
    def add(username: str, password: str = PASSWORD) -> None:
        cheap_users.add(
            username, agency=HOUSING, role=Role.AGENCY_USER, password=password, actor=ADMIN, now=NOW
        )

    add("j.smith")
    with pytest.raises(UserRefused) as exc:
        add("j.smith")
    assert exc.value.code == "users.exists"
    with pytest.raises(PasswordRefused) as weak:
        add("k.smith", "short")
    assert weak.value.code == "password.too-short"
    assert [e.username for e in cheap_users.history()] == ["j.smith"]


def test_disable_and_reset_refuse_what_they_cannot_do(cheap_users: UserStore) -> None:
    for act in (
        lambda: cheap_users.disable("nobody", actor=ADMIN, now=NOW),
        lambda: cheap_users.reset("nobody", password=PASSWORD, actor=ADMIN, now=NOW),
        lambda: cheap_users.get("nobody"),
    ):
        with pytest.raises(UserRefused) as exc:
            act()
        assert exc.value.code == "users.unknown"
    assert cheap_users.find("nobody") is None
    cheap_users.add(
        "j.smith", agency=HOUSING, role=Role.AGENCY_USER, password=PASSWORD, actor=ADMIN, now=NOW
    )
    with pytest.raises(UserRefused) as bad_actor:
        cheap_users.disable("j.smith", actor="", now=NOW)
    assert bad_actor.value.code == "users.invalid-actor"
    assert cheap_users.disable("j.smith", actor=ADMIN, now=NOW).state is UserState.DISABLED
    with pytest.raises(UserRefused) as twice:
        cheap_users.disable("j.smith", actor=ADMIN, now=NOW)
    assert twice.value.code == "users.disabled"
    with pytest.raises(UserRefused) as reset:
        cheap_users.reset("j.smith", password=OTHER_PASSWORD, actor=ADMIN, now=NOW)
    assert reset.value.code == "users.disabled"


def test_acts_are_recorded_without_secrets_and_the_record_is_append_only(
    cheap_users: UserStore, database: IdentityDatabase
) -> None:
    added = cheap_users.add(
        "igo.smith", agency=POLICE, role=Role.IG_OFFICER, password=PASSWORD, actor=ADMIN, now=NOW
    )
    reset = cheap_users.reset(
        "igo.smith", password=OTHER_PASSWORD, actor="console:adm.jones", now=NOW + STEP
    )
    assert reset.totp_secret not in (None, added.totp_secret)
    cheap_users.disable("igo.smith", actor=ADMIN, now=NOW + 2 * STEP)
    events = cheap_users.history(username="igo.smith")
    assert [(e.act, e.actor) for e in events] == [
        (UserAct.ADD, ADMIN),
        (UserAct.RESET, "console:adm.jones"),
        (UserAct.DISABLE, ADMIN),
    ]
    assert {(e.agency, e.role) for e in events} == {(POLICE, Role.IG_OFFICER)}
    assert cheap_users.history(username="someone.else") == []
    raw = sqlite3.connect(database.path)
    try:
        dumped = "\n".join(raw.iterdump())
        events_dump = [line for line in dumped.splitlines() if "user_events" in line]
        for secret in (PASSWORD, OTHER_PASSWORD, added.totp_secret, reset.totp_secret, "$argon2"):
            assert secret
            assert all(secret not in line for line in events_dump)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE user_events SET actor = 'nobody'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM user_events")
    finally:
        raw.close()


def test_the_database_and_its_companions_are_private(
    cheap_users: UserStore, database: IdentityDatabase
) -> None:
    cheap_users.add(
        "j.smith", agency=HOUSING, role=Role.AGENCY_USER, password=PASSWORD, actor=ADMIN, now=NOW
    )
    path = database.path
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert file.exists()
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # A copy left readable by others is made private when next opened.
    path.chmod(0o644)
    IdentityDatabase(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- users: signing in ----------------------------------------------------------------


def add_user(store: UserStore, username: str, role: Role = Role.AGENCY_USER) -> str | None:
    """Adds ``username``; returns their TOTP secret, if any."""
    agency = POLICE if role is not Role.AGENCY_USER else HOUSING
    return store.add(
        username, agency=agency, role=role, password=PASSWORD, actor=ADMIN, now=NOW
    ).totp_secret


def test_sign_in_with_the_right_password(users: UserStore) -> None:
    add_user(users, "j.smith")
    user = users.authenticate("j.smith", PASSWORD, None, now=NOW)
    assert (user.username, user.agency, user.role) == ("j.smith", HOUSING, Role.AGENCY_USER)
    assert user.state is UserState.ACTIVE


def test_wrong_password_and_unknown_users_get_the_same_refusal(users: UserStore) -> None:
    add_user(users, "j.smith")
    messages = set()
    for username, password in (
        ("j.smith", OTHER_PASSWORD),
        ("nobody", PASSWORD),
        ("Not A Username", PASSWORD),
        ("j.smith", "x" * 10_000),
    ):
        with pytest.raises(SignInRefused) as exc:
            users.authenticate(username, password, None, now=NOW)
        assert exc.value.code == "auth.failed"
        messages.add(str(exc.value))
    assert len(messages) == 1
    # Two failures counted against the real account, none anywhere else.
    assert users.get("j.smith").failed_attempts == 2


def test_second_factor_wrong_missing_expired_or_reused_is_refused(users: UserStore) -> None:
    secret = add_user(users, "igo.smith", Role.IG_OFFICER)
    assert secret is not None
    refused = [
        (PASSWORD, None),  # missing
        (PASSWORD, "000000" if code_at(secret, NOW) != "000000" else "111111"),  # wrong
        (PASSWORD, code_at(secret, NOW - 2 * STEP)),  # expired
        (OTHER_PASSWORD, code_at(secret, NOW)),  # right code, wrong password
    ]
    for password, code in refused:
        assert refused_code(users, "igo.smith", password, code, now=NOW) == "auth.failed"
    assert users.authenticate("igo.smith", PASSWORD, code_at(secret, NOW), now=NOW)
    assert (
        refused_code(users, "igo.smith", PASSWORD, code_at(secret, NOW), now=NOW + STEP)
        == "auth.failed"
    )
    # The next step's code is new, and a success clears the count.
    user = users.authenticate("igo.smith", PASSWORD, code_at(secret, NOW + STEP), now=NOW + STEP)
    assert user.failed_attempts == 0


def test_a_role_that_needs_a_second_factor_never_signs_in_without_one(
    cheap_users: UserStore, database: IdentityDatabase
) -> None:
    add_user(cheap_users, "adm.jones", Role.AGENCY_ADMIN)
    # A row damaged or written by hand without its secret: refused, not let through.
    with database.transaction() as db:
        db.execute("UPDATE users SET totp_secret = NULL WHERE username = 'adm.jones'")
    assert refused_code(cheap_users, "adm.jones", PASSWORD, None, now=NOW) == "auth.failed"


def test_five_failures_lock_until_reset(cheap_users: UserStore) -> None:
    add_user(cheap_users, "j.smith")
    codes = []
    for _ in range(5):
        with pytest.raises(SignInRefused) as exc:
            cheap_users.authenticate("j.smith", OTHER_PASSWORD, None, now=NOW)
        codes.append(refusal(exc))
    assert codes == ["auth.failed"] * 4 + ["auth.locked"]
    locked = cheap_users.get("j.smith")
    assert (locked.state, locked.locked_at) == (UserState.LOCKED, "2026-11-23T12:00:00.000Z")
    # Locked stays locked, to the right password too, and says so whatever is presented.
    for password in (PASSWORD, OTHER_PASSWORD):
        assert (
            refused_code(cheap_users, "j.smith", password, None, now=NOW + timedelta(days=1))
            == "auth.locked"
        )
    lock = cheap_users.history(username="j.smith")[-1]
    assert (lock.act, lock.actor) == (UserAct.LOCK, "sign-in")
    assert len(cheap_users.history(username="j.smith")) == 2  # added, locked once
    reset = cheap_users.reset("j.smith", password=OTHER_PASSWORD, actor=ADMIN, now=NOW)
    assert (reset.user.state, reset.user.failed_attempts) == (UserState.ACTIVE, 0)
    assert refused_code(cheap_users, "j.smith", PASSWORD, None, now=NOW) == "auth.failed"
    assert cheap_users.authenticate("j.smith", OTHER_PASSWORD, None, now=NOW).failed_attempts == 0


def test_only_consecutive_failures_lock(database: IdentityDatabase) -> None:
    store = UserStore(database, passwords=Passwords(CHEAPEST), max_failed_attempts=2)
    add_user(store, "j.smith")
    with pytest.raises(SignInRefused):
        store.authenticate("j.smith", OTHER_PASSWORD, None, now=NOW)
    store.authenticate("j.smith", PASSWORD, None, now=NOW)
    assert refused_code(store, "j.smith", OTHER_PASSWORD, None, now=NOW) == "auth.failed"
    assert refused_code(store, "j.smith", OTHER_PASSWORD, None, now=NOW) == "auth.locked"
    with pytest.raises(ValueError, match="at least one attempt"):
        UserStore(database, max_failed_attempts=0)


def test_a_disabled_user_is_refused_and_still_counts_failures(cheap_users: UserStore) -> None:
    add_user(cheap_users, "j.smith")
    cheap_users.disable("j.smith", actor=ADMIN, now=NOW)
    assert refused_code(cheap_users, "j.smith", PASSWORD, None, now=NOW) == "auth.disabled"
    assert refused_code(cheap_users, "j.smith", OTHER_PASSWORD, None, now=NOW) == "auth.failed"
    assert cheap_users.get("j.smith").failed_attempts == 1


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(
    database: IdentityDatabase, users: UserStore
) -> None:
    add_user(UserStore(database, passwords=Passwords(CHEAPEST)), "j.smith")
    users.authenticate("j.smith", PASSWORD, None, now=NOW)
    with database.reading() as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert argon2.extract_parameters(stored) == ARGON2_PARAMETERS


class Meanwhile(Passwords):
    """Verifies as ``Passwords`` does, then runs ``act`` once: another request's work,
    done between this sign-in's checks and its update."""

    def __init__(self, act: Callable[[], object]) -> None:
        super().__init__(CHEAPEST)
        self._act: Callable[[], object] | None = act

    def verify(self, stored_hash: str, password: str) -> Verified:
        verified = super().verify(stored_hash, password)
        act, self._act = self._act, None
        if act is not None:
            act()
        return verified


def test_one_code_used_twice_at_once_signs_in_once(
    cheap_users: UserStore, database: IdentityDatabase
) -> None:
    secret = add_user(cheap_users, "igo.smith", Role.IG_OFFICER)
    assert secret is not None
    code = code_at(secret, NOW)
    other_request = partial(cheap_users.authenticate, "igo.smith", PASSWORD, code, now=NOW)
    racing = UserStore(database, passwords=Meanwhile(other_request))
    assert refused_code(racing, "igo.smith", PASSWORD, code, now=NOW) == "auth.failed"
    assert cheap_users.get("igo.smith").failed_attempts == 1


def test_a_sign_in_that_races_a_reset_fails(
    cheap_users: UserStore, database: IdentityDatabase
) -> None:
    add_user(cheap_users, "j.smith")
    reset = partial(cheap_users.reset, "j.smith", password=OTHER_PASSWORD, actor=ADMIN, now=NOW)
    racing = UserStore(database, passwords=Meanwhile(reset))
    assert refused_code(racing, "j.smith", PASSWORD, None, now=NOW) == "auth.failed"
    assert cheap_users.authenticate("j.smith", OTHER_PASSWORD, None, now=NOW).username == "j.smith"


# -- sessions -------------------------------------------------------------------------


def signed_in(
    store: UserStore, sessions: SessionStore, username: str = "j.smith"
) -> StartedSession:
    add_user(store, username)
    return sessions.start(store.get(username), now=NOW)


def test_a_session_is_resumed_and_only_its_hash_is_stored(
    cheap_users: UserStore, sessions: SessionStore, database: IdentityDatabase
) -> None:
    started = signed_in(cheap_users, sessions)
    assert started.session_id not in repr(started)
    assert started.session.csrf_token not in repr(started.session)
    session = sessions.resume(started.session_id, now=NOW + timedelta(minutes=10))
    assert (session.username, session.agency, session.role) == (
        "j.smith",
        HOUSING,
        Role.AGENCY_USER,
    )
    assert session.expires_at == NOW + timedelta(minutes=25)
    assert session.csrf_token == started.session.csrf_token
    with database.reading() as db:
        rows = db.execute("SELECT * FROM sessions").fetchall()
    assert len(rows) == 1
    assert started.session_id not in repr(rows)
    other = sessions.start(cheap_users.get("j.smith"), now=NOW)
    assert other.session_id != started.session_id
    assert other.session.csrf_token != started.session.csrf_token


def test_idle_timeout(cheap_users: UserStore, sessions: SessionStore) -> None:
    started = signed_in(cheap_users, sessions)
    almost = IDLE_TIMEOUT - timedelta(seconds=1)
    sessions.resume(started.session_id, now=NOW + almost)
    # Use moves the idle clock on: 15 minutes after the last use, not after sign-in.
    sessions.resume(started.session_id, now=NOW + 2 * almost)
    with pytest.raises(SessionRefused) as exc:
        sessions.resume(started.session_id, now=NOW + 2 * almost + IDLE_TIMEOUT)
    assert exc.value.code == "session.expired"
    # Ended: it does not come back, whenever it is tried.
    with pytest.raises(SessionRefused) as gone:
        sessions.resume(started.session_id, now=NOW + almost)
    assert gone.value.code == "session.invalid"


def test_absolute_timeout(cheap_users: UserStore, sessions: SessionStore) -> None:
    started = signed_in(cheap_users, sessions)
    at = NOW
    while at + timedelta(minutes=10) < NOW + ABSOLUTE_TIMEOUT:
        at += timedelta(minutes=10)
        sessions.resume(started.session_id, now=at)
    with pytest.raises(SessionRefused) as exc:
        sessions.resume(started.session_id, now=NOW + ABSOLUTE_TIMEOUT)
    assert exc.value.code == "session.expired"


@pytest.mark.parametrize(
    "session_id",
    ["", "x" * 43, "not a session id", "x" * 10_000, "é" * 43],
)
def test_an_unknown_or_malformed_session_is_refused(
    sessions: SessionStore, session_id: str
) -> None:
    with pytest.raises(SessionRefused) as exc:
        sessions.resume(session_id, now=NOW)
    assert exc.value.code == "session.invalid"
    assert not sessions.end(session_id)


def test_sign_out_disable_reset_and_lock_end_sessions(
    database: IdentityDatabase, sessions: SessionStore
) -> None:
    store = UserStore(database, passwords=Passwords(CHEAPEST), max_failed_attempts=1)
    mine = signed_in(store, sessions, "a.user")
    assert sessions.end(mine.session_id)
    assert not sessions.end(mine.session_id)
    disabled = signed_in(store, sessions, "b.user")
    store.disable("b.user", actor=ADMIN, now=NOW)
    reset = signed_in(store, sessions, "c.user")
    store.reset("c.user", password=OTHER_PASSWORD, actor=ADMIN, now=NOW)
    locked = signed_in(store, sessions, "d.user")
    with pytest.raises(SignInRefused):
        store.authenticate("d.user", OTHER_PASSWORD, None, now=NOW)
    everywhere = signed_in(store, sessions, "e.user")
    sessions.start(store.get("e.user"), now=NOW)
    assert sessions.end_all("e.user") == 2
    for started in (mine, disabled, reset, locked, everywhere):
        with pytest.raises(SessionRefused) as exc:
            sessions.resume(started.session_id, now=NOW)
        assert exc.value.code == "session.invalid"
    # Nobody who cannot sign in gets a session.
    for username in ("b.user", "d.user"):
        with pytest.raises(SessionRefused):
            sessions.start(store.get(username), now=NOW)


def test_prune_removes_timed_out_sessions(cheap_users: UserStore, sessions: SessionStore) -> None:
    signed_in(cheap_users, sessions)
    assert sessions.prune(now=NOW + timedelta(minutes=1)) == 0
    assert sessions.prune(now=NOW + IDLE_TIMEOUT) == 1


def test_timeouts_must_make_sense(database: IdentityDatabase) -> None:
    for idle, absolute in (
        (timedelta(0), ABSOLUTE_TIMEOUT),
        (timedelta(hours=9), ABSOLUTE_TIMEOUT),
    ):
        with pytest.raises(ValueError, match="timeouts"):
            SessionStore(database, idle_timeout=idle, absolute_timeout=absolute)


def test_csrf_token_must_be_the_sessions_own(
    cheap_users: UserStore, sessions: SessionStore
) -> None:
    mine = signed_in(cheap_users, sessions, "a.user").session
    theirs = signed_in(cheap_users, sessions, "b.user").session
    check_csrf(mine, mine.csrf_token)
    for presented in (None, "", theirs.csrf_token, mine.csrf_token[:-1], mine.csrf_token + "x"):
        with pytest.raises(CsrfRefused) as exc:
            check_csrf(mine, presented)
        assert exc.value.code == "csrf.invalid"
    with pytest.raises(CsrfRefused):
        check_csrf(mine, "é" * 43)


def test_sign_in_form_token_is_a_signed_double_submit(tmp_path: Path) -> None:
    csrf = SignInCsrf.for_data_dir(tmp_path / "data")
    token = csrf.issue(now=NOW)
    csrf.check(token, token, now=NOW)
    csrf.check(token, token, now=NOW + SIGN_IN_TOKEN_LIFETIME - timedelta(seconds=1))
    # Issued by another process on the same data directory: the same key.
    SignInCsrf.for_data_dir(tmp_path / "data").check(token, token, now=NOW)
    other = csrf.issue(now=NOW)
    nonce, issued, tag = token.split(".")
    later = f"{nonce}.{int(issued) + 1000}.{tag}"  # the time moved, the tag kept
    foreign = SignInCsrf(MacKey.generate()).issue(now=NOW)
    refused = [
        (None, token, NOW),
        (token, None, NOW),
        (token, other, NOW),  # a pair that does not match
        (other, token, NOW),
        (later, later, NOW),
        (foreign, foreign, NOW),  # another key's
        ("x" * 500, "x" * 500, NOW),
        ("", "", NOW),
        (token, token, NOW + SIGN_IN_TOKEN_LIFETIME),  # expired
        (token, token, NOW - timedelta(minutes=5)),  # issued in the future
    ]
    for cookie, field, when in refused:
        with pytest.raises(CsrfRefused) as exc:
            csrf.check(cookie, field, now=when)
        assert exc.value.code == "csrf.invalid"
    # A session cookie's tag is no sign-in token, though both use the one key.
    session_value = CookieSigner.for_data_dir(tmp_path / "data").sign("A" * 43)
    with pytest.raises(CsrfRefused):
        csrf.check(session_value, session_value, now=NOW)
    header = sign_in_cookie_header(token)
    assert header.startswith(f"{SIGN_IN_COOKIE_NAME}={token}; Max-Age=3600;")
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= {
        a.strip() for a in header.split(";")
    }
    assert "Max-Age=0" in clear_sign_in_cookie_header()
    with pytest.raises(ValueError, match="some time"):
        SignInCsrf(MacKey.generate(), lifetime=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        csrf.issue(now=NOW.replace(tzinfo=None))


# -- cookies --------------------------------------------------------------------------


def test_cookie_round_trip_and_every_forgery_refused(tmp_path: Path) -> None:
    signer = CookieSigner.for_data_dir(tmp_path / "data")
    session_id = "A" * 43
    value = signer.sign(session_id)
    assert signer.unsign(value) == session_id
    # The same key file, read again by another process, takes the same cookies.
    assert CookieSigner.for_data_dir(tmp_path / "data").unsign(value) == session_id
    ident, tag = value.split(".")
    flipped_tag = tag[:-2] + ("A" if tag[-2] != "A" else "B") + tag[-1]
    # A 32-byte tag leaves two spare bits in its last character, zero when canonical:
    # setting one decodes to the same bytes, and is refused all the same.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    spare = tag[:-1] + alphabet[alphabet.index(tag[-1]) + 1]
    forged = [
        None,
        "",
        session_id,
        f"{'B' * 43}.{tag}",
        f"{ident}.{flipped_tag}",
        value + "A",
        "x" * 10_000,
        CookieSigner(MacKey.generate()).sign(session_id),
        f"{ident}.{'=' * 43}",
        f"{ident}.{spare}",
    ]
    for candidate in forged:
        with pytest.raises(SessionRefused) as exc:
            signer.unsign(candidate)
        assert exc.value.code == "session.invalid"


def test_cookie_key_is_private_and_checked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_cookie_key(data)
    path = cookie_key_path(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert [p.name for p in data.iterdir()] == [path.name]  # no staging file left
    path.chmod(0o644)
    load_cookie_key(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for damaged in (b"short", b"x" * 33):
        path.write_bytes(damaged)
        with pytest.raises(KeyUnavailable, match="cookie key"):
            load_cookie_key(data)
    path.unlink()
    path.mkdir()
    with pytest.raises(KeyUnavailable, match="cannot read"):
        load_cookie_key(data)


def test_cookie_attributes() -> None:
    header = set_cookie_header("v")
    attributes = [a.strip() for a in header.split(";")]
    assert attributes[0] == f"{COOKIE_NAME}=v"
    assert COOKIE_NAME.startswith("__Host-")
    assert set(attributes[1:]) == {
        f"Max-Age={int(ABSOLUTE_TIMEOUT.total_seconds())}",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    }
    assert "Max-Age=0" in clear_cookie_header()
    assert "Domain" not in header


def test_mac_key_cannot_leak_or_be_misused() -> None:
    key = MacKey.generate()
    assert repr(key) == "<MacKey>"
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(KeyUnavailable):
        MacKey(b"short")
    tag = key.tag(b"one-purpose", b"message")
    key.verify(b"one-purpose", b"message", tag)
    for domain, message, candidate in (
        (b"another-purpose", b"message", tag),
        (b"one-purpose", b"message!", tag),
        (b"one-purpose", b"message", tag[:-1]),
        (b"one-purpose", b"x" * 2000, tag),
    ):
        with pytest.raises(VerificationError):
            key.verify(domain, message, candidate)
    with pytest.raises(ValueError, match="domain"):
        key.tag(b"with\x00nul", b"message")
    text = key.text_tag(b"one-purpose", b"message")
    key.verify_text(b"one-purpose", b"message", text)
    for bad in ("", text[:-1], text + "A", "=" * 43, "+" * 43, "é" * 43):
        with pytest.raises(VerificationError):
            key.verify_text(b"one-purpose", b"message", bad)


def test_the_identity_file_is_named_for_the_data_directory(tmp_path: Path) -> None:
    assert identity_path(tmp_path) == tmp_path / "users.sqlite"
    assert not os.path.exists(identity_path(tmp_path))
