"""Keyed tags: HMAC-SHA-256 over a short value the product hands out and later takes
back, so that it can tell its own from a forgery before looking anything up. So far
the one user is the console's session cookie (``broker.identity.cookies``).

A tag is ``HMAC-SHA-256(key, domain || 0x00 || message)``: the domain (printable ASCII,
no NUL) names what is tagged, so a tag made for one purpose never checks for another.
The tag is checked with ``cryptography``'s own constant-time ``verify``. Where a tag
travels as text (a cookie, a form field) it is unpadded base64url, 43 characters, in
its one canonical spelling (``text_tag``, ``verify_text``).
"""

from __future__ import annotations

import base64
import os
import re
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from broker.errors import KeyUnavailable, VerificationError

MAC_KEY_BYTES = 32
TAG_BYTES = 32
# Unpadded base64url of TAG_BYTES.
TAG_TEXT_CHARS = 43
# Tagged values are identifiers, not documents: anything longer is refused unread.
MAX_MESSAGE_BYTES = 1024
_DOMAIN = re.compile(rb"[\x21-\x7e]{1,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class MacKey:
    """An HMAC-SHA-256 key. Not printable, not picklable; ``export`` only for storage."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != MAC_KEY_BYTES:
            raise KeyUnavailable(f"a MAC key must be {MAC_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def generate(cls) -> MacKey:
        """A fresh key from the operating system's random source."""
        return cls(os.urandom(MAC_KEY_BYTES))

    def __repr__(self) -> str:
        return "<MacKey>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a MAC key cannot be pickled")

    def _mac(self, domain: bytes, message: bytes) -> hmac.HMAC:
        if _DOMAIN.fullmatch(domain) is None:
            raise ValueError("a MAC domain is 1-64 printable ASCII characters")
        if len(message) > MAX_MESSAGE_BYTES:
            raise VerificationError(
                f"a tagged value is at most {MAX_MESSAGE_BYTES} bytes", code="mac.invalid"
            )
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(domain + b"\x00" + message)
        return mac

    def tag(self, domain: bytes, message: bytes) -> bytes:
        """The 32-byte tag of ``message`` for ``domain``."""
        return self._mac(domain, message).finalize()

    def verify(self, domain: bytes, message: bytes, tag: bytes) -> None:
        """Returns nothing if ``tag`` is ``message``'s tag for ``domain``; raises
        ``VerificationError`` (``mac.invalid``) otherwise, whatever the reason."""
        try:
            self._mac(domain, message).verify(tag)
        except InvalidSignature:
            raise VerificationError("the tag does not check", code="mac.invalid") from None

    def text_tag(self, domain: bytes, message: bytes) -> str:
        """``tag`` as unpadded base64url (43 characters)."""
        return _b64(self.tag(domain, message))

    def verify_text(self, domain: bytes, message: bytes, text: str) -> None:
        """``verify`` for a tag as ``text_tag`` spells it; raises ``VerificationError``
        (``mac.invalid``) for a tag that is not 43 base64url characters in their
        canonical spelling (base64's spare bits zero), or does not check."""
        refused = VerificationError("the tag does not check", code="mac.invalid")
        if len(text) != TAG_TEXT_CHARS or _B64URL.fullmatch(text) is None:
            raise refused
        # 43 base64url characters and one pad always decode.
        tag = base64.urlsafe_b64decode(text + "=")
        # One spelling per tag: a second spelling of the same bytes is not accepted.
        if _b64(tag) != text:
            raise refused
        self.verify(domain, message, tag)

    def export(self) -> bytes:
        """Raw bytes, for a private key file only (``broker.identity.cookies``)."""
        return self._key
