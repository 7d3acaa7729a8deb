"""Topic names and their creation.

  <ns>.<area>.ra            Responsible Authority: police, probation, prison
  <ns>.<area>.dtc.<role>    one per Duty-to-Co-operate role
  <ns>.<area>.coord         the area's MAPPA co-ordination unit
  <ns>.transfers            cross-area transfer workflow
  <ns>.audit                signed audit events, for the ledger
  <ns>.receipts             signed delivery receipts
  <ns>.deadletter           refused records with the reason

The namespace ``<ns>`` is ``mappa`` in production; a staging environment (or a
test) sharing the cluster uses its own. Records are keyed by the subject's
pseudonymous reference, so one offender's messages stay on one partition, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from broker.areas import area as check_area
from broker.errors import ConfigurationError
from broker.settings import Settings
from schemas.common import RESPONSIBLE_AUTHORITY, Role
from schemas.envelope import MAX_ENVELOPE_BYTES

PARTITIONS = 3
# One record carries one envelope (at most MAX_ENVELOPE_BYTES) plus its key, headers and
# the batch's framing: a dead letter adds its reason headers, about 1 KiB.
RECORD_LIMIT_BYTES = MAX_ENVELOPE_BYTES + 64 * 1024
# Writes wait for this many in-sync replicas where there are at least that many: one
# broker can be lost without losing or refusing an acknowledged record.
MIN_IN_SYNC = 2
_NAMESPACE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def topic_configs(settings: Settings, replication: int) -> dict[str, str]:
    """The explicit configs every topic of ours is created with: ``min.insync.replicas``
    (2 where replicated, so acks=all survives one broker's loss), retention
    (``MAPPA_TOPIC_RETENTION_DAYS``: longer than a sender keeps re-sending an envelope
    nobody receipted, so a recipient that was away can still read it), the record
    size an envelope needs, and the broker's append time as each record's timestamp:
    receivers bound a message's claimed creation time by it (docs/envelope.md §4, step 3), so it
    must not be the producer's to choose, whatever the cluster's default. (The embedded
    broker accepts the setting and ignores it: there the producer's clock stands.)"""
    return {
        "min.insync.replicas": str(min(MIN_IN_SYNC, replication)),
        "retention.ms": str(settings.topic_retention_days * 24 * 3600 * 1000),
        "max.message.bytes": str(RECORD_LIMIT_BYTES),
        "message.timestamp.type": "LogAppendTime",
    }


def scope_for(role: Role) -> str:
    if role in RESPONSIBLE_AUTHORITY:
        return "ra"
    if role is Role.COORDINATOR:
        return "coord"
    return f"dtc.{role.value}"


# Every scope an area topic can have: one per role, the responsible authority's shared.
AREA_SCOPES = frozenset(scope_for(role) for role in Role)


@dataclass(frozen=True)
class Topics:
    namespace: str = "mappa"

    def __post_init__(self) -> None:
        if not _NAMESPACE.match(self.namespace):
            raise ConfigurationError(f"invalid topic namespace {self.namespace!r}")

    @property
    def transfers(self) -> str:
        return f"{self.namespace}.transfers"

    @property
    def audit(self) -> str:
        return f"{self.namespace}.audit"

    @property
    def receipts(self) -> str:
        return f"{self.namespace}.receipts"

    @property
    def deadletter(self) -> str:
        return f"{self.namespace}.deadletter"

    @property
    def global_topics(self) -> tuple[str, ...]:
        return (self.transfers, self.audit, self.receipts, self.deadletter)

    def for_role(self, area_code: str, role: Role) -> str:
        check_area(area_code)
        return f"{self.namespace}.{area_code}.{scope_for(role)}"

    def in_area(self, topic: str, area_code: str) -> bool:
        """True if ``topic`` is one of area ``area_code``'s topics: ``<ns>.<area>.<scope>``
        with a scope some role has (docs/envelope.md step 5), for any area code."""
        prefix = f"{self.namespace}.{area_code}."
        return topic.startswith(prefix) and topic[len(prefix) :] in AREA_SCOPES

    def area_topics(self, area_code: str) -> list[str]:
        return sorted({self.for_role(area_code, role) for role in Role})

    def all_topics(self, area_codes: Iterable[str]) -> list[str]:
        per_area = {t for code in area_codes for t in self.area_topics(code)}
        return sorted(per_area | set(self.global_topics))
