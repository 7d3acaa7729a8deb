"""The stateless checks on an envelope: shape, suite, directory keys, signatures, binding,
freshness. Everything a receiver decides before it looks at its own replay memory and
agreement. Used by the receiver, by consultation, and by the published test vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from broker.crypto.envelope import VerifiedEnvelope, parse_envelope, verify_envelope
from broker.crypto.suites import suite_named
from broker.errors import ReplayError, SchemaError, VerificationError
from broker.trust.directory import Directory
from schemas.common import parse_timestamp


class EnvelopeVerifier:
    """Checks 1-6 of the receiving path (``broker.gateway.receive``), with one rule for
    which topics an envelope of an area may arrive on (``topic_in_area``)."""

    def __init__(
        self,
        *,
        directory: Directory,
        allowed_suites: frozenset[str],
        clock_skew: timedelta,
        replay_window: timedelta,
        topic_in_area: Callable[[str, str], bool],
    ) -> None:
        self._directory = directory
        self._allowed = allowed_suites
        self._skew = clock_skew
        self._window = replay_window
        self._topic_in_area = topic_in_area

    def verify(self, value: bytes, *, topic: str, record_time: datetime) -> VerifiedEnvelope:
        """Checks 1-5 in order: shape, suite, the sender's keys in the directory (revocation
        judged at the later of the header's time and ``record_time``), signatures, topic
        binding. Returns the verified envelope. Raises ``SchemaError``
        (``envelope.too-large``, ``envelope.malformed``, ``schema.*``) or
        ``VerificationError``: ``envelope.unknown-suite``/``suite-not-allowed``,
        ``directory.unknown-agency``/``agency-inactive``/``unknown-key``/``key-revoked``/
        ``key-expired``, ``envelope.sender-key-mismatch``/``signature-missing``,
        ``verification.signature-invalid``, ``envelope.malformed`` (a view or recipient
        twice), ``envelope.topic-mismatch``."""
        unverified = parse_envelope(value)
        header = unverified.unverified_header
        suite = suite_named(header.suite, allowed=self._allowed)
        try:
            created = parse_timestamp(header.created_at)
        except ValueError:
            raise SchemaError("created_at is not a real time", code="envelope.malformed") from None
        keys = self._directory.signing_keys(
            header.sender,
            header.sender_keys,
            suite=suite,
            signed_at=created,
            # Revocation is judged against the later of the sender's claim and the
            # broker's append time, so a stolen key cannot sign "in the past".
            revocation_check_at=max(created, record_time),
        )
        verified = verify_envelope(unverified, suite=suite, keys=keys)
        if header.topic != topic or not self._topic_in_area(topic, header.area):
            raise VerificationError(
                f"envelope for {header.topic} (area {header.area}) arrived on {topic}",
                code="envelope.topic-mismatch",
            )
        return verified

    def check_fresh(self, verified: VerifiedEnvelope, now: datetime) -> None:
        """Check 6: ``verified`` was created at most the clock skew after ``now`` and at
        most the replay window before it. Raises ``ReplayError`` (``envelope.clock-skew``,
        ``envelope.stale``)."""
        created = parse_timestamp(verified.header.created_at)
        if created - now > self._skew:
            raise ReplayError(
                f"message created {verified.header.created_at}, more than "
                f"{int(self._skew.total_seconds())}s ahead of this adapter's clock",
                code="envelope.clock-skew",
            )
        if now - created > self._window:
            raise ReplayError(
                f"message created {verified.header.created_at} is older than the "
                f"{int(self._window.total_seconds())}s replay window; ask the sender to re-send",
                code="envelope.stale",
            )
