"""What an agency's adapter knows about itself and the world, built once and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from broker.agreements.policy import SharingPolicy
from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.pseudonym import SubjectKey
from broker.crypto.suites import Suite, suite_named
from broker.errors import KeyUnavailable, MappaError
from broker.gateway.audit import AuditEmitter
from broker.gateway.store import AgencyStore
from broker.gateway.verification import EnvelopeVerifier
from broker.kafka.topics import Topics
from broker.observe.logs import Correlation
from broker.settings import Settings
from broker.trust.directory import Directory, check_suite
from broker.trust.keystore import AgencyKeys
from schemas.common import format_timestamp, parse_timestamp
from schemas.directory import AgencyEntry, KeyAlg, PublicKeyEntry


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: the default clock of every part."""
    return datetime.now(UTC)


class SigningKeyRevoked(KeyUnavailable):
    """The agency's signing key was revoked and no key replaces it: it cannot publish
    until a rotation. Not retriable: waiting does not bring a key."""

    code = "key.revoked"
    retriable = False


@dataclass
class AgencyContext:
    """One agency's view of the world for its gateway: its directory entry and own keys,
    the trust directory, its agreement, the subject key, its store, the settings and a
    clock. ``audit`` is built from them (the Ed25519 signing key must be held)."""

    entry: AgencyEntry
    keys: AgencyKeys
    directory: Directory
    policy: SharingPolicy
    subject_key: SubjectKey
    store: AgencyStore
    settings: Settings
    clock: Callable[[], datetime] = utc_now
    # The ledger's public key (``ledger.pub``), to verify its receipts; None where the
    # data directory holds none (a ledger receipt is then refused).
    ledger_key: PublicKey | None = None
    # Its revoked Ed25519 key when no valid one replaces it yet (``revoked_signer``): the
    # agency still starts and receives, signing with it what the ledger and its peers
    # will refuse; it publishes nothing until a rotation.
    revoked_signer: PrivateKey | None = None
    # Recent publications' request ids, for the relay's and receipts' log lines.
    correlation: Correlation = field(default_factory=Correlation)
    audit: AuditEmitter = field(init=False)

    def __post_init__(self) -> None:
        signing = self.keys.signing.get(KeyAlg.ED25519) or self.revoked_signer
        if signing is None:
            # No Ed25519 key valid now: all expired or revoked, or (a clock running
            # slow) not valid yet. Nothing it audited could be signed.
            raise KeyUnavailable(
                f"{self.entry.agency_id} holds no Ed25519 signing key valid at "
                f"{format_timestamp(self.clock())}: check this machine's clock, or issue a "
                "key (`mappa keys rotate`)"
            )
        self.audit = AuditEmitter(
            agency_id=self.entry.agency_id,
            signing_key=signing,
            store=self.store,
            clock=self.clock,
            topic=self.topics.audit,
        )

    def reload_keys(self, keys: AgencyKeys) -> None:
        """After a rotation or revocation: sign with the new current keys. With no usable
        Ed25519 key (revoked and not yet replaced) audit events keep the old signer until
        a rotation; publishing refuses, since it asks for the current key."""
        self.keys = keys
        if KeyAlg.ED25519 in keys.signing:
            self.audit.rekey(keys.signing[KeyAlg.ED25519])

    @property
    def agency_id(self) -> str:
        """This agency's id, from its directory entry."""
        return self.entry.agency_id

    @property
    def topics(self) -> Topics:
        """The topic names of the configured namespace."""
        return Topics(self.settings.topic_namespace)

    @property
    def verifier(self) -> EnvelopeVerifier:
        """A verifier for the area topics, with the settings' suites, skew and window."""
        return EnvelopeVerifier(
            directory=self.directory,
            allowed_suites=self.settings.allowed_suites,
            clock_skew=timedelta(seconds=self.settings.clock_skew_seconds),
            replay_window=timedelta(seconds=self.settings.replay_window_seconds),
            topic_in_area=self.topics.in_area,
            clock=self.clock,
        )

    @property
    def suite(self) -> Suite:
        """The suite this agency seals with, checked that it may. Raises
        ``VerificationError`` (``envelope.unknown-suite``, ``envelope.suite-not-allowed``)
        if the settings name a suite that is unknown or not among the allowed ones,
        (``directory.suite-not-allowed``) if the directory does not let this agency send
        in it, and ``SigningKeyRevoked`` if a signing key it needs was revoked and not
        replaced."""
        suite = suite_named(self.settings.suite, allowed=self.settings.allowed_suites)
        check_suite(self.entry, suite)
        for alg in suite.signature_keys:
            revoked = self._revoked_without_successor(alg)
            if revoked is not None:
                raise SigningKeyRevoked(
                    f"{self.agency_id}'s {alg.value} signing key {revoked.key_id} was revoked at "
                    f"{revoked.revoked_at} and no key replaces it: it cannot publish until a "
                    f"rotation (`mappa keys rotate --agency {self.agency_id}`)"
                )
        return suite

    def _revoked_without_successor(self, alg: KeyAlg) -> PublicKeyEntry | None:
        """The ``alg`` key it would sign with, revoked by now, if no unrevoked one
        replaces it (a revocation dated ahead counts once its time has come)."""
        now = self.clock()
        held = self.keys.signing.get(alg)
        if held is not None:
            entry = next((k for k in self.entry.keys if k.key_id == held.key_id), None)
            if entry is None or entry.revoked_at is None or parse_timestamp(entry.revoked_at) > now:
                return None
            return entry
        revoked = [
            k
            for k in self.entry.keys
            if k.alg is alg and k.revoked_at is not None and parse_timestamp(k.revoked_at) <= now
        ]
        return max(revoked, key=lambda k: k.not_before) if revoked else None

    def unready(self) -> MappaError | None:
        """Why this agency cannot do its whole job now, for readiness; None if it can.
        ``directory.expired``: its trust directory is past its validity, so it refuses
        every envelope; ``key.revoked``: its signing key was revoked and not replaced, so
        it cannot publish (and the ledger refuses what it audits); the ``suite``
        property's errors for a suite it may not seal with."""
        try:
            self.directory.check_current(self.clock())
            _ = self.suite  # every suite signs with Ed25519, the audit key too
        except MappaError as exc:
            return exc
        return None
