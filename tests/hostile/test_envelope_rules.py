"""The envelope rules an implementation written from docs/envelope.md alone showed to be
missing or unstated (issue 16): backdating, replay identity, agreement version, the area
pattern, and a replay store that must still open from an older data directory. Each test
makes the rule refuse (or, for replay identity, deliver) with real keys and real parts.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import astuple
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from broker.crypto.encoding import jcs, strict_json
from broker.errors import MappaError
from broker.gateway.handled import Handling
from broker.gateway.receive import can_pass
from broker.gateway.store import UNKNOWN_SENDER, AgencyStore, InboxItem
from broker.gateway.verification import EnvelopeVerifier
from broker.kafka.transport import Record
from broker.trust.directory import Directory
from schemas.common import Role, format_timestamp, parse_timestamp
from schemas.directory import AgencyEntry, KeyAlg
from tests.brokers import Broker
from tests.support import AREA, POLICE, PRISON, PROBATION, World, build_world, seal_as
from tests.vectors import generate as vectors

SKEW = timedelta(seconds=300)
WINDOW = timedelta(days=14)


# -- unit level: the stateless checks, with the published vectors' keys ------------------------


def verifier_for(directory: Directory) -> EnvelopeVerifier:
    return EnvelopeVerifier(
        directory=directory,
        allowed_suites=frozenset({"classic", "pq-hybrid"}),
        clock_skew=SKEW,
        replay_window=WINDOW,
        topic_in_area=vectors.TOPICS.in_area,
    )


def superseded_directory(not_after: str) -> Directory:
    """The vectors' directory with the sender's Ed25519 key superseded at ``not_after``
    (a rotation: cut, not revoked)."""
    document = vectors.directory_document(revoked=False)
    agencies: list[AgencyEntry] = []
    for agency in document.agencies:
        keys = tuple(
            k.model_copy(update={"not_after": not_after})
            if agency.agency_id == vectors.SENDER and k.alg is KeyAlg.ED25519
            else k
            for k in agency.keys
        )
        agencies.append(agency.model_copy(update={"keys": keys}))
    return Directory(document.model_copy(update={"agencies": tuple(agencies)}))


@pytest.fixture(scope="module")
def classic_envelope() -> bytes:
    return str(vectors.seal_valid("hostile-backdating", "classic")["envelope"]).encode()


def outcome(
    verifier: EnvelopeVerifier, value: bytes, *, record_time: datetime, now: datetime
) -> str:
    try:
        verified = verifier.verify(value, topic=vectors.TOPIC, record_time=record_time)
        verifier.check_fresh(verified, now)
    except MappaError as exc:
        return exc.code
    return "accepted"


CREATED = parse_timestamp(vectors.CREATED_AT)


def test_a_superseded_key_cannot_sign_backdated_envelopes(classic_envelope: bytes) -> None:
    # The key was cut 30 s after the envelope's claimed time; the broker appended it a day
    # later. Judged at the claimed time alone it passed: a key holder could sign "in the
    # past" for the whole replay window after the key was superseded.
    not_after = CREATED + timedelta(seconds=30)
    verifier = verifier_for(superseded_directory(format_timestamp(not_after)))
    late = not_after + timedelta(days=1)
    assert outcome(verifier, classic_envelope, record_time=late, now=late) == "envelope.backdated"
    # Appended within the tolerance after not_after (a sender's outbox, a clock a little
    # off), the same envelope is taken.
    prompt = not_after + SKEW - timedelta(seconds=1)
    assert outcome(verifier, classic_envelope, record_time=prompt, now=prompt) == "accepted"
    # At exactly not_after + tolerance it is no longer.
    edge = not_after + SKEW
    assert outcome(verifier, classic_envelope, record_time=edge, now=edge) == "envelope.backdated"


def test_created_at_ahead_of_the_append_time_is_refused(classic_envelope: bytes) -> None:
    # The broker appended it ten minutes before its claimed creation; the receiver reads
    # it later, when the claim no longer looks like the future.
    verifier = verifier_for(Directory(vectors.directory_document(revoked=False)))
    appended = CREATED - SKEW - timedelta(seconds=1)
    later = CREATED + timedelta(minutes=1)
    assert (
        outcome(verifier, classic_envelope, record_time=appended, now=later)
        == "envelope.clock-skew"
    )
    within = CREATED - SKEW
    assert outcome(verifier, classic_envelope, record_time=within, now=later) == "accepted"


def test_created_at_further_behind_the_append_time_than_the_window_is_refused(
    classic_envelope: bytes,
) -> None:
    # A receiver whose clock runs behind the broker's would judge freshness against its
    # own clock alone; the append time bounds the claim too.
    verifier = verifier_for(Directory(vectors.directory_document(revoked=False)))
    appended = CREATED + WINDOW + timedelta(seconds=1)
    now = CREATED + timedelta(hours=1)
    assert outcome(verifier, classic_envelope, record_time=appended, now=now) == ("envelope.stale")
    assert outcome(verifier, classic_envelope, record_time=CREATED + WINDOW, now=now) == "accepted"


@pytest.mark.parametrize(
    "area", ["Staffordshire", "stafford_shire", "s", "staffordshire-", "x" * 50]
)
def test_an_area_that_does_not_match_its_pattern_is_malformed(area: str) -> None:
    base = strict_json(str(vectors.seal_valid("hostile-area", "classic")["envelope"]).encode())
    base["header"]["area"] = area
    value = vectors.resign_classic(base)
    verifier = verifier_for(Directory(vectors.directory_document(revoked=False)))
    assert outcome(verifier, value, record_time=CREATED, now=CREATED) == "envelope.malformed"


# -- receiver level: a running deployment's own receiving path --------------------------------


def record_of(world: World, value: bytes, topic: str, offset: int) -> Record:
    now = world.gw(PRISON).ctx.clock()
    return Record(
        topic=topic,
        partition=0,
        offset=offset,
        key=b"x",
        value=value,
        headers=(),
        timestamp_ms=int(now.timestamp() * 1000),
    )


def claim_then_genuine(world: World) -> tuple[str, bytes, bytes]:
    """Probation learns the id of a message the police are about to (re-)send to prison
    and gets its own message with that id to prison first; then the police's arrives."""
    topic = world.deployment.topics.for_role(AREA, Role.POLICE)
    message_id = str(uuid.uuid4())
    claim = jcs(seal_as(world, PROBATION, (PRISON,), topic, message_id=message_id))
    genuine = jcs(seal_as(world, POLICE, (PRISON,), topic, message_id=message_id))
    return topic, claim, genuine


async def test_another_agency_cannot_claim_a_message_id_first(world: World) -> None:
    # Keyed by message id alone, the replay memory refused the police's genuine message
    # as a replay conflict (envelope.replay-conflict).
    topic, claim, genuine = claim_then_genuine(world)
    receiver = world.gw(PRISON).receiver
    assert receiver.handle(record_of(world, claim, topic, 1)).handling is Handling.DELIVERED
    rules = receiver.rules_for(topic)
    verified = receiver.admit(record_of(world, genuine, topic, 2), rules, world.deployment.clock())
    assert receiver.is_redelivery(verified) is False
    # The police's own replay of its message is still caught, and only as its own.
    with world.gw(PRISON).ctx.store.transaction():
        world.gw(PRISON).ctx.store.remember(
            POLICE,
            verified.header.message_id,
            verified.digest,
            topic=topic,
            created_at="t",
            seen_at="t",
        )
    assert receiver.is_redelivery(verified) is True
    doc = strict_json(genuine)
    altered = seal_as(
        world, POLICE, (PRISON,), topic, message_id=doc["header"]["message_id"], purpose="other"
    )
    conflict = receiver.handle(record_of(world, jcs(altered), topic, 3))
    assert conflict.reason_code == "envelope.replay-conflict"


async def test_the_genuine_message_is_delivered_after_a_claimed_id(world: World) -> None:
    # The inbox is keyed by sender and message id, as replay memory is: the claim and the
    # genuine message are held side by side.
    topic, claim, genuine = claim_then_genuine(world)
    receiver = world.gw(PRISON).receiver
    assert receiver.handle(record_of(world, claim, topic, 1)).handling is Handling.DELIVERED
    second = receiver.handle(record_of(world, genuine, topic, 2))
    assert (second.handling, second.reason_code) == (Handling.DELIVERED, None)
    held = {(i.sender, i.message_id) for i in world.gw(PRISON).ctx.store.inbox()}
    assert {sender for sender, _ in held} == {PROBATION, POLICE}


async def test_an_envelope_naming_an_agreement_version_not_held_is_refused(world: World) -> None:
    # Version 999 of the agreement does not exist here: the receiver cannot judge the
    # message by rules it does not hold. It was delivered before.
    topic = world.deployment.topics.for_role(AREA, Role.POLICE)
    value = jcs(seal_as(world, POLICE, (PRISON,), topic, isa_version=999))
    handled = world.gw(PRISON).receiver.handle(record_of(world, value, topic, 1))
    assert (handled.handling, handled.reason_code) == (
        Handling.REFUSED,
        "policy.agreement-version",
    )
    # A version the receiver has not received yet may arrive: the record is kept to retry.
    kept = world.gw(PRISON).ctx.store.deadletters.pending()
    assert [d.reason_code for d in kept] == ["policy.agreement-version"]
    assert not world.gw(PRISON).ctx.store.inbox()


async def test_an_envelope_under_a_superseded_agreement_version_is_refused_for_good(
    tmp_path: Path, tansu_broker: Broker
) -> None:
    # The receivers hold version 2; a sender still sealing under version 1 shares by rules
    # that no longer hold, and waiting will not change that.
    w = await build_world(
        tmp_path, tansu_broker, tailor=lambda a: a.model_copy(update={"version": 2})
    )
    try:
        topic = w.deployment.topics.for_role(AREA, Role.POLICE)
        value = jcs(seal_as(w, POLICE, (PRISON,), topic, isa_version=1))
        handled = w.gw(PRISON).receiver.handle(record_of(w, value, topic, 1))
        assert (handled.handling, handled.reason_code) == (
            Handling.REFUSED,
            "policy.agreement-superseded",
        )
        assert w.gw(PRISON).ctx.store.deadletters.pending() == []
        current = jcs(seal_as(w, POLICE, (PRISON,), topic, isa_version=2))
        assert w.gw(PRISON).receiver.handle(record_of(w, current, topic, 2)).handling is (
            Handling.DELIVERED
        )
    finally:
        await w.close()


def test_agreement_version_refusals_say_whether_they_can_pass() -> None:
    from broker.agreements.policy import check_agreement

    with pytest.raises(MappaError) as newer:
        check_agreement(("isa.a", 3), isa_id="isa.a", isa_version=4)
    with pytest.raises(MappaError) as older:
        check_agreement(("isa.a", 3), isa_id="isa.a", isa_version=2)
    with pytest.raises(MappaError) as other:
        check_agreement(("isa.a", 3), isa_id="isa.b", isa_version=3)
    assert (newer.value.code, can_pass(newer.value)) == ("policy.agreement-version", True)
    assert (older.value.code, can_pass(older.value)) == ("policy.agreement-superseded", False)
    assert other.value.code == "policy.no-agreement"
    check_agreement(("isa.a", 3), isa_id="isa.a", isa_version=3)


# -- an older data directory still opens, its replay memory kept ------------------------------

OLD_SEEN = """
CREATE TABLE seen (
    message_id TEXT PRIMARY KEY, digest TEXT NOT NULL, topic TEXT NOT NULL,
    created_at TEXT NOT NULL, seen_at TEXT NOT NULL
);
CREATE INDEX seen_created ON seen (created_at);
CREATE TABLE inbox (
    message_id TEXT PRIMARY KEY, topic TEXT NOT NULL, sender TEXT NOT NULL,
    message_type TEXT NOT NULL, subject_ref TEXT NOT NULL, view TEXT NOT NULL,
    isa_id TEXT NOT NULL, isa_version INTEGER NOT NULL, created_at TEXT NOT NULL,
    received_at TEXT NOT NULL, acknowledged_at TEXT, envelope BLOB NOT NULL
);
"""


def test_a_store_from_before_replay_memory_had_senders_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    old = sqlite3.connect(path)
    old.executescript(OLD_SEEN)
    t = "2026-11-23T11:59:00.000Z"
    old.execute("INSERT INTO seen VALUES ('id-in-inbox', 'd1', 'topic', ?, ?)", (t, t))
    old.execute("INSERT INTO seen VALUES ('id-of-a-transfer', 'd2', 'topic', ?, ?)", (t, t))
    old.execute(
        "INSERT INTO inbox VALUES ('id-in-inbox', 'topic', ?, 'risk-assessment', 'ref', "
        "'full', 'isa', 1, ?, ?, NULL, x'00')",
        (POLICE, t, t),
    )
    old.commit()
    old.close()
    store = AgencyStore(path)
    try:
        # The inbox names the sender of what it holds; that row is now the police's alone.
        assert store.seen_digest(POLICE, "id-in-inbox") == "d1"
        assert store.seen_digest(PROBATION, "id-in-inbox") is None
        # A remembered id whose sender nobody recorded still stops a replay by anyone,
        # as it did, until it leaves the window.
        assert store.seen_digest(PROBATION, "id-of-a-transfer") == "d2"
        with store.transaction():
            store.remember(PROBATION, "id-in-inbox", "d3", topic="topic", created_at=t, seen_at=t)
        assert store.seen_digest(PROBATION, "id-in-inbox") == "d3"
        assert store.forget_seen_before("2026-11-24T00:00:00.000Z") == 3
    finally:
        store.close()
    # Opening it again changes nothing.
    AgencyStore(path).close()


# -- an inbox keyed by message id alone is keyed by sender and message id --------------------

# The layout before the inbox named a message by its sender too (replay memory already did).
SEEN_BY_SENDER = """
CREATE TABLE seen (
    sender TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL,
    topic TEXT NOT NULL, created_at TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (sender, message_id)
);
CREATE INDEX seen_created ON seen (created_at);
"""
INBOX_BY_ID = """
CREATE TABLE inbox (
    message_id TEXT PRIMARY KEY, topic TEXT NOT NULL, sender TEXT NOT NULL,
    message_type TEXT NOT NULL, subject_ref TEXT NOT NULL, view TEXT NOT NULL,
    isa_id TEXT NOT NULL, isa_version INTEGER NOT NULL, created_at TEXT NOT NULL,
    received_at TEXT NOT NULL, acknowledged_at TEXT, envelope BLOB NOT NULL
);
"""
RESHARED_BY_ID = """
CREATE TABLE transfer_reshared (
    transfer_id TEXT NOT NULL, message_id TEXT NOT NULL, reshared_as TEXT NOT NULL,
    PRIMARY KEY (transfer_id, message_id)
);
"""
T0 = "2026-11-23T11:59:00.000Z"


def held(message_id: str, sender: str, acknowledged_at: str | None = None) -> InboxItem:
    return InboxItem(
        message_id, "topic", sender, "risk-assessment", "ref", "full", "isa", 1, T0, T0,
        acknowledged_at, b"\x00" + message_id.encode(),
    )  # fmt: skip


def old_store(path: Path, schema: str) -> list[InboxItem]:
    """An agency store in an older layout, written with sqlite3 alone (the old inbox's
    columns are in the order of ``InboxItem``); returns the items its inbox holds."""
    items = [held("id-1", POLICE, acknowledged_at=T0), held("id-2", PRISON)]
    old = sqlite3.connect(path)
    old.executescript(schema)
    old.executemany(
        "INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [astuple(i)[:12] for i in items],  # the columns before acknowledged_by
    )
    old.executemany(
        "INSERT INTO transfer_reshared VALUES ('transfer-1', ?, ?)",
        [("id-1", "reshared-as-1"), ("id-erased", "none-entitled")],
    )
    old.commit()
    old.close()
    return items


def key_of(path: Path, table: str) -> list[str]:
    """The primary key's columns of ``table``, in key order, read with sqlite3 alone."""
    db = sqlite3.connect(path)
    try:
        info = db.execute(f"PRAGMA table_info({table})").fetchall()
    finally:
        db.close()
    return [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]


def test_an_inbox_keyed_by_message_id_alone_is_migrated_with_every_item(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    items = old_store(path, SEEN_BY_SENDER + INBOX_BY_ID + RESHARED_BY_ID)
    assert key_of(path, "inbox") == ["message_id"]
    store = AgencyStore(path)
    try:
        # Every item survives as it was, acknowledgement and envelope included.
        assert set(store.inbox()) == set(items)
        assert key_of(path, "inbox") == ["sender", "message_id"]
        assert key_of(path, "transfer_reshared") == ["transfer_id", "sender", "message_id"]
        # The new key holds: another sender's message with a held id is another message;
        # the same sender's is still refused by the key.
        with store.transaction():
            store.add_to_inbox(held("id-1", PROBATION))
        with pytest.raises(sqlite3.IntegrityError), store.transaction():
            store.add_to_inbox(held("id-1", POLICE))
        assert store.inbox_item("id-1", sender=POLICE) == items[0]
        assert store.inbox_item("id-1", sender=PROBATION) == held("id-1", PROBATION)
        # The handover's record names the sender of each item still held.
        assert store.reshared("transfer-1") == {(POLICE, "id-1"), (UNKNOWN_SENDER, "id-erased")}
    finally:
        store.close()
    # Opening it again changes nothing.
    again = AgencyStore(path)
    try:
        assert len(again.inbox()) == 3
    finally:
        again.close()


def test_a_migration_that_fails_part_way_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    # The oldest layout (replay memory by id alone too), with a table in the way of the
    # last step, as a migration finished by hand could leave one: the steps before it
    # must not stay done either.
    path = tmp_path / "store.sqlite"
    obstacle = "CREATE TABLE reshared_by_id (in_the_way TEXT);"
    items = old_store(path, OLD_SEEN + RESHARED_BY_ID + obstacle)
    with pytest.raises(sqlite3.OperationalError):
        AgencyStore(path)
    assert key_of(path, "seen") == ["message_id"]
    assert key_of(path, "inbox") == ["message_id"]
    assert key_of(path, "transfer_reshared") == ["transfer_id", "message_id"]
    db = sqlite3.connect(path)
    try:
        assert sorted(db.execute("SELECT * FROM inbox")) == sorted(astuple(i)[:12] for i in items)
        assert db.execute("SELECT count(*) FROM transfer_reshared").fetchone() == (2,)
    finally:
        db.close()
