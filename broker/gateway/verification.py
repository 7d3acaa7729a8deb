"""The stateless checks on an envelope: shape, suite, directory keys, signatures, binding,
freshness. Everything a receiver decides before it looks at its own replay memory and
agreement. Used by the receiver, by consultation, and by the published test vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from broker.crypto.envelope import VerifiedEnvelope, parse_envelope, verify_envelope
from broker.crypto.suites import suite_named
from broker.errors import ReplayError, VerificationError
from broker.gateway.preparing import Prepared
from broker.trust.directory import Directory
from schemas.common import format_timestamp, parse_timestamp


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
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._directory = directory
        # The directory's validity is judged at the receiver's clock; without one (the
        # published vectors) at the record's time.
        self._clock = clock
        self._allowed = allowed_suites
        self._skew = clock_skew
        self._window = replay_window
        self._topic_in_area = topic_in_area

    def verify(
        self,
        value: bytes,
        *,
        topic: str,
        record_time: datetime,
        appended: bool = True,
        prepared: Prepared | None = None,
    ) -> VerifiedEnvelope:
        """Checks 1-5 in order: shape, suite, the sender's keys in the directory (revocation
        judged at the later of the header's time and ``record_time``; the header's time
        bounded by ``record_time``, the broker's append time, and no key used after its
        ``not_after`` plus the skew tolerance), signatures, topic binding. Returns the
        verified envelope. ``appended=False`` when ``record_time`` is not the append time
        (a stored copy opened again, judged by when it was received): the append-time
        bounds judged its delivery. ``prepared``: ``value`` as a worker parsed it and the
        signature verifications it passed (``broker.gateway.preparing``); every check
        still runs here, on those results. Raises ``SchemaError`` (``envelope.too-large``,
        ``envelope.malformed``, ``schema.*``) or ``VerificationError``:
        ``envelope.unknown-suite``/``suite-not-allowed``,
        ``directory.unknown-agency``/``agency-inactive``/``unknown-key``/``key-revoked``/
        ``key-expired``, ``envelope.sender-key-mismatch``/``signature-missing``,
        ``envelope.clock-skew``/``stale``/``backdated`` (against the append time),
        ``verification.signature-invalid``, ``envelope.malformed`` (a view or recipient
        twice), ``envelope.topic-mismatch``."""
        unverified = prepared.unverified if prepared is not None else parse_envelope(value)
        header = unverified.unverified_header
        suite = suite_named(header.suite, allowed=self._allowed)
        created = parse_timestamp(header.created_at)  # a real time: checked at step 1
        self._directory.check_current(self._clock() if self._clock is not None else record_time)
        keys = self._directory.signing_keys(
            header.sender,
            header.sender_keys,
            suite=suite,
            signed_at=created,
            # Revocation is judged against the later of the sender's claim and the
            # broker's append time, so a stolen key cannot sign "in the past".
            revocation_check_at=max(created, record_time),
        )
        if appended:
            self._check_append_time(header.sender, header.sender_keys, created, record_time)
        verified = verify_envelope(
            unverified,
            suite=suite,
            keys=keys,
            vouched=prepared.vouched if prepared is not None else (),
        )
        if header.topic != topic or not self._topic_in_area(topic, header.area):
            raise VerificationError(
                f"envelope for {header.topic} (area {header.area}) arrived on {topic}",
                code="envelope.topic-mismatch",
            )
        return verified

    def _check_append_time(
        self, sender: str, key_ids: Sequence[str], created: datetime, appended: datetime
    ) -> None:
        """The sender's claimed time against the broker's append time. Key validity is
        judged at the claimed time, so without this a key superseded (not revoked) could
        go on signing envelopes dated before its ``not_after`` for as long as they stay
        fresh. Raises ``VerificationError`` (``envelope.clock-skew``: claimed more than the
        tolerance after it was appended; ``envelope.stale``: claimed more than the replay
        window before, so stale when appended, whatever the receiver's clock says;
        ``envelope.backdated``: appended at or after a signing key's ``not_after`` plus the
        tolerance)."""
        self._bound_claim(created, appended, "the broker appended it", VerificationError)
        wanted = set(key_ids)
        for entry in self._directory.agency(sender).keys:
            if entry.key_id in wanted and appended >= parse_timestamp(entry.not_after) + self._skew:
                raise VerificationError(
                    f"signing key {entry.key_id} was valid until {entry.not_after}, but the "
                    f"broker appended this message at {format_timestamp(appended)}: a key "
                    "past its time signs nothing new, however its message is dated",
                    code="envelope.backdated",
                )

    def check_fresh(self, verified: VerifiedEnvelope, now: datetime) -> None:
        """Check 6: ``verified`` was created at most the clock skew after ``now`` and at
        most the replay window before it. Raises ``ReplayError`` (``envelope.clock-skew``,
        ``envelope.stale``)."""
        created = parse_timestamp(verified.header.created_at)
        self._bound_claim(created, now, "this adapter's clock says it is now", ReplayError)

    def _bound_claim(
        self,
        created: datetime,
        at: datetime,
        when: str,
        error: type[VerificationError] | type[ReplayError],
    ) -> None:
        """One rule for a claimed creation time against a clock (the broker's append time
        or the receiver's own): at most the skew tolerance after it
        (``envelope.clock-skew``), at most the replay window before it
        (``envelope.stale``)."""
        claim = f"message claims creation at {format_timestamp(created)}"
        if created - at > self._skew:
            raise error(
                f"{claim}, more than {int(self._skew.total_seconds())}s after {when}",
                code="envelope.clock-skew",
            )
        if at - created > self._window:
            raise error(
                f"{claim}, more than the {int(self._window.total_seconds())}s replay window "
                f"before {when}; ask the sender to re-send",
                code="envelope.stale",
            )
