"""`mappa transfer demo`: one offender moves from Staffordshire to West Mercia.

On a fresh data directory, with both areas' RA agencies, co-ordination units and
housing authorities: Staffordshire's co-ordinator names the case team, police publish
a risk assessment and HMP Stafford a release notice; Staffordshire probation (the
lead) asks West Mercia to take the case over; West Mercia's co-ordinator accepts and,
on the move date, completes, naming West Mercia's case team. Probation re-shares the
case history for West Mercia under West Mercia's agreement. Then West Mercia police
publish, and Staffordshire police try to. The summary shows, per agency in both areas,
what it received before the transfer and after it, the deadlines, the refusals and
the audit chain.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from broker.agreements import agreement_for_area
from broker.deployment import Deployment, Running
from broker.errors import ConfigurationError, MappaError
from broker.gateway.agency import utc_now
from broker.gateway.handled import Handled, Handling
from broker.settings import Settings
from broker.transfer.deadlines import deadlines
from broker.trust.provision import DataPaths, provision, two_area_specs
from schemas.common import from_data
from schemas.messages import CaseTeam, MessageBody, ReleaseScheduled, RiskAssessment

FROM, TO = "staffordshire", "west-mercia"
SPECS = two_area_specs(FROM, TO)
# A fictional offender: no real person.
PNC = "2011/0456789K"
SUBJECT = {"pnc_id": PNC, "name": "Alex Sample", "date_of_birth": "1980-03-14"}


def risk(area: str, summary: str) -> RiskAssessment:
    return from_data(
        RiskAssessment,
        {
            "subject": SUBJECT,
            "area": area,
            "category": 1,
            "level": 2,
            "tool": "ARMS",
            "assessed_on": "2026-11-02",
            "risk_of_serious_harm": "high",
            "risk_to": ["children"],
            "factors": ["access to children"],
            "summary": summary,
            "victims": [{"name": "Jane Witness", "relationship": "former partner"}],
            "health_notes": "Community mental health team.",
        },
    )


def release(area: str) -> ReleaseScheduled:
    return from_data(
        ReleaseScheduled,
        {
            "subject": SUBJECT,
            "area": area,
            "category": 1,
            "level": 2,
            "release_date": "2026-12-01",
            "establishment": "HMP Stafford",
            "address_approved": True,
            "victim_requested_conditions": ["no contact with Jane Witness"],
        },
    )


def case_team(area: str, members: tuple[str, ...], lead: str) -> CaseTeam:
    roles = {s.agency_id: s.role for s in SPECS}
    return from_data(
        CaseTeam,
        {
            "subject": SUBJECT,
            "area": area,
            "category": 1,
            "level": 2,
            "effective_from": "2026-11-23",
            "lead_agency": lead,
            "members": [{"agency_id": a, "role": roles[a].value} for a in members],
        },
    )


@dataclass
class AgencyLog:
    agency_id: str
    area: str
    role: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


class TransferDemoRun:
    """The transfer scenario on a running deployment of both areas."""

    def __init__(self, deployment: Deployment, running: Running) -> None:
        if running.ledger is None:
            raise ConfigurationError("the transfer demo needs the audit ledger running")
        self.deployment = deployment
        self.gateways = running.gateways
        self.desks = running.desks
        self.ledger = running.ledger
        self.logs = {s.agency_id: AgencyLog(s.agency_id, s.areas[0], s.role.value) for s in SPECS}
        self.phase = "before"
        self.refusals: list[dict[str, str]] = []
        self.quiet = True
        for agency, gw in self.gateways.items():
            gw.on_handled(self._noter(agency))

    def _noter(self, agency: str) -> Callable[[Handled], None]:
        return lambda h: self._note(agency, h)

    def _note(self, agency: str, h: Handled) -> None:
        self.quiet = False
        if h.handling is not Handling.DELIVERED or not h.message_type:
            return
        how = "handover" if h.topic.endswith(".transfers") else "message"
        if h.message_type.startswith("transfer-"):
            how = "step"
        text = f"{h.message_type} ({h.view}, {how} from {h.sender})"
        getattr(self.logs[agency], self.phase).append(text)

    async def settle(self, rounds: int = 3) -> None:
        """Poll everyone (concurrently: each reader is its own connection) until a few
        rounds in a row bring nothing new."""
        quiet = 0
        deadline = time.monotonic() + 30
        while quiet < rounds and time.monotonic() < deadline:
            self.quiet = True
            await asyncio.gather(*(gw.poll_once(timeout_ms=20) for gw in self.gateways.values()))
            quiet = quiet + 1 if self.quiet else 0

    async def publish(self, agency: str, message: MessageBody) -> None:
        try:
            await self.gateways[agency].publish(message, purpose="MAPPA risk management")
        except MappaError as exc:
            self.refusals.append({"agency": agency, "code": exc.code, "reason": exc.reason})

    async def run(self) -> dict[str, Any]:
        """Every step of the move, then what each agency received and the audit chain."""
        today = self.deployment.clock().date()
        team = (
            f"police.{FROM}",
            f"probation.{FROM}",
            "prison.hmp-stafford",
            "housing.stoke-on-trent",
        )
        await self.publish(f"coordinator.{FROM}", case_team(FROM, team, f"probation.{FROM}"))
        await self.settle(2)
        await self.publish(f"police.{FROM}", risk(FROM, "High risk to children."))
        await self.publish("prison.hmp-stafford", release(FROM))
        await self.settle()
        self.phase = "after"
        lead = self.desks[f"probation.{FROM}"]
        record = await lead.request(
            pnc_id=PNC,
            to_area=TO,
            move_date=today,
            reason="moving to live with family in Worcester",
            user="po.1708",
            open_actions=["approve address", "hand over licence conditions"],
            registered_sex_offender=True,
        )
        await self.settle(2)
        coordinator = self.desks[f"coordinator.{TO}"]
        await coordinator.accept(record.transfer_id, user="wm.coord.3", reason="address approved")
        await self.settle(2)
        done = await coordinator.complete(
            record.transfer_id,
            user="wm.coord.3",
            address_notified_on=today,
            case_team=(f"police.{TO}", f"probation.{TO}", "housing.worcester"),
        )
        await self.settle()
        await self.publish(f"police.{TO}", risk(TO, "First West Mercia review."))
        await self.publish(f"police.{FROM}", risk(FROM, "Late Staffordshire note."))
        await self.settle()
        subject_ref = self.deployment.subject_ref(PNC)
        expected = sum(gw.ctx.audit.emitted for gw in self.gateways.values())
        await self.ledger.catch_up(expected, within=20)
        chain = self.ledger.store.entries(subject_ref=subject_ref)
        return {
            "transfer": {
                "transfer_id": done.transfer_id,
                "from": done.from_area,
                "to": done.to_area,
                "state": done.state.value,
                "lead": done.lead_agency,
                "deadlines": [
                    {"kind": d.kind, "due": d.due.isoformat(), "met_on": str(d.met_on)}
                    for d in deadlines(done)
                ],
                "overdue_if_never_completed": [
                    d.kind for d in deadlines(record) if d.overdue(today + timedelta(days=40))
                ],
            },
            "agencies": [asdict(log) for log in self.logs.values()],
            "refused": self.refusals,
            "reshared": sum(len(r.recipients) for d in self.desks.values() for r in d.reshared),
            "audit": {
                "subject_records": len(chain),
                "by_area": dict(Counter(str(e["area"]) for e in chain)),
                "reshare_disclosures": sum(e["operation"] == "reshare" for e in chain),
            },
        }


async def run_transfer_demo(settings: Settings) -> dict[str, Any]:
    """Provision both areas on a fresh data directory, move the case, stop everything;
    returns the summary."""
    started = time.monotonic()
    passphrase = secrets.token_urlsafe(24).encode()
    directory = provision(
        DataPaths(settings.data_dir),
        SPECS,
        passphrase=passphrase,
        now=utc_now(),
        suites=(settings.suite,),
    )
    agreements = [agreement_for_area(a, directory.agencies(area=a)) for a in (FROM, TO)]
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=agreements)
    async with deployment.running([s.agency_id for s in SPECS]) as running:
        summary = await TransferDemoRun(deployment, running).run()
        summary["broker"] = running.broker
    summary["elapsed_seconds"] = round(time.monotonic() - started, 2)
    return summary


def render(summary: dict[str, Any]) -> str:
    """The transfer demo's summary as text."""
    t = summary["transfer"]
    lines = [
        f"mappa-broker transfer demo: {t['from']} -> {t['to']}",
        f"broker: {summary['broker']}",
        "",
        f"transfer {t['transfer_id']}: {t['state']} (lead {t['lead']})",
    ]
    lines += [f"  deadline {d['kind']}: due {d['due']}, met {d['met_on']}" for d in t["deadlines"]]
    lines.append(
        "  overdue 40 days on, had it never completed: "
        + (", ".join(t["overdue_if_never_completed"]) or "nothing")
    )
    for a in summary["agencies"]:
        lines += ["", f"{a['agency_id']} ({a['role']}, {a['area']})"]
        lines.append("  before: " + ("; ".join(a["before"]) or "nothing"))
        lines.append("  after:  " + ("; ".join(a["after"]) or "nothing"))
    lines += ["", "refused at the sender (audited):"]
    lines += [f"  {r['agency']}: {r['code']}: {r['reason']}" for r in summary["refused"]]
    au = summary["audit"]
    lines += [
        "",
        f"handover: {summary['reshared']} re-shares, each audited as a disclosure (reshare)",
        f"audit ledger for this subject: {au['subject_records']} records, by area "
        + ", ".join(f"{k} {v}" for k, v in sorted(au["by_area"].items())),
        f"all parts stopped; {summary['elapsed_seconds']} s",
    ]
    return "\n".join(lines)
