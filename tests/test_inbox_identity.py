"""A held message is its sender's message id (docs/envelope.md, step 8): two agencies'
messages with the same id are two messages, in the store and in the API.

- the store: a lookup by id alone finds the one message held with it, or refuses to
  guess (``inbox.ambiguous``) when several senders' messages have it; by sender it finds
  that sender's; acknowledgement and erasure touch only the item named; paging passes
  over neither of two items that share a time and an id;
- the API: without ``sender``, 409 ``inbox.ambiguous`` naming the senders; with it, 200
  for that sender's message (fetch, acknowledge, open), 404 for a sender whose message
  with that id is not held, 422 for a sender that is not an agency id.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.api.operations import decode_cursor, encode_cursor
from broker.crypto.encoding import jcs
from broker.gateway.handled import Handling
from broker.gateway.store import AgencyStore, AmbiguousMessage, InboxItem
from schemas.common import Role
from tests.support import AREA, HOUSING, POLICE, PRISON, PROBATION, seal_as
from tests.test_api import JUSTIFICATION, Api, api

__all__ = ["api"]  # the fixture the API tests take

T0 = "2026-11-23T11:59:00.000Z"
T1 = "2026-11-23T12:00:00.000Z"


def item(message_id: str, sender: str, received_at: str = T0) -> InboxItem:
    return InboxItem(
        message_id, "topic", sender, "risk-assessment", "ref", "full", "isa", 1, T0,
        received_at, None, sender.encode(),
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = AgencyStore(tmp_path / "store.sqlite")
    try:
        yield opened
    finally:
        opened.close()


def hold(store: AgencyStore, *items: InboxItem) -> None:
    with store.transaction():
        for i in items:
            store.add_to_inbox(i)


# -- the store ---------------------------------------------------------------------------------


def test_an_id_alone_finds_the_one_message_held_with_it(store: AgencyStore) -> None:
    hold(store, item("id-1", POLICE))
    assert store.inbox_item("id-1") == item("id-1", POLICE)
    assert store.inbox_item("id-1", sender=POLICE) == item("id-1", POLICE)
    assert store.inbox_item("id-1", sender=PROBATION) is None
    assert store.inbox_item("id-2") is None


def test_an_id_several_senders_used_is_ambiguous_without_a_sender(store: AgencyStore) -> None:
    hold(store, item("id-1", POLICE), item("id-1", PROBATION))
    with pytest.raises(AmbiguousMessage) as refused:
        store.inbox_item("id-1")
    assert refused.value.code == "inbox.ambiguous"
    # The senders, so the caller can choose; nothing of what the messages say.
    assert f"({POLICE}, {PROBATION})" in refused.value.reason
    assert "sender" in refused.value.reason
    assert store.inbox_item("id-1", sender=PROBATION) == item("id-1", PROBATION)


def test_acknowledging_by_sender_marks_that_senders_message_alone(store: AgencyStore) -> None:
    hold(store, item("id-1", POLICE), item("id-1", PROBATION))
    with pytest.raises(AmbiguousMessage):
        store.acknowledge("id-1", T1, by="h.officer")
    assert store.acknowledge("id-1", T1, by="h.officer", sender=PROBATION) is True
    # The first time, and who, stand.
    later = "2026-11-24T00:00:00.000Z"
    assert store.acknowledge("id-1", later, by="h.other", sender=PROBATION) is False
    assert store.inbox_item("id-1", sender=PROBATION) == replace(
        item("id-1", PROBATION), acknowledged_at=T1, acknowledged_by="h.officer"
    )
    assert store.inbox_item("id-1", sender=POLICE) == item("id-1", POLICE)
    assert store.acknowledge("id-1", T1, by="h.officer", sender=HOUSING) is False


def test_erasure_removes_only_the_item_named(store: AgencyStore) -> None:
    hold(store, item("id-1", POLICE), item("id-1", PROBATION))
    with store.transaction():
        store.delete_inbox_item("id-1", sender=POLICE)
    assert store.inbox() == [item("id-1", PROBATION)]
    # One left: the id alone finds it again.
    assert store.inbox_item("id-1") == item("id-1", PROBATION)


def test_paging_passes_over_neither_of_two_messages_sharing_time_and_id(
    store: AgencyStore,
) -> None:
    hold(store, item("id-1", POLICE), item("id-1", PROBATION), item("id-2", POLICE, T1))
    seen: list[tuple[str, str]] = []
    after = None
    while page := store.inbox_page(after=after, limit=1):
        seen += [(i.sender, i.message_id) for i in page]
        after = decode_cursor(encode_cursor(page[-1]))
    assert seen == [(POLICE, "id-1"), (PROBATION, "id-1"), (POLICE, "id-2")]
    # A cursor given before the sender was in it goes on after every sender's message
    # with its id, as it meant then.
    assert store.inbox_page(after=(T0, "id-1")) == [item("id-2", POLICE, T1)]


def test_a_handover_remembers_each_senders_message_apart(store: AgencyStore) -> None:
    with store.transaction():
        store.mark_reshared("transfer-1", POLICE, "id-1", "reshared-as-1")
        store.mark_reshared("transfer-1", PROBATION, "id-1", "none-entitled")
    assert store.reshared("transfer-1") == {(POLICE, "id-1"), (PROBATION, "id-1")}
    assert store.reshared("transfer-2") == set()


# -- the API -----------------------------------------------------------------------------------


async def claimed_id(api: Api) -> str:
    """Probation gets a message of its own to prison with the id the police then use
    for theirs; both are delivered, through the broker, and held side by side."""
    world = api.world
    topic = world.deployment.topics.for_role(AREA, Role.POLICE)
    message_id = str(uuid.uuid4())
    for sender in (PROBATION, POLICE):
        value = jcs(seal_as(world, sender, (PRISON,), topic, message_id=message_id))
        await world.transport.send(topic, value, key=b"x")
    await world.pump(lambda: len(world.of(PRISON, Handling.DELIVERED)) == 2)
    return message_id


def inbox_url(message_id: str, action: str = "") -> str:
    return f"/v1/agencies/{PRISON}/inbox/{message_id}{action}"


async def test_an_ambiguous_id_is_409_naming_the_senders_then_200_with_a_sender(
    api: Api,
) -> None:
    message_id = await claimed_id(api)
    headers = api.auth(PRISON)
    ambiguous = await api.client.get(inbox_url(message_id), headers=headers)
    assert ambiguous.status_code == 409, ambiguous.text
    body = ambiguous.json()
    assert body["error"] == "inbox.ambiguous"
    assert f"({POLICE}, {PROBATION})" in body["detail"]
    for sender in (POLICE, PROBATION):
        found = await api.client.get(
            inbox_url(message_id), params={"sender": sender}, headers=headers
        )
        assert found.status_code == 200, found.text
        assert (found.json()["message_id"], found.json()["sender"]) == (message_id, sender)
    # Both are listed, each once.
    listed = await api.client.get(f"/v1/agencies/{PRISON}/inbox", headers=headers)
    pairs = [(i["sender"], i["message_id"]) for i in listed.json()["items"]]
    assert sorted(pairs) == [(POLICE, message_id), (PROBATION, message_id)]


async def test_a_sender_whose_message_is_not_held_is_404_and_a_malformed_one_422(
    api: Api,
) -> None:
    message_id = await claimed_id(api)
    headers = api.auth(PRISON)
    missing = await api.client.get(
        inbox_url(message_id), params={"sender": HOUSING}, headers=headers
    )
    assert (missing.status_code, missing.json()["error"]) == (404, "api.not-found")
    for bad in ("Police.Staffordshire", "police", "x" * 97):
        refused = await api.client.get(
            inbox_url(message_id), params={"sender": bad}, headers=headers
        )
        assert (refused.status_code, refused.json()["error"]) == (422, "request.invalid")


async def test_acknowledging_by_sender_acknowledges_that_message_alone(api: Api) -> None:
    message_id = await claimed_id(api)
    headers = api.auth(PRISON)
    ambiguous = await api.client.post(inbox_url(message_id, "/ack"), headers=headers)
    assert (ambiguous.status_code, ambiguous.json()["error"]) == (409, "inbox.ambiguous")
    acked = await api.client.post(
        inbox_url(message_id, "/ack"), params={"sender": PROBATION}, headers=headers
    )
    assert acked.status_code == 200, acked.text
    assert (acked.json()["message_id"], acked.json()["sender"]) == (message_id, PROBATION)
    again = await api.client.post(
        inbox_url(message_id, "/ack"), params={"sender": PROBATION}, headers=headers
    )
    assert again.json() == acked.json()
    store = api.world.gw(PRISON).ctx.store
    held = {i.sender: i.acknowledged_at for i in store.inbox() if i.message_id == message_id}
    assert held == {PROBATION: acked.json()["acknowledged_at"], POLICE: None}
    unacknowledged = await api.client.get(
        f"/v1/agencies/{PRISON}/inbox", params={"unacknowledged": True}, headers=headers
    )
    assert [(i["sender"], i["message_id"]) for i in unacknowledged.json()["items"]] == [
        (POLICE, message_id)
    ]


async def test_opening_an_ambiguous_id_needs_a_sender(api: Api) -> None:
    message_id = await claimed_id(api)
    headers = api.auth(PRISON)
    body = {"justification": JUSTIFICATION}
    ambiguous = await api.client.post(inbox_url(message_id, "/open"), json=body, headers=headers)
    assert (ambiguous.status_code, ambiguous.json()["error"]) == (409, "inbox.ambiguous")
    # Refused, and audited as a refused consultation like any other.
    await api.world.sync_ledger()
    [audited] = api.world.ledger.store.entries(agency=PRISON, reason_code="inbox.ambiguous")
    assert (audited["act"], audited["operation"]) == ("refusal", "consult")
    assert not api.world.ledger.store.entries(act="consultation")
    opened = await api.client.post(
        inbox_url(message_id, "/open"), params={"sender": POLICE}, json=body, headers=headers
    )
    assert opened.status_code == 200, opened.text
    assert (opened.json()["message_id"], opened.json()["sender"]) == (message_id, POLICE)
