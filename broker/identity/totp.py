"""The second factor: time-based one-time passwords (RFC 6238), via pyotp.

The parameters are the ones every authenticator app assumes when a provisioning URI
does not say otherwise: HMAC-SHA-1, 6 digits, a 30-second step from the Unix epoch.
(SHA-1's collisions do not touch HMAC-SHA-1 as a keyed function; RFC 6238 allows
SHA-256 but many apps ignore it and show wrong codes.) A secret is 160 random bits, as
RFC 4226 §4 recommends, held as base32.

A code is accepted for the current step and one either side (``WINDOW_STEPS``), for
clocks a little apart and a code typed as it changed. A code's step must be later than
the last step accepted for the same user (``last_step``), so a code seen over a
shoulder, or sent twice, cannot be used again, even within its window.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from urllib.parse import quote

import pyotp

from broker.errors import MappaError

STEP_SECONDS = 30
DIGITS = 6
WINDOW_STEPS = 1
# RFC 4226 §4: at least 128 bits, 160 recommended. 32 base32 characters are 160 bits.
SECRET_BASE32_CHARS = 32
ISSUER = "MAPPA broker"
_CODE = re.compile(r"[0-9]{6}")
_SECRET = re.compile(r"[A-Z2-7]{32}")


class TotpRefused(MappaError):
    """A code that is missing, malformed, wrong, outside the window or already used. The
    user store turns it into ``auth.failed``; it never reaches a person as such."""

    code = "totp.refused"


def new_secret() -> str:
    """A new TOTP secret: 160 random bits as 32 base32 characters."""
    return pyotp.random_base32(SECRET_BASE32_CHARS)


def _totp(secret: str) -> pyotp.TOTP:
    if _SECRET.fullmatch(secret) is None:
        # Secrets are ours (``new_secret``); a damaged one matches no code.
        raise TotpRefused("the stored TOTP secret is not usable")
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def step_at(now: datetime) -> int:
    """The RFC 6238 time step ``now`` falls in: whole seconds since the epoch, divided
    by ``STEP_SECONDS``. ``now`` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("TOTP needs a timezone-aware time")
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, now: datetime) -> str:
    """The code an authenticator holding ``secret`` shows at ``now``."""
    return _totp(secret).generate_otp(step_at(now))


def accepted_step(secret: str, code: str | None, *, now: datetime, last_step: int | None) -> int:
    """The time step of ``code`` if it is ``secret``'s code for a step within
    ``WINDOW_STEPS`` of ``now`` and later than ``last_step`` (None: none accepted yet);
    remember it as the user's new ``last_step``. Raises ``TotpRefused`` otherwise: no
    code, not six ASCII digits, no match in the window, or a match only at a step
    already used. Every step of the window is compared, in constant time, whatever
    matched first."""
    totp = _totp(secret)
    if code is None or _CODE.fullmatch(code) is None:
        raise TotpRefused("a six-digit code is needed")
    current = step_at(now)
    floor = -1 if last_step is None else last_step
    found: int | None = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        match = hmac.compare_digest(totp.generate_otp(step).encode(), code.encode())
        if match and step > floor and found is None:
            found = step
    if found is None:
        raise TotpRefused("the code is wrong, expired or already used")
    return found


def provisioning_uri(secret: str, *, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI (Google Authenticator's key URI format) that
    enrols ``secret`` in an authenticator app, as text or as a QR code. It holds the
    secret: show it once, to its user, and never log it."""
    uri = _totp(secret).provisioning_uri(name=username, issuer_name=issuer)
    # pyotp leaves the defaults out; an app that assumed others would show wrong codes.
    for name, value in (("algorithm", "SHA1"), ("digits", str(DIGITS))):
        if f"{name}=" not in uri:
            uri += f"&{name}={quote(value)}"
    if "period=" not in uri:
        uri += f"&period={STEP_SECONDS}"
    return uri
