"""``Tracking.sent_page``: the messages an agency sent, newest first, a keyset page at a
time, over the ``tracked`` table alone (an in-memory SQLite database, as the agency's
store holds it): a message of several envelopes is one message, audit events (tracked
for the ledger) are never among them, a page stays the same while more are sent, and the
page size and cursor are bounded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from broker.gateway.tracking import LEDGER, MAX_POSITION, MAX_SENT_PAGE, Tracking

START = datetime(2026, 11, 23, 11, 40, tzinfo=UTC)


class Outbox:
    """Tracking rows as the sealing and audit code write them: each envelope or audit
    event at the next outbox position, a minute after the one before."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.tracking = Tracking(self.db, lambda: None)
        self.seq = 0

    def _next(self) -> tuple[int, datetime]:
        self.seq += 1
        return self.seq, START + timedelta(minutes=self.seq)

    def message(self, message_id: str, *envelopes: tuple[str, ...]) -> None:
        """``message_id`` sent as ``envelopes`` (each its recipients), then its audit
        events (collection and disclosures), tracked for the ledger."""
        for recipients in envelopes:
            self.envelope(message_id, recipients)
        for n in range(1 + sum(map(len, envelopes))):
            self.audit_event(f"{message_id}-event-{n}")

    def envelope(self, message_id: str, recipients: tuple[str, ...]) -> None:
        seq, now = self._next()
        about = {"message_type": "risk-assessment", "subject_ref": "ref"}
        self.tracking.track(
            seq, message_id, [(r, "full") for r in recipients], digest="d", now=now, about=about
        )

    def audit_event(self, event_id: str) -> None:
        seq, now = self._next()
        self.tracking.track(seq, event_id, [(LEDGER, None)], digest="e", now=now)


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    made = Outbox()
    yield made
    made.db.close()


def ids(outbox: Outbox, before: int | None = None, limit: int = 2) -> tuple[list[str], int | None]:
    page = outbox.tracking.sent_page(before=before, limit=limit)
    return [m.message_id for m in page.messages], page.next_before


def test_newest_first_one_entry_per_message_without_audit_events(outbox: Outbox) -> None:
    outbox.message("m1", ("housing.x",))
    outbox.message("m2", ("housing.x", "probation.x"), ("prison.x",))  # two topics
    page = outbox.tracking.sent_page()
    assert [m.message_id for m in page.messages] == ["m2", "m1"]
    assert page.next_before is None
    m2 = page.messages[0]
    assert [r.recipient for r in m2.recipients] == ["housing.x", "prison.x", "probation.x"]
    assert {r.state for r in m2.recipients} == {"queued"}
    assert m2.message_type == "risk-assessment"
    assert m2.queued_at == "2026-11-23T11:44:00.000Z"  # its first envelope's (at 4)
    assert m2.position == 5  # its last envelope's
    assert all(r.recipient != LEDGER for m in page.messages for r in m.recipients)
    # Only audit events tracked: nothing was sent to an agency.
    alone = Outbox()
    alone.audit_event("e1")
    assert alone.tracking.sent_page().messages == []


def test_pages_cover_every_message_once_and_stay_put_while_more_are_sent(
    outbox: Outbox,
) -> None:
    for n in range(5):
        outbox.message(f"m{n}", ("housing.x",), ("prison.x",))
    first, after = ids(outbox)
    assert first == ["m4", "m3"]
    assert after is not None
    outbox.message("m5", ("housing.x",))  # sent meanwhile: on the first page, not the next
    second, after = ids(outbox, after)
    assert second == ["m2", "m1"]
    last, end = ids(outbox, after)
    assert (last, end) == (["m0"], None)
    assert ids(outbox, limit=MAX_SENT_PAGE)[0] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    # Exactly a page's worth: no next page.
    assert ids(outbox, limit=6) == (["m5", "m4", "m3", "m2", "m1", "m0"], None)


def test_a_message_whose_envelopes_straddle_a_page_boundary_is_shown_once(
    outbox: Outbox,
) -> None:
    """Envelopes of one message queued on either side of another's (never done by one
    publication's single transaction, but the list must not depend on it)."""
    outbox.envelope("early", ("housing.x",))
    outbox.envelope("straddling", ("housing.x",))
    outbox.envelope("middle", ("housing.x",))
    outbox.envelope("straddling", ("prison.x",))
    first, after = ids(outbox, limit=1)
    assert first == ["straddling"]
    rest = ids(outbox, after, limit=MAX_SENT_PAGE)[0]
    assert rest == ["middle", "early"]


def test_the_page_size_and_the_cursor_are_bounded(outbox: Outbox) -> None:
    outbox.message("m1", ("housing.x",))
    for limit in (0, -1, MAX_SENT_PAGE + 1):
        with pytest.raises(ValueError, match="limit"):
            outbox.tracking.sent_page(limit=limit)
    for before in (0, -5, MAX_POSITION + 1):
        with pytest.raises(ValueError, match="before"):
            outbox.tracking.sent_page(before=before)
    assert ids(outbox, MAX_POSITION) == (["m1"], None)
    assert ids(outbox, 1) == ([], None)  # nothing sent before the first position
