"""Publishing a planned population on a real broker (docs/statistics.md §6).

A fresh deployment holds the report's area (police, probation, prison and the
co-ordination unit) and a neighbouring area (police and co-ordination unit) for the
moves. Cases move through the transfer protocol (request by the sending co-ordinator,
accept and complete by the receiving one); every message is published by its agency's
gateway, each subject's messages in order and many subjects at once; a correction is
published as one (``AgencyGateway.correct``, ``supersedes`` in its signed header). Then
the area's co-ordination unit reads until it holds everything addressed to it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from broker.agreements import agreement_for_area
from broker.deployment import Deployment, Running
from broker.gateway.agency import utc_now
from broker.kafka.polling import Poll, polling
from broker.kafka.transport import TransportError
from broker.settings import Settings
from broker.statistics.plan import Plan, PlannedMessage, PlannedTransfer
from broker.trust.provision import AgencySpec, DataPaths, provision, two_area_specs
from schemas.common import Role

PURPOSE = "MAPPA risk management"
USER = "demo-data generator"
# Publications in flight at once: enough to keep the sealing and the group commit busy.
CONCURRENT_SUBJECTS = 32
# How long the unit may take to read what was published, after the last publication.
SETTLE_SECONDS = 300.0


def coordinator(area: str) -> str:
    return f"coordinator.{area}"


def world(plan: Plan) -> tuple[AgencySpec, ...]:
    """The agencies of a generated world: each area's RA, housing authority and
    co-ordination unit (``two_area_specs``: enough to move cases both ways)."""
    return two_area_specs(plan.area, plan.neighbour)


@dataclass
class Published:
    """What publishing a plan did."""

    messages: int
    corrections: int
    transfers_in: int
    transfers_out: int
    seconds: float


def provision_world(settings: Settings, plan: Plan, passphrase: bytes) -> Deployment:
    """A fresh data directory for ``plan``'s world, and its deployment. Raises
    ``ConfigurationError`` for a data directory in use."""
    directory = provision(
        DataPaths(settings.data_dir),
        world(plan),
        passphrase=passphrase,
        now=utc_now(),
        suites=(settings.suite,),
    )
    agreements = [
        agreement_for_area(a, directory.agencies(area=a)) for a in (plan.area, plan.neighbour)
    ]
    return Deployment(settings=settings, passphrase=passphrase, agreements=agreements)


async def _until(done: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise TransportError(f"generated data: {what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.05)


class PlanPublisher:
    """Publishes one plan on a running deployment of its world."""

    def __init__(self, running: Running, plan: Plan) -> None:
        self.running = running
        self.plan = plan
        self.unit = running.gateways[coordinator(plan.area)]
        self.corrections = 0
        # Publications with the unit among their recipients: what it must come to hold.
        self.addressed = 0

    def _sender(self, role: Role) -> str:
        """The agency of the plan's area that publishes as ``role``."""
        return next(
            s.agency_id for s in world(self.plan) if s.role is role and s.areas == (self.plan.area,)
        )

    async def move(self, transfer: PlannedTransfer) -> None:
        """One case through request, accept and complete, dated as planned."""
        sending = self.running.desks[coordinator(transfer.from_area)]
        receiving = self.running.desks[coordinator(transfer.to_area)]
        record = await sending.request(
            pnc_id=transfer.pnc_id,
            to_area=transfer.to_area,
            move_date=transfer.move_date,
            reason="offender moving address",
            user=USER,
            lead_agency=f"police.{transfer.from_area}",
            registered_sex_offender=transfer.registered_sex_offender,
        )
        await _until(
            lambda: receiving.registry.get(record.transfer_id) is not None,
            within=60,
            what="a transfer request reaching the receiving co-ordinator",
        )
        await receiving.accept(record.transfer_id, user=USER, reason="address approved")
        case_team: tuple[str, ...] = (f"police.{transfer.to_area}",)
        if transfer.to_area == self.plan.area:
            case_team += (f"probation.{transfer.to_area}",)
        await receiving.complete(
            record.transfer_id,
            user=USER,
            completed_on=transfer.completed_on,
            case_team=case_team,
        )
        await _until(
            lambda: sending.registry.owner(record.subject_ref) == transfer.to_area,
            within=60,
            what="a transfer's completion reaching the sending co-ordinator",
        )

    async def subject(self, messages: Sequence[tuple[int, PlannedMessage]]) -> None:
        """One subject's messages, in order; a correction names what it corrects."""
        ids: dict[int, str] = {}
        for index, planned in messages:
            gateway = self.running.gateways[self._sender(planned.sender)]
            if planned.corrects is not None:
                result = await gateway.correct(
                    ids[planned.corrects],
                    planned.body,
                    purpose=PURPOSE,
                    user=USER,
                    reason="the record was wrong",
                )
                self.corrections += 1
            else:
                result = await gateway.publish(planned.body, purpose=PURPOSE, user=USER)
            ids[index] = result.message_id
            if any(agency == self.unit.agency_id for agency, _ in result.disclosures):
                self.addressed += 1

    async def _bounded(self, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
        gate = asyncio.Semaphore(CONCURRENT_SUBJECTS)

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            async with gate:
                await job()

        await asyncio.gather(*(run(job) for job in jobs))

    async def run(self) -> Published:
        started = time.monotonic()
        plan = self.plan
        by_subject: dict[str, list[tuple[int, PlannedMessage]]] = defaultdict(list)
        for i, m in enumerate(plan.messages):
            by_subject[m.body.subject.pnc_id].append((i, m))
        await self._bounded([functools.partial(self.move, t) for t in plan.transfers_in])
        await self._bounded([functools.partial(self.subject, s) for s in by_subject.values()])
        await self._bounded([functools.partial(self.move, t) for t in plan.transfers_out])
        expected = self.addressed
        store = self.unit.ctx.store
        await _until(
            lambda: store.inbox_size() >= expected,
            within=SETTLE_SECONDS,
            what="the co-ordination unit receiving everything",
        )
        return Published(
            messages=len(plan.messages),
            corrections=self.corrections,
            transfers_in=len(plan.transfers_in),
            transfers_out=len(plan.transfers_out),
            seconds=round(time.monotonic() - started, 1),
        )


async def publish_plan(deployment: Deployment, plan: Plan, *, ledger: bool = False) -> Published:
    """Run ``plan``'s world on the deployment's broker, publish the plan, and stop once
    the area's co-ordination unit holds everything addressed to it. Only the two units
    read meanwhile (the transfer steps and the report need them); what the other agencies
    were sent waits on the broker."""
    agencies = [s.agency_id for s in world(plan)]
    async with deployment.running(agencies, ledger=ledger) as running:
        readers: dict[str, Poll] = {
            f"gateway {a}": running.gateways[a].poll_once
            for a in (coordinator(plan.area), coordinator(plan.neighbour))
        }
        async with polling(readers):
            return await PlanPublisher(running, plan).run()
