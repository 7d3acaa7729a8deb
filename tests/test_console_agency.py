"""The agency pages of the console, in-process (httpx over ASGI), over a real world: the
agencies on the embedded broker, the ledger, named users (``tests.console_world``).

A housing officer finds police's risk assessment in the inbox, cannot open it without a
reason (refused and audited), opens it with one and sees the redacted view only (no
victim, where police's partners with a full view see them), acknowledges it with the
form's token; no URL reaches another agency's inbox; other roles are turned away;
police list what they sent, newest first a page at a time, with each recipient's
delivery state (never their audit events, never another agency's messages), see one
message's delivery and submit records, a bad one refused with its reason."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.api import operations
from broker.api.models import Delivery
from broker.console import agency
from broker.gateway.store import AgencyStore
from broker.gateway.tracking import LEDGER
from broker.kafka.transport import KafkaTransport
from tests.console_world import ConsoleWorld, console_world, csrf_of
from tests.support import HOUSING, POLICE, PROBATION
from tests.test_api import JUSTIFICATION, arms_record

VICTIM_NAME = "Jane Witness"
VICTIM_ADDRESS = "1 Example Road"


@pytest.fixture
async def cw(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[ConsoleWorld]:
    async with console_world(tmp_path, transport) as world:
        yield world


def operations_rows(store: AgencyStore, message_id: str) -> list[Delivery]:
    """Each recipient's delivery of a message police sent, as the API gives them."""
    return list(operations.deliveries(store, POLICE, message_id).recipients)


def message_path(message_id: str, sender: str = POLICE) -> str:
    return f"/console/inbox/{sender}/{message_id}"


def error_summary(page: str) -> list[str]:
    """The texts of a page's GOV.UK error summary."""
    listed = re.search(r'govuk-error-summary__list">(.*?)</ul>', page, re.S)
    assert listed is not None, "no error summary"
    return [t.strip() for t in re.findall(r"<a [^>]*>([^<]+)</a>", listed.group(1))]


async def test_the_housing_officer_opens_the_redacted_view_with_a_reason(
    cw: ConsoleWorld,
) -> None:
    message_id = await cw.api.published()
    async with cw.signed_in("housing") as housing:
        inbox = await housing.get("/console/inbox")
        assert inbox.status_code == 200
        assert message_path(message_id) in inbox.text
        assert "Risk assessment" in inbox.text
        assert POLICE in inbox.text
        assert "Redacted" in inbox.text
        assert "Not acknowledged" in inbox.text
        # The inbox's navigation and the filters' GET form carry nothing personal.
        assert 'method="get"' in inbox.text
        assert "subject" not in inbox.text.lower()

        page = await housing.get(message_path(message_id))
        assert page.status_code == 200
        assert 'name="justification"' in page.text
        assert "section 62" in page.text
        assert VICTIM_NAME not in page.text
        assert "Example" not in page.text  # the header only, no content
        token = csrf_of(page.text)
        open_url = message_path(message_id) + "/open"

        refused = await housing.post(open_url, data={"csrf_token": token, "justification": ""})
        assert refused.status_code == 422
        assert error_summary(refused.text) == [
            "Enter why you need to open this record, in at least 10 characters"
        ]
        assert "govuk-error-message" in refused.text
        assert VICTIM_NAME not in refused.text
        words = await housing.post(
            open_url, data={"csrf_token": token, "justification": "..........."}
        )
        assert words.status_code == 422
        assert error_summary(words.text) == ["Enter why you need to open this record, in words"]

        opened = await housing.post(
            open_url, data={"csrf_token": token, "justification": JUSTIFICATION}
        )
        assert opened.status_code == 200, opened.text
        assert opened.headers["cache-control"] == "no-store"
        assert "govuk-summary-list" in opened.text
        assert "Risk of serious harm" in opened.text
        assert "Alex Sample" in opened.text  # the subject: every view keeps it
        # What the redacted view does not hold is nowhere: not filtered here, not there.
        for absent in (VICTIM_NAME, VICTIM_ADDRESS, "Victims", "Health notes"):
            assert absent not in opened.text
        # The content is only ever the POST's answer; the GET page is the header.
        again = await housing.get(message_path(message_id))
        assert "Risk of serious harm" not in again.text

    await cw.api.world.sync_ledger()
    store = cw.api.world.ledger.store
    [consulted] = store.entries(act="consultation")
    assert consulted["agency"] == HOUSING
    assert consulted["user"] == "h.officer"
    assert consulted["justification"] == JUSTIFICATION
    assert consulted["message_id"] == message_id
    assert consulted["view"] == "redacted"
    refusals = sorted(str(e["reason_code"]) for e in store.entries(act="refusal", agency=HOUSING))
    assert refusals == ["consult.justification-invalid", "consult.justification-missing"]
    [missing] = [
        e
        for e in store.entries(act="refusal", agency=HOUSING)
        if e["reason_code"] == "consult.justification-missing"
    ]
    assert missing["user"] == "h.officer"


async def test_a_full_view_shows_what_the_redacted_one_leaves_out(cw: ConsoleWorld) -> None:
    message_id = await cw.api.published()
    async with cw.signed_in("probation") as probation:
        page = await probation.get(message_path(message_id))
        opened = await probation.post(
            message_path(message_id) + "/open",
            data={
                "csrf_token": csrf_of(page.text),
                "justification": "sentence plan review, case 9",
            },
        )
    assert opened.status_code == 200, opened.text
    assert "Full" in opened.text
    assert VICTIM_NAME in opened.text
    assert VICTIM_ADDRESS in opened.text
    assert "Victims" in opened.text
    # A list of victims is laid out as a sub-list of summary lists.
    assert "govuk-list--number" in opened.text
    await cw.api.world.sync_ledger()
    [consulted] = cw.api.world.ledger.store.entries(act="consultation")
    assert (consulted["agency"], consulted["user"]) == (PROBATION, "po.officer")


async def test_acknowledging_needs_the_forms_token(cw: ConsoleWorld) -> None:
    message_id = await cw.api.published()
    ack_url = message_path(message_id) + "/acknowledge"
    async with cw.signed_in("housing") as housing:
        assert (await housing.post(ack_url, data={})).status_code == 403
        forged = await housing.post(ack_url, data={"csrf_token": "x" * 43})
        assert forged.status_code == 403
        held = cw.api.world.gw(HOUSING).ctx.store.inbox_item(message_id)
        assert held is not None
        assert held.acknowledged_at is None

        page = await housing.get(message_path(message_id))
        done = await housing.post(ack_url, data={"csrf_token": csrf_of(page.text)})
        assert done.status_code == 303
        assert done.headers["location"] == message_path(message_id)
        after = await housing.get(message_path(message_id))
        assert "Acknowledged" in after.text
        assert "Mark as acknowledged" not in after.text
        pending = await housing.get("/console/inbox", params={"unacknowledged": "yes"})
        assert message_id not in pending.text
    held = cw.api.world.gw(HOUSING).ctx.store.inbox_item(message_id)
    assert held is not None
    assert held.acknowledged_at is not None


async def test_no_address_reaches_another_agencys_items(cw: ConsoleWorld) -> None:
    message_id = await cw.api.published()
    async with cw.signed_in("housing") as housing:
        token = csrf_of((await housing.get("/console/inbox")).text)
        # Police's message under another sender is no message of housing's.
        for sender in (PROBATION, HOUSING, "nobody.anywhere", "not-an-agency"):
            page = await housing.get(message_path(message_id, sender))
            assert page.status_code == 404
            opened = await housing.post(
                message_path(message_id, sender) + "/open",
                data={"csrf_token": token, "justification": JUSTIFICATION},
            )
            assert opened.status_code == 404
            assert "Risk of serious harm" not in opened.text
        # No URL names an agency: these do not exist.
        for path in (f"/console/agencies/{POLICE}/inbox", f"/console/inbox/{POLICE}"):
            assert (await housing.get(path)).status_code == 404
        # A query naming police changes nothing: the inbox is housing's still.
        inbox = await housing.get("/console/inbox", params={"agency": POLICE})
        assert f"shared with {HOUSING}" in inbox.text
    # Police's own inbox holds nothing of what police sent to housing.
    async with cw.signed_in("police") as police:
        inbox = await police.get("/console/inbox")
        assert message_path(message_id) not in inbox.text
        assert (await police.get(message_path(message_id))).status_code == 404
    # And housing cannot see how police's message was delivered.
    async with cw.signed_in("housing") as housing:
        sent = await housing.get("/console/sent", params={"message_id": message_id})
        assert sent.status_code == 404
        assert "Your agency has sent no message with this ID" in sent.text


@pytest.mark.parametrize("name", ["coordinator", "ig"])
async def test_other_roles_get_403(cw: ConsoleWorld, name: str) -> None:
    async with cw.signed_in(name) as other:
        for path in ("/console/inbox", "/console/sent", "/console/submit"):
            assert (await other.get(path)).status_code == 403
        home = await other.get("/console/home")
        assert "/console/inbox" not in home.text


async def test_without_a_session_every_page_sends_to_sign_in(cw: ConsoleWorld) -> None:
    async with cw.browser() as anonymous:
        for path in ("/console/inbox", "/console/sent", "/console/submit"):
            answer = await anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == "/console/sign-in"


async def test_the_inbox_filters_and_pages(cw: ConsoleWorld) -> None:
    ids = [await cw.api.published() for _ in range(2)]
    async with cw.signed_in("housing") as housing:
        home = await housing.get("/console/home")
        assert "/console/inbox" in home.text
        assert "/console/submit" in home.text
        everything = await housing.get("/console/inbox")
        assert all(message_path(i) in everything.text for i in ids)
        other_type = await housing.get("/console/inbox", params={"type": "level-set"})
        assert "No messages match these filters" in other_type.text
        this_type = await housing.get("/console/inbox", params={"type": "risk-assessment"})
        assert all(message_path(i) in this_type.text for i in ids)
        later = await housing.get(
            "/console/inbox",
            params={"since-day": "1", "since-month": "1", "since-year": "2199"},
        )
        assert "No messages match these filters" in later.text
        bad = await housing.get(
            "/console/inbox",
            params={"since-day": "31", "since-month": "2", "since-year": "2026", "type": "x"},
        )
        assert bad.status_code == 422
        assert len(error_summary(bad.text)) == 2
        too_late = await housing.get(
            "/console/inbox",
            params={"since-day": "1", "since-month": "1", "since-year": "2201"},
        )
        assert too_late.status_code == 422
        too_long = {"cursor": "c" * (operations.MAX_CURSOR_CHARS + 1)}
        assert (await housing.get("/console/inbox", params=too_long)).status_code == 400
        # A page of one needs a cursor: the store's keyset, in the query.
        assert (await housing.get("/console/inbox", params={"cursor": "nonsense"})).status_code in (
            400,
            422,
        )


async def test_police_see_their_messages_delivery(cw: ConsoleWorld) -> None:
    message_id = await cw.api.published()
    store = cw.api.world.gw(POLICE).ctx.store
    await cw.api.world.pump(
        lambda: all(r.state == "delivered" for r in operations_rows(store, message_id))
    )
    async with cw.signed_in("police") as police:
        empty = await police.get("/console/sent")
        assert empty.status_code == 200
        sent = await police.get("/console/sent", params={"message_id": message_id})
        assert sent.status_code == 200
        for recipient in (HOUSING, PROBATION):
            assert recipient in sent.text
        assert "govuk-tag" in sent.text
        delivered = re.findall(r'govuk-tag--green">\s*Delivered', sent.text)
        assert len(delivered) == len(operations_rows(store, message_id)) == 3
        malformed = await police.get("/console/sent", params={"message_id": "2011/0456789K"})
        assert malformed.status_code == 422
        assert "2011/0456789K" not in malformed.text.split("govuk-error-summary")[0]


def listed_ids(page: str) -> list[str]:
    """The message ids the sent list links to, in its order."""
    return re.findall(r'href="/console/sent\?message_id=([0-9a-f-]+)"', page)


async def test_police_list_what_they_sent_newest_first_a_page_at_a_time(
    cw: ConsoleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await cw.api.published(), await cw.api.published()
    store = cw.api.world.gw(POLICE).ctx.store
    await cw.api.world.pump(
        lambda: all(r.state == "delivered" for m in (first, second)
                    for r in operations_rows(store, m))
    )  # fmt: skip
    # Police's audit events, which police's store tracks too (for the ledger).
    await cw.api.world.sync_ledger()
    entries = cw.api.app.state.backend.ledger.query({"agency": POLICE, "limit": "100"})
    audit_events = [e["event_id"] for e in entries["entries"]]
    assert audit_events
    assert all(store.tracking.get(e, LEDGER) for e in audit_events)
    async with cw.signed_in("police") as police:
        listed = await police.get("/console/sent")
        assert listed.status_code == 200, listed.text
        assert listed_ids(listed.text) == [second, first]
        # Each recipient of each message, with its state as a tag.
        body = listed.text.split('<tbody class="govuk-table__body">', 1)[1]
        for row in body.split("</tr>")[:2]:
            for recipient in (HOUSING, PROBATION):
                assert recipient in row
            assert len(re.findall(r'govuk-tag--green">\s*Delivered', row)) == 3
        assert "Risk assessment" in listed.text
        for event_id in audit_events:
            assert event_id not in listed.text
        assert "Older messages" not in listed.text
        # Each message links to its deliveries in detail.
        one = await police.get("/console/sent", params={"message_id": first})
        assert one.status_code == 200
        assert f"Deliveries of message {first}" in one.text
        assert listed_ids(one.text) == []
        assert 'href="/console/sent"' in one.text

        # A page of one: the newest, then the next older by the link given.
        monkeypatch.setattr(agency, "SENT_PAGE_SIZE", 1)
        newest = await police.get("/console/sent")
        assert listed_ids(newest.text) == [second]
        assert "Newest messages" not in newest.text
        [older] = re.findall(r'href="(/console/sent\?before=[0-9]+)"', newest.text)
        third = await cw.api.published()  # sent meanwhile: the pages after are unchanged
        page_two = await police.get(older)
        assert listed_ids(page_two.text) == [first]
        assert "Newest messages" in page_two.text
        assert "Older messages" not in page_two.text
        assert listed_ids((await police.get("/console/sent")).text) == [third]
        for bad in ("x", "0", "-1", "9" * 20, "9223372036854775808"):
            refused = await police.get("/console/sent", params={"before": bad})
            assert refused.status_code == 400, bad
        past_the_end = await police.get("/console/sent", params={"before": "1"})
        assert past_the_end.status_code == 200
        assert "There are no older messages" in past_the_end.text
    # Housing sent nothing: police's messages are never on its list.
    async with cw.signed_in("housing") as housing:
        theirs = await housing.get("/console/sent")
        assert theirs.status_code == 200
        assert listed_ids(theirs.text) == []
        assert "Your agency has not sent any messages yet" in theirs.text
        for message_id in (first, second, third):
            assert message_id not in theirs.text


async def test_police_submit_a_record_and_a_bad_one_is_refused(cw: ConsoleWorld) -> None:
    async with cw.signed_in("police") as police:
        form = await police.get("/console/submit")
        assert form.status_code == 200
        token = csrf_of(form.text)
        [key] = re.findall(r'name="idempotency_key" value="([^"]+)"', form.text)
        fields = {
            "csrf_token": token,
            "idempotency_key": key,
            "record": json.dumps(arms_record()),
            "purpose": "risk management",
        }
        assert (
            await police.post("/console/submit", data=fields | {"csrf_token": ""})
        ).status_code == 403

        done = await police.post("/console/submit", data=fields)
        assert done.status_code == 200, done.text
        [message_id] = re.findall(r"<strong>([0-9a-f-]{36})</strong>", done.text)
        assert HOUSING in done.text
        assert "Redacted" in done.text
        assert "Full" in done.text
        # The same form sent twice is published once.
        twice = await police.post("/console/submit", data=fields)
        assert re.findall(r"<strong>([0-9a-f-]{36})</strong>", twice.text) == [message_id]

        not_json = await police.post(
            "/console/submit", data=fields | {"idempotency_key": "", "record": "{not json"}
        )
        assert not_json.status_code == 422
        assert error_summary(not_json.text) == ["Enter the record as JSON"]

        bad = dict(arms_record())
        del bad["pnc"]
        refused = await police.post(
            "/console/submit",
            data=fields | {"idempotency_key": "", "record": json.dumps(bad)},
        )
        assert refused.status_code == 422
        [said] = error_summary(refused.text)
        assert said.startswith("adapter.record-invalid") or said.startswith("schema.")
        assert "Traceback" not in refused.text

    async with cw.signed_in("housing") as housing:
        form = await housing.get("/console/submit")
        refused = await housing.post(
            "/console/submit",
            data={
                "csrf_token": csrf_of(form.text),
                "record": json.dumps(arms_record()),
                "purpose": "risk management",
            },
        )
        assert refused.status_code == 422
        assert len(error_summary(refused.text)) == 1


async def test_the_pages_carry_no_personal_data_in_urls(cw: ConsoleWorld) -> None:
    await cw.api.published()
    async with cw.signed_in("housing") as housing:
        inbox = await housing.get("/console/inbox")
    hrefs = re.findall(r'(?:href|action)="([^"]+)"', inbox.text)
    assert hrefs
    for href in hrefs:
        assert "0456789K" not in href
        assert "Sample" not in href
