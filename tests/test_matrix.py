"""The default agreement is DOMAIN.md's "who may see what" table, and the wire obeys it.

The table is written out here a second time, as the domain brief has it, so that
the agreement file and the delivered views are both checked against it. The
broker test sends every message type from every permitted sender in a world with
one agency of every kind, and checks, for every agency, the view it received,
including nothing.

"C" cells (active role on the case required): every party is put on the case
team first, so the rule's view is what every agency of the role receives; who is
kept out by the case team is tested in tests/test_enforcement.py. The case team
itself is a product message, not a row of the domain's table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.agreements import template_data
from broker.gateway.handled import Handling
from broker.trust.provision import DEMO_NON_PARTY, DEMO_PARTIES, DEMO_ROSTER
from schemas.common import Role, ViewKind
from schemas.messages import CATALOGUE
from schemas.messages.examples import example
from tests.brokers import Broker
from tests.support import build_world

COLUMNS = (
    Role.POLICE,
    Role.PROBATION,
    Role.PRISON,
    Role.YOUTH_OFFENDING,
    Role.SOCIAL_CARE,
    Role.HEALTH,
    Role.HOUSING,
    Role.JOBCENTRE,
    Role.IMMIGRATION,
    Role.ELECTRONIC_MONITORING,
    Role.COORDINATOR,
)
# DOMAIN.md, "Who may see what": F full, R redacted, S summary, C- active role required.
TABLE = {
    "eligibility": "F F F C-R - C-R - - C-R - F",
    "referral, risk assessment, RMP": "F F F C-R C-R C-R C-R C-S C-R C-S F",
    "level set, exit": "F F F C-S C-S C-S C-S C-S C-S C-S F",
    "minutes": "F F F C-F C-F C-F C-F C-S C-F C-S F",
    "RSO notification, breach outcome": "F C-F C-R - - - - - C-S - S",
    "orders, licence conditions": "F F C-F C-R C-R C-R C-R - C-R C-R F",
    "release, breach/recall": "F F F C-R C-R C-R C-R C-S C-S C-R F",
    "area transfer": "F F C-S C-S C-S C-S C-S C-S - C-S F",
    "disclosure decision": "F F - - C-S - - - - - F",
    "victim views": "R F - - - - - - - - R",
    "serious further offence": "F F F C-S C-S C-S - - - - F",
}
ROW_OF = {
    "eligibility-notified": "eligibility",
    "level-referral": "referral, risk assessment, RMP",
    "risk-assessment": "referral, risk assessment, RMP",
    "risk-management-plan-updated": "referral, risk assessment, RMP",
    "level-set": "level set, exit",
    "exit-from-mappa": "level set, exit",
    "meeting-minutes": "minutes",
    "rso-notification-recorded": "RSO notification, breach outcome",
    "notification-breach-outcome": "RSO notification, breach outcome",
    "civil-order-made": "orders, licence conditions",
    "licence-conditions-set": "orders, licence conditions",
    "release-scheduled": "release, breach/recall",
    "breach-recall": "release, breach/recall",
    "area-transfer": "area transfer",
    "disclosure-decision": "disclosure decision",
    "victim-views": "victim views",
    "serious-further-offence": "serious further offence",
}
LETTERS = {"F": ViewKind.FULL, "R": ViewKind.REDACTED, "S": ViewKind.SUMMARY}


def cell(message_type: str, role: Role) -> tuple[ViewKind | None, bool]:
    """The table's view for ``role``, and whether an active role is required."""
    if role not in COLUMNS:
        return None, False  # education is not in the table: nothing
    text = TABLE[ROW_OF[message_type]].split()[COLUMNS.index(role)]
    if text == "-":
        return None, False
    return LETTERS[text[-1]], text.startswith("C-")


DOMAIN_TYPES = [t for t in CATALOGUE if t != "case-team"]


def test_the_table_covers_every_message_type() -> None:
    assert set(ROW_OF) == set(DOMAIN_TYPES)
    assert all(len(row.split()) == len(COLUMNS) for row in TABLE.values())


def test_the_default_agreement_is_the_domain_table() -> None:
    data = template_data()
    rules = {(r["message_type"], Role(r["role"])): r for r in data["rules"]}
    for message_type in DOMAIN_TYPES:
        for role in Role:
            view, active = cell(message_type, role)
            rule = rules.get((message_type, role))
            if view is None:
                assert rule is None or rule["access"] == "none", (message_type, role)
                continue
            assert rule is not None, (message_type, role)
            assert rule["access"] == view.value, (message_type, role)
            assert bool(rule.get("active_role_required", False)) is active, (message_type, role)
    publishers = {p["message_type"]: p["roles"] for p in data["publishers"]}
    assert set(publishers) == set(CATALOGUE)
    assert publishers["victim-views"] == ["probation"]
    assert publishers["level-set"] == publishers["meeting-minutes"] == ["coordinator"]


async def test_every_type_from_every_permitted_sender_reaches_exactly_its_views(
    tmp_path: Path, any_broker: Broker
) -> None:
    world = await build_world(tmp_path, any_broker, specs=DEMO_ROSTER, parties=DEMO_PARTIES)
    world.seed_case_team(DEMO_PARTIES)
    try:
        publishers = {p.message_type: p.roles for p in world.deployment.agreement.publishers}
        roster = {s.agency_id: s.role for s in DEMO_ROSTER}
        expected: dict[tuple[str, str], ViewKind] = {}
        sent: list[tuple[str, str, str]] = []
        for message_type in DOMAIN_TYPES:
            senders = [a for a in DEMO_PARTIES if roster[a] in publishers[message_type]]
            assert senders, message_type
            for sender in senders:
                result = await world.gw(sender).publish(
                    example(message_type), purpose="MAPPA risk management", user="matrix"
                )
                sent.append((result.message_id, message_type, sender))
                for agency, role in roster.items():
                    view, _ = cell(message_type, role)
                    if view is not None and agency not in (sender, DEMO_NON_PARTY):
                        expected[(result.message_id, agency)] = view

        def received() -> dict[tuple[str, str], ViewKind]:
            return {
                (h.message_id or "", agency): h.view
                for agency in roster
                for h in world.of(agency, Handling.DELIVERED)
                if h.view is not None
            }

        await world.pump(lambda: expected.keys() <= received().keys(), within=90)
        await world.pump_quiet()
        got = received()
        # Compare per message, so a failure names the type, the sender and the agency.
        for message_id, message_type, sender in sent:
            want = {a: v for (m, a), v in expected.items() if m == message_id}
            have = {a: v for (m, a), v in got.items() if m == message_id}
            assert have == want, f"{message_type} from {sender}"
        assert len(got) == len(expected)
        assert not [h for a in roster for h in world.of(a, Handling.REFUSED)]
    finally:
        await world.close()


@pytest.mark.parametrize("message_type", sorted(CATALOGUE))
def test_every_type_has_a_sender_in_the_roster(message_type: str) -> None:
    publishers = {p["message_type"]: p["roles"] for p in template_data()["publishers"]}
    roles = {s.role.value for s in DEMO_ROSTER if s.agency_id in DEMO_PARTIES}
    assert set(publishers[message_type]) <= roles
