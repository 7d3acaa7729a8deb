"""What an agency's adapter knows about itself and the world, built once and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from broker.audit import AuditEmitter
from broker.crypto.pseudonym import SubjectKey
from broker.crypto.suites import Suite, suite_named
from broker.directory import Directory
from broker.keystore import AgencyKeys
from broker.policy import SharingPolicy
from broker.settings import Settings
from broker.store import AgencyStore
from broker.topics import Topics
from schemas.directory import AgencyEntry, KeyAlg


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AgencyContext:
    entry: AgencyEntry
    keys: AgencyKeys
    directory: Directory
    policy: SharingPolicy
    subject_key: SubjectKey
    store: AgencyStore
    settings: Settings
    clock: Callable[[], datetime] = utc_now
    audit: AuditEmitter = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditEmitter(
            agency_id=self.entry.agency_id,
            signing_key=self.keys.signing[KeyAlg.ED25519],
            store=self.store,
            clock=self.clock,
            topic=self.topics.audit,
        )

    @property
    def agency_id(self) -> str:
        return self.entry.agency_id

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_namespace)

    @property
    def suite(self) -> Suite:
        return suite_named(self.settings.suite, allowed=self.settings.allowed_suites)
