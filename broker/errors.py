"""One error root, a few kinds, each with a stable reason code.

Reason codes go into dead-letter records and audit events; the message is for a
person to act on. Neither reveals key material or plaintext, and a decryption
failure never says which check failed inside the AEAD.
"""

from __future__ import annotations


class MappaError(Exception):
    """Root of every error this product raises on purpose."""

    code = "error"
    retriable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def reason(self) -> str:
        return str(self)


class ConfigurationError(MappaError):
    code = "config.invalid"


class SchemaError(MappaError):
    """Input that is not a well-formed document of the kind expected."""

    code = "schema.invalid"


class VerificationError(MappaError):
    """A signature, a key, a sender or a binding did not check out."""

    code = "verification.failed"


class DecryptionError(MappaError):
    code = "decryption.failed"


class ReplayError(MappaError):
    """Seen before with other content, or outside the freshness window."""

    code = "replay.refused"


class PolicyDenied(MappaError):
    """An information-sharing agreement does not allow this."""

    code = "policy.denied"


class TransferRefused(PolicyDenied):
    """An area transfer step, or a message about a moving case, that the transfer's state
    or its actors' roles do not allow."""

    code = "transfer.refused"


class KeyUnavailable(MappaError):
    """A key we need is missing or locked; may resolve once it is provided."""

    code = "key.unavailable"
    retriable = True


class NotAddressed(MappaError):
    """The envelope carries nothing for this agency. Not an attack: not for us."""

    code = "envelope.not-addressed"
