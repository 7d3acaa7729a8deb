"""`mappa demo`: one offender, one area, every part real, on a fresh data directory.

Police publish an ARMS risk assessment; probation and prison receive the full
view, housing the redacted view, and an agency that is not a party receives
nothing it can read. Then a forged message from an unknown agency and a tampered
copy of a real one arrive and are refused, dead-lettered and audited. A housing
officer opens the record (a consultation, with a justification). The summary
says who received what, what was refused and why, and what the audit ledger holds.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
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
from broker.cli.demo.report import AgencyReport, DemoSummary
from broker.crypto.encoding import b64decode, jcs, strict_json
from broker.crypto.envelope import Recipient, ViewToSeal, open_view, seal
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import suite_named
from broker.deployment import Deployment, Running
from broker.errors import ConfigurationError, MappaError
from broker.gateway import AgencyGateway
from broker.gateway.agency import utc_now
from broker.gateway.handled import Handled, Handling
from broker.gateway.publish import PublishResult
from broker.gateway.sealing import new_header
from broker.kafka.acls import scram_user
from broker.kafka.apache import KAFKA_VERSION
from broker.kafka.secured import secured_cluster
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.verify_proofs import (
    leaf_hash,
    verify_checkpoint,
    verify_inclusion,
    verify_policy_signature,
    verify_witnessed,
)
from broker.ledger.witnessing import witness_summary
from broker.settings import Settings
from broker.trust.admin import governance_key
from broker.trust.directory import Directory
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
from broker.witness.policy import policy_path
from schemas.common import Role, ViewKind, from_data
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


async def settle(
    gateways: Iterable[AgencyGateway], done: Callable[[], bool], *, within: float = 20.0
) -> None:
    """Poll every gateway until ``done()``; raises ``TimeoutError`` after ``within``
    seconds. What each poll handles reaches the gateways' listeners."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("deliveries did not settle in time")
        for gw in gateways:
            await gw.poll_once(timeout_ms=50)


async def read_all(transport: KafkaTransport, topics: list[str], at_least: int) -> list[Record]:
    """Everything on ``topics`` from the beginning (at least ``at_least`` records, unless
    they do not come within about five seconds)."""
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
    header = new_header(
        suite=suite,
        sender="rogue.unknown",
        signers=rogue,
        now=now,
        topic=deployment.topics.for_role(AREA, entry.role),
        area=AREA,
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=deployment.subject_ref(ARMS_RECORD["pnc"]),
        isa=(deployment.agreement.id, deployment.agreement.version),
        purpose="forged",
        lawful_basis="none",
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


def case_team_message(directory: Directory) -> CaseTeam:
    """The demo subject's case team (``CASE_TEAM``, probation leading), from today."""
    return from_data(
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
                {"agency_id": a, "role": directory.agency(a).role.value} for a in CASE_TEAM
            ],
        },
    )


class DemoRun:
    """The scenario, one method per step, on a running deployment."""

    def __init__(self, deployment: Deployment, running: Running) -> None:
        if running.ledger is None:
            raise ConfigurationError("the demo needs the audit ledger running")
        self.deployment = deployment
        self.transport = running.transport
        self.gateways = running.gateways
        self.ledger = running.ledger
        self.reports = {
            s.agency_id: AgencyReport(s.agency_id, s.role.value, s.agency_id in PARTIES)
            for s in SPECS
        }
        for agency, gw in self.gateways.items():
            gw.on_handled(self._recorder(agency))
        # Every agency polls: police too, as it receives from the others in the matrix.
        self.receivers = list(self.gateways.values())

    def _recorder(self, agency_id: str) -> Callable[[Handled], None]:
        return lambda handled: self.record(agency_id, handled)

    def record(self, agency_id: str, handled: Handled) -> None:
        """Note what ``agency_id``'s gateway made of a record, for the summary."""
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
        )
        return result

    def got(self, agency_id: str, message_type: str) -> bool:
        return any(r["message_type"] == message_type for r in self.reports[agency_id].received)

    async def form_case_team(self) -> PublishResult:
        """The co-ordination unit says who is active on the case, before anything else:
        rules that need an active role reach only these agencies."""
        team = case_team_message(self.deployment.directory)
        result = await self.gateways[COORDINATOR].publish(
            team, purpose="MAPPA case management", user="mappa.coordinator.12"
        )
        await settle(
            self.receivers,
            lambda: all(self.got(a, result.message_type) for a, _ in result.disclosures),
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
        )
        return seen

    async def broker_refusals(self) -> dict[str, int]:
        """The non-party's own Kafka credential against every topic of the area: how many
        the broker itself refuses to let it fetch. Only a cluster with ACLs can refuse
        (tansu has none), and only where each agency has a credential of its own."""
        settings = self.deployment.settings
        topics = self.deployment.topics.area_topics(AREA)
        if settings.kafka_credentials_dir is None:
            return {"topics": len(topics), "refused": 0}
        user = scram_user(self.deployment.directory.agency(NON_PARTY).kafka_principal)
        refused = 0
        async with KafkaTransport(
            settings, bootstrap=self.transport.bootstrap, username=user
        ) as own:
            for topic in topics:
                refused += not await own.may_fetch(topic)
        return {"topics": len(topics), "refused": refused}

    def eavesdrop(self, seen: list[Record]) -> dict[str, int]:
        """The non-party's keys against every record (fetched by the process's own
        principal: on a secured cluster the platform operator, who may read everything),
        as itself and as each addressee."""
        eavesdropper = self.deployment.context(NON_PARTY)
        readable = attempts = 0
        for r in seen:
            verified = eavesdropper.verifier.verify(r.value, topic=r.topic, record_time=utc_now())
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
        )
        # A few more rounds, so that anything delivered beyond the disclosures shows.
        for _ in range(3):
            for gw in self.receivers:
                await gw.poll_once(timeout_ms=20)
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
        # The same checkpoint with its witnesses' cosignatures, checked as an officer
        # would: the governance-signed policy and the note, by the standalone verifier.
        witnessed = witness_summary(
            self.ledger.store, reader.witness_policy, cp.size, proof["checkpoint"]
        )
        policy = verify_policy_signature(
            json.loads(policy_path(self.deployment.paths.root).read_text()),
            load_governance_public(self.deployment.paths).raw,
        )
        _, signers = verify_witnessed(witnessed["witnessed_note"], policy)
        return {
            "checkpoint": {"tree_size": cp.size, "note": witnessed["witnessed_note"]},
            "witnesses": {
                "signed": list(signers),
                "count": len(policy.witnesses),
                "threshold": policy.threshold,
                "verified": True,
            },
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


async def run_demo(settings: Settings, *, apache: bool = False) -> DemoSummary:
    """Provision a fresh data directory, run every step on a running deployment, stop
    everything; returns the summary. With ``apache``, on a 3-node Apache Kafka cluster
    started here (SASL_SSL, the agreement's ACLs, each agency its own credential)."""
    started = time.monotonic()
    passphrase = secrets.token_urlsafe(24).encode()
    paths = DataPaths(settings.data_dir)
    directory = provision(
        paths, SPECS, passphrase=passphrase, now=utc_now(), suites=(settings.suite,)
    )
    agreement = sign_and_load_agreement(
        paths, passphrase, agreement_for_area(AREA, [directory.agency(a) for a in PARTIES])
    )
    if not apache:
        return await _run(settings, passphrase, agreement, started, "")
    kafka = settings.data_dir / "kafka"
    agencies = directory.agencies()
    async with secured_cluster(kafka, settings, agencies, [agreement], [AREA]) as secured:
        cluster, on_it, bindings = secured
        broker = (
            f"Apache Kafka {KAFKA_VERSION}, 3 KRaft nodes at {cluster.bootstrap}: SASL_SSL "
            f"(SCRAM-SHA-512), {len(bindings)} ACLs from the agreement, each agency its own "
            f"principal; started in {cluster.startup_seconds:.1f} s, stopped on exit"
        )
        return await _run(on_it, passphrase, agreement, started, broker)


async def _run(
    settings: Settings, passphrase: bytes, agreement: Agreement, started: float, broker: str
) -> DemoSummary:
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=[agreement])
    async with deployment.running([s.agency_id for s in SPECS]) as running:
        run = DemoRun(deployment, running)
        team = await run.form_case_team()
        result = await run.publish()
        seen = await run.attack(result, settings.suite, team)
        eavesdropper = run.eavesdrop(seen) | {
            f"broker_{k}": v for k, v in (await run.broker_refusals()).items()
        }
        consultation = await run.consult()
        matrix = await run.matrix()
        dead = await read_all(running.transport, [deployment.topics.deadletter], 3)
        audit = await run.audit()
    return DemoSummary(
        area=AREA,
        suite=settings.suite,
        broker=broker or running.broker,
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
