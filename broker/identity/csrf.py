"""CSRF tokens: the session's, for every form behind sign-in, and one for the sign-in
form itself, which is served before there is a session.

Behind sign-in: each session has its own random token (``Session.csrf_token``,
``broker.identity.sessions``), kept server-side. The console puts it in a hidden field of
every form and calls ``check_csrf(session, presented)`` on every request that changes
something.

The sign-in form (against login CSRF: another site signing a browser in as the
attacker): a signed double-submit token. ``SignInCsrf.issue`` makes a value
``<nonce>.<issued, ms since the epoch>.<tag>``, the tag being HMAC-SHA-256 under the
data directory's cookie key (``broker.identity.cookies``) of ``"mappa-sign-in-csrf-v1"
|| 0x00 || <nonce>.<issued>``. The console sets it as the ``__Host-mappa-sign-in``
cookie (``sign_in_cookie_header``) and puts the same value in the form. On the POST,
``SignInCsrf.check`` requires, in order (each refusal ``CsrfRefused``, ``csrf.invalid``):

1. both the cookie and the field, each well-formed;
2. the same value in both (compared in constant time);
3. a tag that checks under the key;
4. issued no later than ``now`` (allowing ``CLOCK_SKEW``) and less than
   ``SIGN_IN_TOKEN_LIFETIME`` (1 h) before it.

Another site can neither read nor set a ``__Host-`` cookie of ours, so it cannot make a
pair that matches; the tag keeps a cookie planted some other way from being of use.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.crypto.mac import MacKey
from broker.errors import VerificationError
from broker.identity.cookies import cookie_header, load_cookie_key
from broker.identity.errors import CsrfRefused
from broker.identity.sessions import RANDOM_ID_PATTERN, Session

SIGN_IN_COOKIE_NAME = "__Host-mappa-sign-in"
# Long enough to read the form and find the authenticator; short enough to be no asset.
SIGN_IN_TOKEN_LIFETIME = timedelta(hours=1)
# Issued "in the future" by this much is still taken: servers behind one balancer drift.
CLOCK_SKEW = timedelta(seconds=60)
NONCE_BYTES = 32
_DOMAIN = b"mappa-sign-in-csrf-v1"
# 43 + 1 + at most 13 digits (ms since the epoch, enough until the year 2286) + 1 + 43;
# a time past the calendar's end cannot be written in 13 digits.
MAX_SIGN_IN_TOKEN_CHARS = 101
_SIGN_IN_TOKEN = re.compile(r"([A-Za-z0-9_-]{43}\.[0-9]{1,13})\.([A-Za-z0-9_-]{43})")
_SESSION_TOKEN = re.compile(RANDOM_ID_PATTERN)


def check_csrf(session: Session, presented: str | None) -> None:
    """Returns nothing if ``presented`` is ``session``'s CSRF token; raises
    ``CsrfRefused`` (``csrf.invalid``) if it is missing or any other value. Compared in
    constant time."""
    if presented is None or _SESSION_TOKEN.fullmatch(presented) is None:
        raise CsrfRefused("the form's CSRF token is missing or malformed; reload the page")
    if not hmac.compare_digest(presented.encode("ascii"), session.csrf_token.encode("ascii")):
        raise CsrfRefused("the form's CSRF token is not this session's; reload the page")


class TimedSigner:
    """Values ``<fields>.<issued, ms since the epoch>.<tag>``, the tag HMAC-SHA-256
    under ``key`` of ``domain || 0x00 || <fields>.<issued>``, good for ``lifetime``: the
    sign-in form's token (``SignInCsrf``) and a pending identity-provider sign-in
    (``broker.identity.oidc_state``). Parsing ``<fields>`` is the caller's."""

    def __init__(self, key: MacKey, domain: bytes, lifetime: timedelta) -> None:
        self._key = key
        self._domain = domain
        self.lifetime = lifetime

    def seal(self, fields: str, issued: datetime) -> str:
        """``fields`` (ASCII, dot-separated) with ``issued`` (to the millisecond),
        signed."""
        if issued.tzinfo is None:
            raise ValueError("a signed value's time must be timezone-aware")
        signed = f"{fields}.{int(issued.timestamp() * 1000)}"
        return f"{signed}.{self._key.text_tag(self._domain, signed.encode('ascii'))}"

    def issued(self, signed: str, tag: str, *, now: datetime) -> datetime | None:
        """When ``signed`` (``<fields>.<issued>``, well-formed) was issued, if ``tag``
        checks under the key and that was no later than ``now`` (allowing
        ``CLOCK_SKEW``) and less than ``lifetime`` before it; ``None`` otherwise."""
        try:
            self._key.verify_text(self._domain, signed.encode("ascii"), tag)
        except VerificationError:
            return None
        issued = datetime.fromtimestamp(int(signed.rsplit(".", 1)[1]) / 1000, UTC)
        if not now - self.lifetime < issued <= now + CLOCK_SKEW:
            return None
        return issued


class SignInCsrf:
    """Issues and checks the sign-in form's token (module docstring)."""

    def __init__(self, key: MacKey, *, lifetime: timedelta = SIGN_IN_TOKEN_LIFETIME) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("a sign-in token must live for some time")
        self._signer = TimedSigner(key, _DOMAIN, lifetime)
        self.lifetime = lifetime

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> SignInCsrf:
        """With ``data_dir``'s cookie key (``broker.identity.cookies.load_cookie_key``)."""
        return cls(load_cookie_key(data_dir))

    def issue(self, *, now: datetime) -> str:
        """A new token issued at ``now``: the sign-in cookie's value and the form's."""
        return self._signer.seal(secrets.token_urlsafe(NONCE_BYTES), now)

    def check(self, cookie_value: str | None, presented: str | None, *, now: datetime) -> None:
        """Returns nothing if the sign-in cookie's value and the form's field are one
        token this key issued, within its lifetime at ``now``; raises ``CsrfRefused``
        (``csrf.invalid``) otherwise, in the order of the module docstring."""
        cookie, field = _parsed(cookie_value), _parsed(presented)
        if not hmac.compare_digest(cookie.group(0).encode(), field.group(0).encode()):
            raise _sign_in_refused()
        signed, tag = cookie.groups()
        if self._signer.issued(signed, tag, now=now) is None:
            raise _sign_in_refused()


def _sign_in_refused() -> CsrfRefused:
    return CsrfRefused("the sign-in form has expired or was not ours; reload the page")


def _parsed(value: str | None) -> re.Match[str]:
    match = None
    if value is not None and len(value) <= MAX_SIGN_IN_TOKEN_CHARS:
        match = _SIGN_IN_TOKEN.fullmatch(value)
    if match is None:
        raise _sign_in_refused()
    return match


def sign_in_cookie_header(value: str, *, lifetime: timedelta = SIGN_IN_TOKEN_LIFETIME) -> str:
    """The ``Set-Cookie`` header value for the sign-in form's token (``SignInCsrf.issue``),
    with the session cookie's attributes."""
    return cookie_header(SIGN_IN_COOKIE_NAME, value, max_age=lifetime)


def clear_sign_in_cookie_header() -> str:
    """The ``Set-Cookie`` header value that removes the sign-in cookie (once signed in)."""
    return cookie_header(SIGN_IN_COOKIE_NAME, "", max_age=timedelta(0))
