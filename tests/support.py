"""Test helpers: a provisioned world of agencies running on the session's broker.

One ``World`` for every end-to-end test: one area (the default) or several (the
transfer tests, ``tests/two_areas.py``), run by ``Deployment.running`` as ``mappa
serve`` and the demos run it, with every gateway's handled records collected.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from broker.agreements import agreement_for_area
from broker.crypto.encoding import b64encode, jcs, strict_json
from broker.crypto.envelope import Recipient, ViewToSeal, seal, signed_bytes
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import Suite
from broker.deployment import Deployment, Running
from broker.gateway import AgencyGateway
from broker.gateway.agency import AgencyContext
from broker.gateway.audit import sign_event, time_ordered_id
from broker.gateway.handled import Handled, Handling
from broker.gateway.sealing import ViewFor, new_header
from broker.gateway.store import AgencyStore
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.service import LedgerService
from broker.settings import Settings
from broker.transfer.desk import TransferDesk
from broker.transfer.envelopes import STEP_PURPOSE, seal_for_transfers, step_views
from broker.transfer.rules import step_of
from broker.trust.keystore import Keystore
from broker.trust.provision import AgencySpec, DataPaths, provision
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome
from schemas.common import Role, ViewKind, format_timestamp, from_data
from schemas.directory import KeyAlg
from schemas.isa import Agreement
from schemas.messages import ReleaseScheduled, RiskAssessment, derive_view
from schemas.transfer import TransferControl
from tests.brokers import Broker, prepare_namespace

AREA = "staffordshire"
POLICE = "police.staffordshire"
PROBATION = "probation.staffordshire"
PRISON = "prison.hmp-stafford"
HOUSING = "housing.stoke-on-trent"
EDUCATION = "education.staffordshire"
SPECS = (
    AgencySpec(POLICE, "Staffordshire Police", Role.POLICE, (AREA,)),
    AgencySpec(PROBATION, "Probation Service Staffordshire", Role.PROBATION, (AREA,)),
    AgencySpec(PRISON, "HMP Stafford", Role.PRISON, (AREA,)),
    AgencySpec(HOUSING, "Stoke-on-Trent Housing", Role.HOUSING, (AREA,)),
    AgencySpec(EDUCATION, "Staffordshire Education", Role.EDUCATION, (AREA,)),
)
PARTIES = (POLICE, PROBATION, PRISON, HOUSING)
PNC = "2011/0456789K"


def risk_assessment(pnc: str = PNC, **overrides: Any) -> RiskAssessment:
    data: dict[str, Any] = {
        "subject": {"pnc_id": pnc, "name": "Alex Sample", "date_of_birth": "1980-03-14"},
        "area": AREA,
        "category": 1,
        "level": 2,
        "tool": "ARMS",
        "assessed_on": "2026-11-02",
        "risk_of_serious_harm": "high",
        "risk_to": ["children"],
        "factors": ["access to children"],
        "summary": "High risk to children.",
        "victims": [
            {
                "name": "Jane Witness",
                "relationship": "former partner",
                "address": {"line1": "1 Example Road", "town": "Stafford", "postcode": "ST16 1AA"},
            }
        ],
        "health_notes": "Community mental health team.",
        "intelligence_source": "CHIS 4411",
    }
    data.update(overrides)
    return from_data(RiskAssessment, data)


def release_scheduled(pnc: str = PNC) -> ReleaseScheduled:
    return from_data(
        ReleaseScheduled,
        {
            "subject": {"pnc_id": pnc, "name": "Alex Sample", "date_of_birth": "1980-03-14"},
            "area": AREA,
            "category": 1,
            "level": 2,
            "release_date": "2026-12-01",
            "establishment": "HMP Stafford",
            "release_address": {
                "line1": "Approved Premises",
                "town": "Stoke",
                "postcode": "ST4 1AA",
            },
            "address_approved": True,
            "victim_requested_conditions": ["no contact with Jane Witness"],
        },
    )


@dataclass
class World:
    """A running deployment and what each of its gateways has handled so far."""

    deployment: Deployment
    running: Running
    passphrase: bytes
    stack: AsyncExitStack
    handled: dict[str, list[Handled]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for agency, gw in self.gateways.items():
            gw.on_handled(self._collector(agency))

    def _collector(self, agency: str) -> Callable[[Handled], None]:
        return lambda h: self.handled.setdefault(agency, []).append(h)

    @property
    def transport(self) -> KafkaTransport:
        return self.running.transport

    @property
    def gateways(self) -> dict[str, AgencyGateway]:
        return self.running.gateways

    @property
    def desks(self) -> dict[str, TransferDesk]:
        return self.running.desks

    @property
    def ledger(self) -> LedgerService:
        assert self.running.ledger is not None
        return self.running.ledger

    def gw(self, agency_id: str) -> AgencyGateway:
        return self.gateways[agency_id]

    def desk(self, agency_id: str) -> TransferDesk:
        return self.desks[agency_id]

    async def _round(self) -> None:
        for gw in self.gateways.values():
            await gw.poll_once(timeout_ms=30)

    async def pump(self, until: Callable[[], bool], *, within: float = 20.0) -> None:
        """Poll every gateway until ``until()``; fails the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s: {self.handled}")
            await self._round()

    async def pump_quiet(self, rounds: int = 5) -> None:
        """Poll a few extra rounds, to see that nothing more arrives."""
        for _ in range(rounds):
            await self._round()

    def of(self, agency_id: str, handling: Handling, topic_part: str = "") -> list[Handled]:
        """What ``agency_id``'s gateway made of envelopes (receipts apart: ``receipts``)
        on topics whose name holds ``topic_part``."""
        receipts = self.deployment.topics.receipts
        return [
            h
            for h in self.handled.get(agency_id, [])
            if h.handling is handling and topic_part in h.topic and h.topic != receipts
        ]

    def receipts(self, agency_id: str, handling: Handling = Handling.RECEIPT) -> list[Handled]:
        """What ``agency_id``'s gateway made of the receipts topic's records."""
        receipts = self.deployment.topics.receipts
        return [
            h
            for h in self.handled.get(agency_id, [])
            if h.handling is handling and h.topic == receipts
        ]

    def delivered(self, agency_id: str) -> list[Handled]:
        return self.of(agency_id, Handling.DELIVERED)

    async def sync_ledger(self, *, within: float = 20.0) -> int:
        expected = sum(gw.ctx.audit.emitted for gw in self.gateways.values())
        held = await self.ledger.catch_up(expected, within=within)
        if held < expected:
            raise AssertionError(f"ledger has {held} of {expected}")
        return expected

    async def read(self, topic: str, at_least: int = 0, *, within: float = 10.0) -> list[Record]:
        return await read_topic(self.transport, topic, at_least, within=within)

    async def post(self, value: bytes) -> None:
        """Put a record straight onto the transfer topic, as any signed agency could."""
        await self.transport.send(self.deployment.topics.transfers, value, key=b"x")

    def seal(
        self,
        sender: str,
        views: Sequence[ViewFor],
        *,
        area: str,
        message_type: str,
        subject_ref: str,
        purpose: str,
    ) -> bytes:
        """A record value for the transfer topic, sealed and signed as ``sender`` by the
        broker's own ``seal_for_transfers`` whatever the views hold and the header says,
        as a faulty or compromised adapter could."""
        ctx = self.gw(sender).ctx
        return seal_for_transfers(
            ctx,
            now=ctx.clock(),
            area=area,
            message_type=message_type,
            schema_version=1,
            subject_ref=subject_ref,
            purpose=purpose,
            isa=(ctx.policy.agreement.id, ctx.policy.agreement.version),
            views=views,
        ).value

    def seal_step(self, sender: str, message: TransferControl) -> bytes:
        """``message`` sealed as ``sender`` for every case holder of both areas, as the
        sender's desk would seal it but without the desk's own checks (as a faulty or
        compromised adapter could send it)."""
        return self.seal(
            sender,
            step_views(self.gw(sender).ctx, message),
            area=message.from_area,
            message_type=step_of(message).message_type,
            subject_ref=message.subject_ref,
            purpose=f"{STEP_PURPOSE}{message.transfer_id}",
        )

    def seed_case_team(self, members: Sequence[str], pnc: str = PNC) -> None:
        """Put a case team straight into every adapter's record, as if the co-ordinator's
        message had arrived: set-up for tests that are not about case teams but share
        under rules that need an active role (tests/test_enforcement.py sends real ones)."""
        ref = self.deployment.subject_ref(pnc)
        for gw in self.gateways.values():
            with gw.ctx.store.transaction():
                gw.ctx.store.record_case_team(
                    ref,
                    members,
                    lead_agency=members[0],
                    set_at=format_timestamp(datetime.now(UTC) - timedelta(days=1)),
                    message_id=str(uuid.uuid4()),
                )

    async def close(self) -> None:
        """Stop everything the world started and close its stores."""
        await self.stack.aclose()


def resign(world: World, document: dict[str, Any], signer: str) -> bytes:
    """Sign ``document`` with a real agency's current key, as a compromised sender could."""
    key = world.gw(signer).ctx.keys.signing[KeyAlg.ED25519]
    document["signatures"] = [
        {
            "alg": "ed25519",
            "key_id": key.key_id,
            "signature": b64encode(key.sign(signed_bytes(document))),
        }
    ]
    return jcs(document)


def signed_audit_event(ctx: AgencyContext) -> dict[str, Any]:
    """A validly signed audit event from ``ctx``'s agency (POLICE: a delivery), as a document."""
    event = AuditEvent(
        event_id=time_ordered_id(),
        time=format_timestamp(datetime.now(UTC)),
        act=AuditAct.COLLECTION,
        operation=Operation.DELIVER,
        agency=POLICE,
        outcome=Outcome.OK,
        isa_id=ctx.policy.agreement.id,
        isa_version=1,
    )
    return cast(
        dict[str, Any], json.loads(sign_event(event, ctx.audit.signing_key).model_dump_json())
    )


def seal_as(
    world: World,
    sender: str,
    recipients: tuple[str, ...],
    topic: str,
    *,
    signers: list[PrivateKey] | None = None,
    suite: Suite | None = None,
    view_kind: ViewKind = ViewKind.FULL,
    body: dict[str, Any] | None = None,
    **header_fields: Any,
) -> dict[str, Any]:
    """A fresh, correctly sealed envelope from ``sender`` (signed by its current keys
    under its suite unless ``signers`` or ``suite`` says otherwise) holding one
    ``view_kind`` view of a risk assessment (or ``body``), as a document."""
    ctx = world.gw(sender).ctx
    now = ctx.clock()
    suite = suite or ctx.suite
    signers = signers or ctx.keys.signers_for(suite.signature_keys)
    agreement = ctx.policy.agreement
    header = new_header(
        suite=suite,
        sender=sender,
        signers=signers,
        now=now,
        topic=topic,
        area=AREA,
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=world.deployment.subject_ref(PNC),
        isa=(agreement.id, agreement.version),
        purpose="risk management",
        lawful_basis="DPA 2018 Part 3",
    ).model_copy(update=header_fields)
    keys = tuple(
        Recipient(a, ctx.directory.encryption_key(a, suite=suite, at=now)) for a in recipients
    )
    plaintext = jcs(body if body is not None else derive_view(risk_assessment(), view_kind))
    view = ViewToSeal(view_kind, plaintext, keys)
    return strict_json(seal(header=header, views=[view], signers=signers, suite=suite))


async def build_world(
    tmp_path: Path,
    broker: Broker,
    *,
    specs: Sequence[AgencySpec] = SPECS,
    parties: Sequence[str] | None = PARTIES,
    areas: Sequence[str] = (AREA,),
    suite: str = "classic",
    clock: Callable[[], datetime] | None = None,
    tailor: Callable[[Agreement], Agreement] | None = None,
    serving: Sequence[str] | None = None,
    **settings: Any,
) -> World:
    """``specs`` provisioned in a fresh data directory and topic namespace, one agreement
    per area of ``areas`` (with ``parties`` of that area, or all its agencies if None,
    then ``tailor``), every agency (or those ``serving``) running on ``broker`` with the
    ledger. On the secured
    Apache cluster the topics and ACLs are set up first, as the platform team would, and
    each agency connects as its own principal."""
    config = Settings(
        data_dir=tmp_path / "data",
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        suite=suite,
        **broker.settings,
        **settings,
    )
    passphrase = secrets.token_urlsafe(18).encode()
    # Keys valid from a day back, as in a deployment that has been running a while.
    now = (clock() if clock else datetime.now(UTC)) - timedelta(days=1)
    directory = provision(
        DataPaths(config.data_dir), specs, passphrase=passphrase, now=now, suites=(suite,)
    )
    agreements = []
    for area in areas:
        members = directory.agencies(area=area)
        if parties is not None:
            members = [a for a in members if a.agency_id in parties]
        agreement = agreement_for_area(area, members)
        agreements.append(tailor(agreement) if tailor is not None else agreement)
    if broker.secured:
        await asyncio.to_thread(
            prepare_namespace, broker, config, directory.agencies(), agreements, areas
        )
    deployment = Deployment(
        settings=config,
        passphrase=passphrase,
        agreements=agreements,
        **({"clock": clock} if clock else {}),
    )
    stack = AsyncExitStack()
    try:
        served = serving if serving is not None else [s.agency_id for s in specs]
        running = await stack.enter_async_context(deployment.running(served))
    except BaseException:
        await stack.aclose()
        raise
    return World(deployment, running, passphrase, stack)


def seed_case_team_on_disk(
    data_dir: Path, passphrase: bytes, members: Sequence[str], pnc: str = PNC
) -> None:
    """As ``World.seed_case_team``, for a deployment whose adapters are not yet running
    (a server a test is about to start): written straight into each agency's store."""
    paths = DataPaths(data_dir)
    ref = Keystore(paths.keys, passphrase).load_subject_key().reference(pnc)
    for agency in members:
        store = AgencyStore(paths.agency_store(agency))
        try:
            with store.transaction():
                store.record_case_team(
                    ref,
                    members,
                    lead_agency=members[0],
                    set_at=format_timestamp(datetime.now(UTC) - timedelta(days=1)),
                    message_id=str(uuid.uuid4()),
                )
        finally:
            store.close()


async def read_topic(
    transport: KafkaTransport, topic: str, at_least: int = 0, *, within: float = 10.0
) -> list[Record]:
    """Every record on ``topic``: waits for ``at_least``, then until a poll is empty."""
    records: list[Record] = []
    deadline = time.monotonic() + within
    async with await transport.reader([topic], {}) as reader:
        while time.monotonic() < deadline:
            batch = await reader.poll(timeout_ms=100)
            records += batch
            if len(records) >= at_least and not batch:
                break
    return records
