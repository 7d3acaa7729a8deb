"""What a browser carries to the identity provider and back: the sign-in's ``state``,
its ``nonce`` and its PKCE verifier, in one short-lived signed cookie.

``OidcStateSigner.issue`` makes a ``Pending`` sign-in of three random values (256 bits
each, unpadded base64url) and the time it was issued; ``cookie_value`` writes it as
``<state>.<nonce>.<verifier>.<issued, ms since the epoch>.<tag>``, the tag being
HMAC-SHA-256 under the data directory's cookie key (``broker.identity.cookies``) of
``"mappa-oidc-sign-in-v1" || 0x00 || <everything before the tag>`` (``TimedSigner``,
as the sign-in form's token, ``broker.identity.csrf``). The console sets it
as the ``__Host-mappa-oidc`` cookie (``oidc_cookie_header``): ``Secure``, ``HttpOnly``,
``Path=/``, and ``SameSite=Lax``, not ``Strict``, because it must come back on the
provider's redirect, a top-level navigation from another site.

On the way back, ``OidcStateSigner.check`` requires, in order (each refusal
``OidcRefused``, ``oidc.state``): a well-formed cookie; a tag that checks under the key;
issued no later than ``now`` (allowing ``CLOCK_SKEW``) and less than
``OIDC_STATE_LIFETIME`` before it; and the ``state`` the provider sent back equal to
the cookie's (in constant time). Another site can neither read nor set a ``__Host-``
cookie of ours, so it cannot finish a sign-in it started in someone else's browser.
The cookie is removed once used (``clear_oidc_cookie_header``).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.crypto.mac import MacKey
from broker.identity.cookies import cookie_header, load_cookie_key
from broker.identity.csrf import TimedSigner
from broker.identity.errors import OidcRefused

OIDC_COOKIE_NAME = "__Host-mappa-oidc"
# Long enough to sign in at the provider (a password, a second factor); no longer.
OIDC_STATE_LIFETIME = timedelta(minutes=10)
RANDOM_BYTES = 32
_DOMAIN = b"mappa-oidc-sign-in-v1"
# Three 43-character values, at most 13 digits of time, a 43-character tag, 4 dots.
MAX_OIDC_COOKIE_CHARS = 3 * 43 + 13 + 43 + 4
_RANDOM = r"[A-Za-z0-9_-]{43}"
_VALUE = re.compile(rf"(({_RANDOM})\.({_RANDOM})\.({_RANDOM})\.([0-9]{{1,13}}))\.({_RANDOM})")


@dataclass(frozen=True)
class Pending:
    """A sign-in on its way to the provider: what must come back (``state``), what the
    ID token must carry (``nonce``), and what proves the code is ours (``verifier``).
    ``repr`` hides them."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    issued: datetime


def _refused() -> OidcRefused:
    return OidcRefused(
        "the sign-in came back without the state it left with, or too late", code="oidc.state"
    )


class OidcStateSigner:
    """Issues ``Pending`` sign-ins as cookie values and checks them (module docstring)."""

    def __init__(self, key: MacKey, *, lifetime: timedelta = OIDC_STATE_LIFETIME) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("a pending sign-in must live for some time")
        self._signer = TimedSigner(key, _DOMAIN, lifetime)
        self.lifetime = lifetime

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> OidcStateSigner:
        """With ``data_dir``'s cookie key (``broker.identity.cookies.load_cookie_key``)."""
        return cls(load_cookie_key(data_dir))

    def issue(self, *, now: datetime) -> Pending:
        """A new pending sign-in, issued at ``now``."""
        if now.tzinfo is None:
            raise ValueError("a pending sign-in's time must be timezone-aware")
        # Whole milliseconds, as the cookie says it.
        issued = datetime.fromtimestamp(int(now.timestamp() * 1000) / 1000, UTC)
        return Pending(
            state=secrets.token_urlsafe(RANDOM_BYTES),
            nonce=secrets.token_urlsafe(RANDOM_BYTES),
            verifier=secrets.token_urlsafe(RANDOM_BYTES),
            issued=issued,
        )

    def cookie_value(self, pending: Pending) -> str:
        """``pending`` as the cookie's value, signed."""
        return self._signer.seal(
            f"{pending.state}.{pending.nonce}.{pending.verifier}", pending.issued
        )

    def check(self, cookie_value: str | None, state: str | None, *, now: datetime) -> Pending:
        """The pending sign-in in ``cookie_value`` if it is one this key signed, within
        its lifetime at ``now``, whose state is ``state``. Raises ``OidcRefused``
        (``oidc.state``) otherwise, in the order of the module docstring."""
        match = None
        if cookie_value is not None and len(cookie_value) <= MAX_OIDC_COOKIE_CHARS:
            match = _VALUE.fullmatch(cookie_value)
        if match is None:
            raise _refused()
        signed, ours, nonce, verifier, _, tag = match.groups()
        issued = self._signer.issued(signed, tag, now=now)
        if issued is None:
            raise _refused()
        if state is None or not hmac.compare_digest(ours.encode(), state.encode()):
            raise _refused()
        return Pending(state=ours, nonce=nonce, verifier=verifier, issued=issued)


def oidc_cookie_header(value: str, *, lifetime: timedelta = OIDC_STATE_LIFETIME) -> str:
    """The ``Set-Cookie`` header value for a pending sign-in (``cookie_value``):
    ``SameSite=Lax`` (module docstring), the session cookie's other attributes."""
    return cookie_header(OIDC_COOKIE_NAME, value, max_age=lifetime, same_site="Lax")


def clear_oidc_cookie_header() -> str:
    """The ``Set-Cookie`` header value that removes the pending sign-in's cookie."""
    return cookie_header(OIDC_COOKIE_NAME, "", max_age=timedelta(0), same_site="Lax")
