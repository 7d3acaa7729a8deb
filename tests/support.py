"""Test helpers: a small provisioned world of agencies on the session's broker."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.agreements import agreement_for_area
from broker.crypto.encoding import b64encode, jcs, strict_json
from broker.crypto.envelope import Recipient, ViewToSeal, seal, signed_bytes
from broker.crypto.keys import PrivateKey
from broker.deployment import Deployment
from broker.gateway import AgencyGateway
from broker.gateway.receive import Handled, Handling
from broker.gateway.store import AgencyStore
from broker.kafka.transport import KafkaTransport, Record
from broker.ledger.service import LedgerService
from broker.settings import Settings
from broker.trust.keystore import Keystore
from broker.trust.provision import AgencySpec, DataPaths, provision
from schemas.common import Classification, Role, ViewKind, format_timestamp, from_data
from schemas.directory import KeyAlg
from schemas.envelope import EnvelopeHeader
from schemas.isa import Agreement
from schemas.messages import ReleaseScheduled, RiskAssessment, derive_view

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
    deployment: Deployment
    gateways: dict[str, AgencyGateway]
    ledger: LedgerService
    passphrase: bytes
    handled: dict[str, list[Handled]] = field(default_factory=dict)

    @property
    def transport(self) -> KafkaTransport:
        return self.deployment.transport

    def gw(self, agency_id: str) -> AgencyGateway:
        return self.gateways[agency_id]

    async def pump(self, until: Callable[[], bool], *, within: float = 15.0) -> None:
        """Poll every gateway until ``until()``; fails the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s: {self.handled}")
            for gw in self.gateways.values():
                self.handled.setdefault(gw.agency_id, []).extend(await gw.poll_once(timeout_ms=30))

    async def pump_quiet(self, rounds: int = 5) -> None:
        """Poll a few extra rounds, to see that nothing more arrives."""
        for _ in range(rounds):
            for gw in self.gateways.values():
                self.handled.setdefault(gw.agency_id, []).extend(await gw.poll_once(timeout_ms=30))

    def of(self, agency_id: str, handling: Handling) -> list[Handled]:
        return [h for h in self.handled.get(agency_id, []) if h.handling is handling]

    async def sync_ledger(self, *, within: float = 15.0) -> int:
        expected = sum(gw.ctx.audit.emitted for gw in self.gateways.values())
        held = await self.ledger.catch_up(expected, within=within)
        if held < expected:
            raise AssertionError(f"ledger has {held} of {expected}")
        return expected

    async def read(self, topic: str, at_least: int = 0, *, within: float = 10.0) -> list[Record]:
        return await read_topic(self.transport, topic, at_least, within=within)

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
        await self.ledger.stop()
        for gw in self.gateways.values():
            await gw.stop()
        self.deployment.close()


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


def seal_as(
    world: World,
    sender: str,
    recipients: tuple[str, ...],
    topic: str,
    *,
    signers: list[PrivateKey] | None = None,
    view_kind: ViewKind = ViewKind.FULL,
    body: dict[str, Any] | None = None,
    **header_fields: Any,
) -> dict[str, Any]:
    """A fresh, correctly sealed envelope from ``sender`` (signed by its current keys
    unless ``signers`` says otherwise) holding one ``view_kind`` view of a risk
    assessment (or ``body``), as a document."""
    ctx = world.gw(sender).ctx
    now = ctx.clock()
    suite = ctx.suite
    signers = signers or ctx.keys.signers_for(suite.signature_keys)
    agreement = ctx.policy.agreement
    header = EnvelopeHeader(
        envelope_version=1,
        suite=suite.name,
        message_id=str(uuid.uuid4()),
        created_at=format_timestamp(now),
        sender=sender,
        sender_keys=tuple(k.key_id for k in signers),
        area="staffordshire",
        topic=topic,
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=world.deployment.subject_ref(PNC),
        isa_id=agreement.id,
        isa_version=agreement.version,
        purpose="risk management",
        lawful_basis="DPA 2018 Part 3",
        classification=Classification.OFFICIAL_SENSITIVE,
    ).model_copy(update=header_fields)
    keys = tuple(
        Recipient(a, ctx.directory.encryption_key(a, suite=suite, at=now)) for a in recipients
    )
    plaintext = jcs(body if body is not None else derive_view(risk_assessment(), view_kind))
    view = ViewToSeal(view_kind, plaintext, keys)
    return strict_json(seal(header=header, views=[view], signers=signers, suite=suite))


async def build_world(
    tmp_path: Path,
    transport: KafkaTransport,
    *,
    specs: Sequence[AgencySpec] = SPECS,
    parties: Sequence[str] = PARTIES,
    suite: str = "classic",
    clock: Callable[[], datetime] | None = None,
    tailor: Callable[[Agreement], Agreement] | None = None,
    **settings: Any,
) -> World:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    config = Settings(
        data_dir=tmp_path / "data", topic_namespace=namespace, suite=suite, **settings
    )
    passphrase = secrets.token_urlsafe(18).encode()
    # Keys valid from a day back, as in a deployment that has been running a while.
    now = (clock() if clock else datetime.now(UTC)) - timedelta(days=1)
    directory = provision(DataPaths(config.data_dir), specs, passphrase=passphrase, now=now)
    agreement = agreement_for_area(AREA, [directory.agency(a) for a in parties])
    if tailor is not None:
        agreement = tailor(agreement)
    deployment = Deployment(
        settings=config,
        passphrase=passphrase,
        transport=transport,
        agreement=agreement,
        **({"clock": clock} if clock else {}),
    )
    await transport.ensure_topics(deployment.topics.all_topics([AREA]))
    gateways = {s.agency_id: deployment.gateway(s.agency_id) for s in specs}
    ledger = deployment.ledger()
    for gw in gateways.values():
        await gw.start()
    await ledger.start()
    return World(deployment, gateways, ledger, passphrase)


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
