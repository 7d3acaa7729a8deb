"""A fictional population whose message histories yield given annual tables: the plan.

``broker.statistics.planning.plan_population`` lays out subjects and, for each, the messages
its area's agencies publish and the transfers its case takes (docs/statistics.md §6).
Nothing here touches a broker: ``broker.statistics.generate`` publishes a plan, and
``Plan.held`` shows what the co-ordination unit would hold once it has, so a plan can be
checked against its target with ``annual_tables`` alone.

No real person: names are drawn from invented lists, and every PNC id is a made-up
number that the plan keeps unique.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any

from broker.statistics.annual import ReportYear
from broker.statistics.timeline import Held
from schemas.common import Role
from schemas.messages import (
    MessageBody,
)
from schemas.transfer import TransferRecord, TransferState

PUBLISHED_TABLES = "published-tables.json"


def published_tables() -> dict[str, Any]:
    """The published tables shipped with the product (``areas`` keyed like
    ``Staffordshire_2013_14``), from the project's shared data."""
    text = resources.files("broker.statistics").joinpath("data", PUBLISHED_TABLES).read_text()
    tables: dict[str, Any] = json.loads(text)
    return tables


@dataclass(frozen=True)
class PlannedMessage:
    """One message of the plan: which of the area's agencies publishes it, and what."""

    sender: Role
    body: MessageBody
    # The index in ``Plan.messages`` of an earlier message, from the same sender, that
    # this one corrects (published with ``supersedes`` naming it).
    corrects: int | None = None


@dataclass(frozen=True)
class PlannedTransfer:
    """A case moving between the plan's area and its neighbour, completed on a date."""

    pnc_id: str
    from_area: str
    to_area: str
    move_date: date
    completed_on: date
    registered_sex_offender: bool


@dataclass
class Plan:
    """A population for one area and year: its messages in publication order, and its
    transfers. Publishing order (``broker.statistics.generate``): transfers into the
    area, then every message, then transfers out of it (a case is published about in
    the area while the area owns it)."""

    area: str
    neighbour: str
    year: ReportYear
    messages: list[PlannedMessage] = field(default_factory=list)
    transfers: list[PlannedTransfer] = field(default_factory=list)

    @property
    def transfers_in(self) -> list[PlannedTransfer]:
        return [t for t in self.transfers if t.to_area == self.area]

    @property
    def transfers_out(self) -> list[PlannedTransfer]:
        return [t for t in self.transfers if t.from_area == self.area]

    def held(self, subject_ref: Callable[[str], str]) -> tuple[list[Held], list[TransferRecord]]:
        """What the area's co-ordination unit holds once the plan is published, with
        ``subject_ref`` mapping a PNC id to its reference: every message (the unit receives
        or keeps them all), and every transfer as completed."""
        held: list[Held] = []
        for i, m in enumerate(self.messages):
            held.append(
                Held(
                    sender=m.sender.value,
                    message_id=f"plan-{i}",
                    subject_ref=subject_ref(m.body.subject.pnc_id),
                    created_at=f"{i:09d}",
                    body=m.body,
                    supersedes=None if m.corrects is None else f"plan-{m.corrects}",
                )
            )
        records = [
            TransferRecord(
                transfer_id=f"00000000-0000-4000-8000-{i:012d}",
                subject_ref=subject_ref(t.pnc_id),
                from_area=t.from_area,
                to_area=t.to_area,
                state=TransferState.COMPLETED,
                lead_agency=f"police.{t.from_area}",
                registered_sex_offender=t.registered_sex_offender,
                requested_on=t.move_date.isoformat(),
                move_date=t.move_date.isoformat(),
                reason="planned move",
                requested_by=f"coordinator.{t.from_area}",
                updated_at=f"{i:09d}",
                completed_on=t.completed_on.isoformat(),
                last_step_by=f"coordinator.{t.to_area}",
            )
            for i, t in enumerate(self.transfers)
        ]
        return held, records
