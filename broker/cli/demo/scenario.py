"""`mappa demo`: one offender, one area, every part real, on a fresh data directory.

Police publish an ARMS risk assessment; probation and prison receive the full
view, housing the redacted view, and an agency that is not a party receives
nothing it can read. Then a forged message from an unknown agency and a tampered
copy of a real one arrive and are refused, dead-lettered and audited. A housing
officer opens the record (a consultation, with a justification). The summary
says who received what, what was refused and why, and what the audit ledger holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agency_adapters.housing import HousingAdapter
from agency_adapters.police import PoliceAdapter
from agency_adapters.registry import kind_of
from broker.agreements import (
    agreement_for_area,
    load_agreement,
    save_agreement,
    sign_agreement,
)
from broker.cli.runner import run_interruptible
from broker.crypto.encoding import b64decode, jcs, strict_json
from broker.crypto.envelope import Recipient, ViewToSeal, open_view, seal
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import suite_named
from broker.deployment import Deployment
from broker.errors import ConfigurationError, MappaError
from broker.gateway import AgencyGateway
from broker.gateway.agency import utc_now
from broker.gateway.publish import PublishResult
from broker.gateway.receive import Handled, Handling, Receiver
from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.security import client_options
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.verify_proofs import leaf_hash, verify_checkpoint, verify_inclusion
from broker.settings import Settings
from broker.trust.admin import governance_key
from broker.trust.keystore import Keystore
from broker.trust.provision import (
    DEMO_AREA,
    DEMO_NON_PARTY,
    DEMO_PARTIES,
    DEMO_ROSTER,
    DataPaths,
    load_governance_public,
    provision,
)
from schemas.common import Classification, Role, ViewKind, format_timestamp, from_data
from schemas.envelope import EnvelopeHeader
from schemas.isa import Agreement
from schemas.messages import CATALOGUE, CaseTeam
from schemas.messages.examples import example

# One agency of every kind in the area (see broker/trust/provision.py), and one that is
# in the directory but party to no agreement.
AREA = DEMO_AREA
SPECS = DEMO_ROSTER
POLICE = "police.staffordshire"
HOUSING = "housing.stoke-on-trent"
COORDINATOR = "coordinator.staffordshire"
PARTIES = DEMO_PARTIES
NON_PARTY = DEMO_NON_PARTY
# A party to the agreement that is not on this offender's case team: every rule that
# gives it a view needs an active role, so need-to-know keeps it out of the case.
OFF_TEAM = "jobcentre.stafford"
CASE_TEAM = tuple(a for a in PARTIES if a != OFF_TEAM)

# A fictional offender and victim: no real person.
ARMS_RECORD: dict[str, Any] = {
    "pnc": "2011/0456789K",
    "visorRef": "VR0099001",
    "surname": "Sample",
    "forenames": "Alex",
    "dob": "14/03/1980",
    "mappaArea": AREA,
    "mappaCategory": 1,
    "mappaLevel": 2,
    "arms": {
        "completed": "02/11/2026",
        "rosh": "HIGH",
        "riskTo": ["CHILDREN", "KNOWN_ADULT"],
        "factors": ["sexual preoccupation", "access to children via new partner"],
        "narrative": "High risk to children; new relationship with a parent of two.",
        "victims": [
            {
                "name": "Jane Witness",
                "relationship": "former partner",
                "address": {"line1": "1 Example Road", "town": "Stafford", "postcode": "ST16 1AA"},
            }
        ],
        "healthConcerns": "Attends a community mental health team.",
        "intelSource": "CHIS 4411",
    },
}


@dataclass
class AgencyReport:
    agency_id: str
    role: str
    party: bool
    received: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DemoSummary:
    area: str
    suite: str
    broker: str
    published: dict[str, Any]
    agencies: list[AgencyReport]
    agreement: dict[str, Any]
    case_team: dict[str, Any]
    consultation: dict[str, Any]
    eavesdropper: dict[str, int]
    dead_letters: int
    audit: dict[str, Any]
    matrix: dict[str, Any] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@contextlib.asynccontextmanager
async def _bootstrap(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap, f"external Kafka at {settings.kafka_bootstrap}"
        return
    async with EmbeddedBroker(log_path=settings.data_dir / "broker.log") as bootstrap:
        yield bootstrap, f"embedded tansu at {bootstrap} (memory-only, stopped on exit)"


async def settle(
    gateways: list[AgencyGateway],
    done: Callable[[], bool],
    *,
    on_handled: Callable[[str, Handled], None],
    within: float = 20.0,
) -> None:
    """Poll every gateway until ``done()``; fail loudly after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("deliveries did not settle in time")
        for gw in gateways:
            for handled in await gw.poll_once(timeout_ms=50):
                on_handled(gw.agency_id, handled)


async def read_all(transport: KafkaTransport, topics: list[str], at_least: int) -> list[Record]:
    """Everything on ``topics`` from the beginning (at least ``at_least`` records)."""
    records: list[Record] = []
    async with await transport.reader(topics, {}) as reader:
        for _ in range(50):
            records += await reader.poll(timeout_ms=100)
            if len(records) >= at_least:
                break
    return records


def sign_and_load_agreement(paths: DataPaths, passphrase: bytes, agreement: Agreement) -> Agreement:
    """Sign the agreement with the governance key and run on the verified copy from disk,
    as a deployment does (``mappa isa sign``)."""
    signer = governance_key(Keystore(paths.keys, passphrase))
    if signer is None:
        raise ConfigurationError("the demo deployment has no governance key")
    anchor = load_governance_public(paths)
    save_agreement(paths, sign_agreement(agreement, signer), anchor)
    return load_agreement(paths, agreement.id, anchor)


def forged_envelope(deployment: Deployment, recipient: str, suite_name: str) -> bytes:
    """A message 'from' an agency nobody knows, correctly sealed for ``recipient``."""
    suite = suite_named(suite_name)
    rogue = [PrivateKey.generate(alg) for alg in suite.signature_keys]
    entry = deployment.directory.agency(recipient)
    now = utc_now()
    header = EnvelopeHeader(
        envelope_version=1,
        suite=suite.name,
        message_id=str(uuid.uuid4()),
        created_at=format_timestamp(now),
        sender="rogue.unknown",
        sender_keys=tuple(k.key_id for k in rogue),
        area=AREA,
        topic=deployment.topics.for_role(AREA, entry.role),
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=deployment.subject_ref(ARMS_RECORD["pnc"]),
        isa_id=deployment.agreement.id,
        isa_version=deployment.agreement.version,
        purpose="forged",
        lawful_basis="none",
        classification=Classification.OFFICIAL_SENSITIVE,
    )
    key = deployment.directory.encryption_key(recipient, suite=suite, at=now)
    view = ViewToSeal(ViewKind.FULL, jcs({"forged": True}), (Recipient(recipient, key),))
    return seal(header=header, views=[view], signers=rogue, suite=suite)


def tampered(value: bytes) -> bytes:
    """The same envelope with one ciphertext character changed (still valid base64)."""
    doc = strict_json(value)
    ct = doc["views"][0]["ciphertext"]
    i = len(ct) // 2
    doc["views"][0]["ciphertext"] = ct[:i] + ("A" if ct[i] != "A" else "B") + ct[i + 1 :]
    return jcs(doc)


class DemoRun:
    """The scenario, one method per step, on a running deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.transport = deployment.transport
        self.gateways = {spec.agency_id: deployment.gateway(spec.agency_id) for spec in SPECS}
        self.ledger = deployment.ledger()
        self.reports = {
            s.agency_id: AgencyReport(s.agency_id, s.role.value, s.agency_id in PARTIES)
            for s in SPECS
        }
        # Every agency polls: police too, as it receives from the others in the matrix.
        self.receivers = list(self.gateways.values())

    async def start(self) -> None:
        for gw in self.gateways.values():
            await gw.start()
        await self.ledger.start()

    async def stop(self) -> None:
        await self.ledger.stop()
        for gw in self.gateways.values():
            await gw.stop()

    def record(self, agency_id: str, handled: Handled) -> None:
        report = self.reports[agency_id]
        if handled.handling is Handling.DELIVERED:
            report.received.append(
                {
                    "message_id": handled.message_id or "",
                    "message_type": handled.message_type or "",
                    "view": str(handled.view),
                    "from": handled.sender or "",
                }
            )
        elif handled.handling is Handling.REFUSED:
            report.refused.append(
                {"reason_code": handled.reason_code or "", "reason": handled.reason or ""}
            )

    async def publish(self) -> PublishResult:
        police = PoliceAdapter(self.gateways[POLICE])
        result = await police.submit(
            ARMS_RECORD, purpose="MAPPA risk management", user="ppu.officer.4471"
        )
        await settle(
            self.receivers,
            lambda: all(self.got(a, result.message_type) for a, _ in result.disclosures),
            on_handled=self.record,
        )
        return result

    def got(self, agency_id: str, message_type: str) -> bool:
        return any(r["message_type"] == message_type for r in self.reports[agency_id].received)

    async def form_case_team(self) -> PublishResult:
        """The co-ordination unit says who is active on the case, before anything else:
        rules that need an active role reach only these agencies."""
        team = from_data(
            CaseTeam,
            {
                "subject": {
                    "pnc_id": ARMS_RECORD["pnc"],
                    "name": "Alex Sample",
                    "date_of_birth": "1980-03-14",
                },
                "area": AREA,
                "category": ARMS_RECORD["mappaCategory"],
                "level": ARMS_RECORD["mappaLevel"],
                "effective_from": utc_now().date().isoformat(),
                "lead_agency": "probation.staffordshire",
                "members": [
                    {"agency_id": a, "role": self.deployment.directory.agency(a).role.value}
                    for a in CASE_TEAM
                ],
            },
        )
        result = await self.gateways[COORDINATOR].publish(
            team, purpose="MAPPA case management", user="mappa.coordinator.12"
        )
        await settle(
            self.receivers,
            lambda: all(self.got(a, result.message_type) for a, _ in result.disclosures),
            on_handled=self.record,
        )
        return result

    async def attack(self, result: PublishResult, suite: str, team: PublishResult) -> list[Record]:
        """A forgery for housing and a tampered copy of the RA envelope."""
        topics = self.deployment.topics
        envelopes = len(result.topics) + len(team.topics)
        seen = await read_all(self.transport, topics.area_topics(AREA), envelopes)
        ra_topic = topics.for_role(AREA, Role.PROBATION)
        ra_value = next(
            r.value
            for r in seen
            if r.topic == ra_topic
            and strict_json(r.value)["header"]["message_id"] == result.message_id
        )
        key = result.subject_ref.encode()
        forged = forged_envelope(self.deployment, HOUSING, suite)
        await self.transport.send(topics.for_role(AREA, Role.HOUSING), forged, key=key)
        await self.transport.send(ra_topic, tampered(ra_value), key=key)
        targets = (HOUSING, POLICE, "probation.staffordshire", "prison.hmp-stafford")
        await settle(
            self.receivers,
            lambda: all(self.reports[a].refused for a in targets),
            on_handled=self.record,
        )
        return seen

    def eavesdrop(self, seen: list[Record]) -> dict[str, int]:
        """The non-party's keys against every record, as itself and as each addressee."""
        eavesdropper = self.deployment.context(NON_PARTY)
        readable = attempts = 0
        for r in seen:
            verified = Receiver(eavesdropper).verify(r.value, topic=r.topic, record_time=utc_now())
            for claimed in sorted({NON_PARTY, *(w.agency for w in verified.recipients)}):
                attempts += 1
                with contextlib.suppress(MappaError):
                    open_view(
                        verified,
                        agency=claimed,
                        keys=eavesdropper.keys.decryption,
                        suite=suite_named(verified.header.suite),
                    )
                    readable += 1
        return {"records_seen": len(seen), "attempts": attempts, "readable": readable}

    async def consult(self) -> dict[str, Any]:
        gateway = self.gateways[HOUSING]
        item = next(i for i in gateway.ctx.store.inbox() if i.message_type == "risk-assessment")
        record = await HousingAdapter(gateway).open(
            item.message_id,
            user="housing.officer.207",
            justification="Allocating a tenancy: checking MAPPA risk notice for the applicant",
        )
        notice = record["notice"]
        return {
            "agency": HOUSING,
            "user": "housing.officer.207",
            "view": record["view"],
            "fields_seen": sorted(notice),
            "victim_details_present": "victims" in notice,
            "health_notes_present": "health_notes" in notice,
        }

    def view_received(self, agency_id: str, message_id: str) -> str | None:
        return next(
            (r["view"] for r in self.reports[agency_id].received if r["message_id"] == message_id),
            None,
        )

    async def matrix(self) -> dict[str, Any]:
        """Every message type from a permitted sender; the view each agency received."""
        publishers = {p.message_type: p.roles for p in self.deployment.agreement.publishers}
        first_of_role: dict[Role, str] = {}
        for spec in SPECS:
            if spec.agency_id in PARTIES:
                first_of_role.setdefault(spec.role, spec.agency_id)
        sent: list[tuple[str, PublishResult]] = []
        for message_type in CATALOGUE:
            if message_type == "case-team":
                continue  # set once, first, by form_case_team
            sender = first_of_role[publishers[message_type][0]]
            result = await self.gateways[sender].publish(
                example(message_type, area=AREA), purpose="MAPPA risk management", user="demo"
            )
            sent.append((sender, result))
        await settle(
            self.receivers,
            lambda: all(
                self.view_received(a, r.message_id) for _, r in sent for a, _ in r.disclosures
            ),
            on_handled=self.record,
        )
        # A few more rounds, so that anything delivered beyond the disclosures shows.
        for _ in range(3):
            for gw in self.receivers:
                for handled in await gw.poll_once(timeout_ms=20):
                    self.record(gw.agency_id, handled)
        return {
            "columns": [
                {
                    "agency_id": s.agency_id,
                    "kind": kind_of(s.agency_id, s.role),
                    "party": s.agency_id in PARTIES,
                }
                for s in SPECS
            ],
            "rows": [
                {
                    "message_type": r.message_type,
                    "sender": sender,
                    "message_id": r.message_id,
                    "views": {
                        s.agency_id: (
                            "sender"
                            if s.agency_id == sender
                            else self.view_received(s.agency_id, r.message_id) or "none"
                        )
                        for s in SPECS
                    },
                }
                for sender, r in sent
            ],
        }

    async def audit(self) -> dict[str, Any]:
        """Wait until the ledger holds every event the adapters emitted; count them."""
        expected = sum(gw.ctx.audit.emitted for gw in self.gateways.values())
        records = await self.ledger.catch_up(expected, within=20)
        acts = Counter(e["act"] for e in self.ledger.store.entries())
        return {
            "records": records,
            "expected": expected,
            "by_act": dict(sorted(acts.items())),
            "rejected": len(self.ledger.store.rejected()),
            **self.ledger_proof(),
        }

    def ledger_proof(self) -> dict[str, Any]:
        """The latest signed checkpoint and the consultation's inclusion proof, both checked
        with the standalone verifier an officer would use."""
        self.ledger.checkpoint()
        reader = self.deployment.ledger_reader(self.ledger.store)
        [consultation] = self.ledger.store.entries(act="consultation")
        proof = reader.proof(consultation["seq"])
        cp = verify_checkpoint(proof["checkpoint"], reader.verifier_key, origin=reader.origin)
        verify_inclusion(
            proof["seq"],
            cp.size,
            leaf_hash(proof["entry"].encode()),
            [b64decode(h) for h in proof["hashes"]],
            cp.root,
        )
        return {
            "checkpoint": {"tree_size": cp.size, "note": proof["checkpoint"]},
            "verifier_key": reader.verifier_key,
            "proof": {
                "seq": proof["seq"],
                "act": "consultation",
                "tree_size": cp.size,
                "leaf_hash": proof["leaf_hash"],
                "hashes": proof["hashes"],
                "verified": True,
            },
        }


async def run_demo(settings: Settings) -> DemoSummary:
    started = time.monotonic()
    passphrase = secrets.token_urlsafe(24).encode()
    paths = DataPaths(settings.data_dir)
    directory = provision(paths, SPECS, passphrase=passphrase, now=utc_now())
    agreement = sign_and_load_agreement(
        paths, passphrase, agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])
    )
    async with (
        _bootstrap(settings) as (bootstrap, broker_text),
        KafkaTransport(bootstrap, client_options=client_options(settings, bootstrap)) as transport,
    ):
        deployment = Deployment(
            settings=settings, passphrase=passphrase, transport=transport, agreement=agreement
        )
        await transport.ensure_topics(deployment.topics.all_topics([AREA]))
        run = DemoRun(deployment)
        try:
            await run.start()
            team = await run.form_case_team()
            result = await run.publish()
            seen = await run.attack(result, settings.suite, team)
            eavesdropper = run.eavesdrop(seen)
            consultation = await run.consult()
            matrix = await run.matrix()
            dead = await read_all(transport, [deployment.topics.deadletter], 3)
            audit = await run.audit()
        finally:
            await run.stop()
            deployment.close()
    return DemoSummary(
        area=AREA,
        suite=settings.suite,
        broker=broker_text,
        published={
            "by": POLICE,
            "message_type": result.message_type,
            "message_id": result.message_id,
            "subject_ref": result.subject_ref,
            "topics": list(result.topics),
            "disclosures": [{"agency": a, "view": v.value} for a, v in result.disclosures],
        },
        agencies=list(run.reports.values()),
        agreement={
            "id": agreement.id,
            "version": agreement.version,
            "valid_until": agreement.valid_until,
            "signed_by": "governance key",
        },
        case_team={
            "by": COORDINATOR,
            "members": list(CASE_TEAM),
            "off_team": [OFF_TEAM],
            "told": [a for a, _ in team.disclosures],
        },
        consultation=consultation,
        eavesdropper=eavesdropper,
        dead_letters=len(dead),
        audit=audit,
        matrix=matrix,
        elapsed_seconds=round(time.monotonic() - started, 2),
    )


def render(summary: DemoSummary) -> str:
    lines = [
        f"mappa-broker demo: area {summary.area}, suite {summary.suite}",
        f"broker: {summary.broker}",
        f"agreement: {summary.agreement['id']} v{summary.agreement['version']}, signed by the "
        f"{summary.agreement['signed_by']}, in force until {summary.agreement['valid_until']}",
        "",
        f"{summary.case_team['by']} set the case team first: "
        f"{', '.join(summary.case_team['members'])}",
        f"  not on the team: {', '.join(summary.case_team['off_team'])} (a party, but rules "
        "that need an active role on the case do not reach it)",
        f"{summary.published['by']} published a {summary.published['message_type']} "
        f"(message {summary.published['message_id']})",
        f"  subject reference {summary.published['subject_ref'][:16]}... "
        "(keyed hash, never the PNC id)",
        f"  envelopes on: {', '.join(summary.published['topics'])}",
        "",
        f"{'agency':<36} {'role':<22} {'party':<6} received",
    ]
    first = summary.published["message_id"]
    for a in summary.agencies:
        received = [r for r in a.received if r["message_id"] == first]
        if a.agency_id == summary.published["by"]:
            got = "(sender)"
        elif received:
            got = "; ".join(f"{r['message_type']}: {r['view']} view" for r in received)
        else:
            got = "nothing it can read" + (
                "" if a.party else " (not a party: no key wrapped for it)"
            )
        lines.append(f"{a.agency_id:<36} {a.role:<22} {'yes' if a.party else 'no':<6} {got}")
    lines += ["", "refused (dead-lettered and audited):"]
    for a in summary.agencies:
        for r in a.refused:
            lines.append(f"  {a.agency_id:<34} {r['reason_code']}: {r['reason']}")
    c = summary.consultation
    lines += [
        "",
        f"consultation: {c['user']} at {c['agency']} opened the {c['view']} view with a "
        "justification;",
        f"  fields seen: {', '.join(c['fields_seen'])}",
        f"  victim details present: {c['victim_details_present']}; health notes present: "
        f"{c['health_notes_present']}",
        f"eavesdropper reading every {summary.area} topic with the non-party's keys: "
        f"{summary.eavesdropper['records_seen']} records, {summary.eavesdropper['attempts']} "
        f"attempts to open, {summary.eavesdropper['readable']} readable",
        f"dead-letter topic: {summary.dead_letters} records",
        "",
        f"audit ledger: {summary.audit['records']} records "
        f"({', '.join(f'{k} {v}' for k, v in summary.audit['by_act'].items())}); "
        f"{summary.audit['rejected']} rejected",
        "",
        *render_matrix(summary.matrix),
        "",
        *_ledger_lines(summary.audit),
        f"all parts stopped; {summary.elapsed_seconds} s",
    ]
    return "\n".join(lines)


def _ledger_lines(audit: dict[str, Any]) -> list[str]:
    if "checkpoint" not in audit:
        return []
    p = audit["proof"]
    return [
        "latest signed checkpoint (C2SP signed note):",
        *(f"  {line}" for line in audit["checkpoint"]["note"].rstrip("\n").split("\n")),
        f"  verifier key: {audit['verifier_key']}",
        f"inclusion proof of entry {p['seq']} ({p['act']}) in the tree of {p['tree_size']}: "
        f"{len(p['hashes'])} hashes, verified with the standalone verifier: {p['verified']}",
        *(f"  {h}" for h in p["hashes"]),
    ]


COLUMN_CODES = {
    "police": "POL",
    "probation": "PRB",
    "prison": "PRS",
    "coordinator": "MCU",
    "youth-offending": "YOT",
    "childrens-social-care": "CSC",
    "adult-social-care": "ASC",
    "health": "NHS",
    "housing": "HA",
    "social-landlord": "RSL",
    "jobcentre": "DWP",
    "education": "EDU",
    "electronic-monitoring": "EM",
    "immigration": "IE",
}
CELLS = {"full": "F", "redacted": "R", "summary": "S", "none": "-", "sender": "*"}


def render_matrix(matrix: dict[str, Any]) -> list[str]:
    """Rows: each message type from a permitted sender; columns: every agency."""
    columns = matrix["columns"]
    codes = [
        COLUMN_CODES.get(c["kind"], c["kind"][:3].upper()) if c["party"] else "NP" for c in columns
    ]
    lines = [
        "matrix: every message type from a permitted sender; the view each agency received",
        "  (F full, R redacted, S summary, - nothing, * the sender)",
        f"  {'message type':<30} {'sender':<26}" + "".join(f"{c:>4}" for c in codes),
    ]
    for row in matrix["rows"]:
        cells = "".join(f"{CELLS[row['views'][c['agency_id']]]:>4}" for c in columns)
        lines.append(f"  {row['message_type']:<30} {row['sender']:<26}{cells}")
    lines.append(
        "  columns: "
        + ", ".join(f"{code} {c['agency_id']}" for code, c in zip(codes, columns, strict=True))
    )
    return lines


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end slice on a fresh data directory")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    demo.add_argument("--suite", choices=["classic", "pq-hybrid"], default="classic")
    demo.add_argument("--data-dir", type=Path, help="fresh directory to use (default: temporary)")
    demo.add_argument(
        "--bootstrap",
        help="external Kafka bootstrap (default: MAPPA_KAFKA_BOOTSTRAP, else embedded broker)",
    )
    demo.set_defaults(
        handler=lambda args: demo_main(
            data_dir=args.data_dir,
            suite=args.suite,
            bootstrap=args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None,
            as_json=args.json,
        )
    )


def demo_main(*, data_dir: Path | None, suite: str, bootstrap: str | None, as_json: bool) -> int:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-demo-")))
        elif data_dir.exists() and any(data_dir.iterdir()):
            print(f"mappa demo: {data_dir} is not empty; the demo needs a fresh data directory")
            return 2
        settings = Settings(data_dir=data_dir, suite=suite, kafka_bootstrap=bootstrap)
        summary = run_interruptible(run_demo(settings))
    print(json.dumps(summary.to_json(), indent=2) if as_json else render(summary))
    return 0
