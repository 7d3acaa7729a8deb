"""The session cookie: its signed value, its key, and the attributes it is set with.

Value: ``<session id>.<tag>``, where the tag is the unpadded base64url of
HMAC-SHA-256 under the cookie key of ``"mappa-session-cookie-v1" || 0x00 || session id``
(``broker.crypto.mac``). The session id alone is unguessable (256 bits), so the tag
adds no secrecy; it lets the console refuse a forged or altered cookie before the
database is asked, and lets an operator end every session at once by deleting the key
file (a new one is made on next start).

Key: 32 random bytes, ``session-cookie.key`` in the data directory, mode 0600, made on
first use. It is made under another name and linked into place, so that of two
processes starting at once both end up with the first one's key.

Attributes (``set_cookie_header``): the name ``__Host-mappa-session`` (the ``__Host-``
prefix makes browsers take it only with ``Secure``, ``Path=/`` and no ``Domain``, so no
other host can set or shadow it), ``Secure``, ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Path=/``, and ``Max-Age`` the
absolute timeout, so a browser that restores its sessions still drops it by then.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Literal

from broker.crypto.mac import MAC_KEY_BYTES, MacKey
from broker.errors import KeyUnavailable, VerificationError
from broker.files.private import PRIVATE_FILE_MODE, private_dir
from broker.files.strict import FileRefused, read_bytes
from broker.identity.errors import SessionRefused
from broker.identity.sessions import ABSOLUTE_TIMEOUT

COOKIE_NAME = "__Host-mappa-session"
COOKIE_KEY_FILE = "session-cookie.key"
_DOMAIN = b"mappa-session-cookie-v1"
# 43 characters of id, a dot, 43 of tag: anything longer is refused unread.
MAX_COOKIE_CHARS = 87
_VALUE = re.compile(r"([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})")


def cookie_key_path(data_dir: Path) -> Path:
    """Where the cookie key lives in ``data_dir``."""
    return data_dir / COOKIE_KEY_FILE


def load_cookie_key(data_dir: Path) -> MacKey:
    """The cookie key of ``data_dir``, made (0600) if there is none. Raises
    ``KeyUnavailable`` for a key file of the wrong size or one that cannot be read."""
    path = cookie_key_path(data_dir)
    if not path.exists():
        _create(path)
    try:
        data = read_bytes(path, max_bytes=MAC_KEY_BYTES)
    except FileRefused as exc:
        raise KeyUnavailable(f"cannot read the cookie key {path}: {exc.problem}") from None
    if len(data) != MAC_KEY_BYTES:
        raise KeyUnavailable(
            f"the cookie key {path} is damaged; delete it to make a new one (every session ends)"
        )
    # A copy restored without its mode is made private again, as the databases are.
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_FILE_MODE)
    return MacKey(data)


def _create(path: Path) -> None:
    if not path.parent.exists():
        private_dir(path.parent)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(MacKey.generate().export())
            handle.flush()
            os.fsync(handle.fileno())
        # Fails if another process linked its key first: then that one is the key.
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)


class CookieSigner:
    """Signs session ids into cookie values and takes them back (module docstring)."""

    def __init__(self, key: MacKey) -> None:
        self._key = key

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> CookieSigner:
        """The signer with ``data_dir``'s cookie key (``load_cookie_key``)."""
        return cls(load_cookie_key(data_dir))

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id``."""
        return f"{session_id}.{self._key.text_tag(_DOMAIN, session_id.encode('ascii'))}"

    def unsign(self, value: str | None) -> str:
        """The session id in a cookie value this signer made. Raises ``SessionRefused``
        (``session.invalid``) for no cookie, a malformed one, or a tag that does not
        check, alike."""
        refused = SessionRefused("no valid session cookie; sign in")
        if value is None or len(value) > MAX_COOKIE_CHARS:
            raise refused
        match = _VALUE.fullmatch(value)
        if match is None:
            raise refused
        session_id, tag = match.groups()
        try:
            self._key.verify_text(_DOMAIN, session_id.encode("ascii"), tag)
        except VerificationError:
            raise refused from None
        return session_id


def cookie_header(
    name: str, value: str, *, max_age: timedelta, same_site: Literal["Strict", "Lax"] = "Strict"
) -> str:
    """The ``Set-Cookie`` header value for cookie ``name`` with ``value``, with the
    attributes of the module docstring and ``max_age`` (0 removes it). ``Lax`` only for
    a cookie that must come back on another site's top-level redirect (an identity
    provider's, ``broker.identity.oidc_state``)."""
    seconds = max(0, int(max_age.total_seconds()))
    return f"{name}={value}; Max-Age={seconds}; Path=/; Secure; HttpOnly; SameSite={same_site}"


def set_cookie_header(value: str, *, max_age: timedelta = ABSOLUTE_TIMEOUT) -> str:
    """The ``Set-Cookie`` header value that gives the browser the session cookie
    ``value`` (``CookieSigner.sign``), with the attributes of the module docstring."""
    return cookie_header(COOKIE_NAME, value, max_age=max_age)


def clear_cookie_header() -> str:
    """The ``Set-Cookie`` header value that removes the session cookie (on sign-out)."""
    return cookie_header(COOKIE_NAME, "", max_age=timedelta(0))
