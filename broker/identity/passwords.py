"""Passwords: Argon2id hashes (argon2-cffi), a policy after NIST SP 800-63B, and a
verification that costs the same whether or not the user exists.

Hashing. Argon2id with RFC 9106 §4's SECOND RECOMMENDED option: t=3 passes over m=64 MiB
with p=4 lanes, a 16-byte random salt and a 32-byte tag (argon2-cffi's
``profiles.RFC_9106_LOW_MEMORY``, spelt out below so that a library upgrade cannot change
it unseen). The FIRST RECOMMENDED option needs 2 GiB per sign-in, too much for a console
that several people use at once; OWASP's minimum (m=19 MiB, t=2, p=1) is weaker than this.
About a quarter of a second per hash on two cores. A hash is the PHC string
(``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<tag>``): it carries its own parameters, so a
hash made with older ones still verifies, and ``verify`` hands back a replacement made
with these.

Text. A password is normalised to NFKC before it is checked or hashed (SP 800-63B
§3.1.1.2), so the same characters typed on two keyboards are the same password; then it
is hashed as UTF-8.

Policy (``check_password_policy``), SP 800-63B style: a length, nothing else about its
composition (no "one digit, one capital" rules, which make passwords worse, not
stronger), no control characters (which no keyboard types and which break forms and
logs), and not the username. No list of breached passwords is checked: the product
ships none.

Unknown users. ``dummy_verify`` runs one full Argon2id verification against a hash of
something nobody knows, with the same parameters, so that a sign-in as a user who does
not exist takes as long as one with a wrong password.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

from broker.errors import MappaError
from broker.identity.errors import PasswordRefused

ARGON2_PARAMETERS = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=3,
    memory_cost=65536,  # KiB: 64 MiB
    parallelism=4,
)
# SP 800-63B asks for at least 8 (15 where a password is the only factor); 12 for
# everyone here, since most of our users have no second factor.
MIN_PASSWORD_CHARS = 12
# SP 800-63B asks that at least 64 be allowed. A bound above that keeps what Argon2 is
# given small (at most 1 KiB of UTF-8): a longer password is refused when set, and at
# sign-in is checked as a wrong one, at the same cost.
MAX_PASSWORD_CHARS = 256
# A username shorter than this may well occur in a good password by chance.
_MIN_USERNAME_IN_PASSWORD = 3
# An Argon2id hash of 32 random bytes nobody kept, with ARGON2_PARAMETERS (a test checks
# that the parameters match): what an unknown user's password is verified against.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$8NJg8wBiEAml/QgpfLCFkA$"
    "8OJqcBdgMTvz+uGN2BThHP7ovjQENEezDtE5Vh47NZw"
)


class PasswordMismatch(MappaError):
    """The password is not the one hashed (or the stored hash is damaged). The user store
    turns it into ``auth.failed``; it never reaches a person as such."""

    code = "password.mismatch"


@dataclass(frozen=True)
class Verified:
    """A password that matched. ``rehash`` is a new hash of it, made with the current
    parameters, when the stored one was made with others; else None."""

    rehash: str | None

    def __repr__(self) -> str:
        return f"Verified(rehash={'<new hash>' if self.rehash else None})"


def normalised(password: str) -> str:
    """``password`` as it is checked and hashed: NFKC."""
    return unicodedata.normalize("NFKC", password)


def _encoded(password: str) -> bytes:
    # "surrogatepass": text from a terminal that was not UTF-8 arrives with lone
    # surrogates; it must still hash (to something that matches nothing) at sign-in.
    return normalised(password).encode("utf-8", "surrogatepass")


def check_password_policy(password: str, *, username: str) -> None:
    """Returns nothing if ``password`` may be set for ``username``; raises
    ``PasswordRefused`` naming the rule it breaks (never quoting it). In order:
    ``password.control-character`` (a control character, or text that is not text:
    a lone surrogate), ``password.too-short`` (fewer than ``MIN_PASSWORD_CHARS``
    characters after NFKC), ``password.too-long`` (more than ``MAX_PASSWORD_CHARS``),
    ``password.contains-username`` (holds the username, in any case)."""
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in password):
        raise PasswordRefused(
            "a password may not hold control characters (a tab, a line break, ...)",
            code="password.control-character",
        )
    text = normalised(password)
    if len(text) < MIN_PASSWORD_CHARS:
        raise PasswordRefused(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters; "
            "a few unrelated words make a good one",
            code="password.too-short",
        )
    if len(text) > MAX_PASSWORD_CHARS:
        raise PasswordRefused(
            f"a password may have at most {MAX_PASSWORD_CHARS} characters",
            code="password.too-long",
        )
    name = username.casefold()
    if len(name) >= _MIN_USERNAME_IN_PASSWORD and name in text.casefold():
        raise PasswordRefused(
            "a password may not contain the username", code="password.contains-username"
        )


class Passwords:
    """Hashes and verifies passwords with fixed Argon2id parameters (module docstring).
    Safe to share between threads."""

    def __init__(self, parameters: Parameters = ARGON2_PARAMETERS) -> None:
        self._hasher = PasswordHasher.from_parameters(parameters)
        self._dummy = (
            _DUMMY_HASH if parameters == ARGON2_PARAMETERS else self._hasher.hash(b"\x00" * 32)
        )

    def hash(self, password: str, *, username: str) -> str:
        """The PHC hash of ``password`` for ``username``, after ``check_password_policy``
        (which raises ``PasswordRefused``)."""
        check_password_policy(password, username=username)
        return self._hasher.hash(_encoded(password))

    def verify(self, stored_hash: str, password: str) -> Verified:
        """Returns ``Verified`` if ``password`` is the one ``stored_hash`` was made from;
        raises ``PasswordMismatch`` if not, if the stored hash is damaged, or if the
        password is longer than any that could have been set (checked at the same
        cost as a wrong one)."""
        if len(password) > MAX_PASSWORD_CHARS:
            self.dummy_verify("")
            raise PasswordMismatch("the password does not match")
        try:
            self._hasher.verify(stored_hash, _encoded(password))
        except (VerificationError, InvalidHashError):
            raise PasswordMismatch("the password does not match") from None
        needs = self._hasher.check_needs_rehash(stored_hash)
        return Verified(self._hasher.hash(_encoded(password)) if needs else None)

    def dummy_verify(self, password: str) -> None:
        """Spend what one verification costs, on a hash that matches no password; returns
        nothing. For a sign-in as a user who does not exist, or may not sign in."""
        try:
            self._hasher.verify(self._dummy, _encoded(password[:MAX_PASSWORD_CHARS]))
        except (VerificationError, InvalidHashError):
            return
