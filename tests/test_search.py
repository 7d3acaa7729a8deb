"""The ledger's search index, built for speed, against a plain rendering of its definition."""

from __future__ import annotations

import random
from typing import Any

import pytest

from broker.ledger import search
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome


def _events(n: int, rng: random.Random, subjects: int | None) -> list[AuditEvent]:
    """``n`` events over ``subjects`` subjects (None: each event its own)."""
    refs = [f"{rng.getrandbits(256):064x}" for _ in range(subjects or n)]
    return [
        AuditEvent(
            event_id=f"00000000-0000-7000-8000-{i:012x}",
            time=f"2026-11-23T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            act=rng.choice(list(AuditAct)),
            operation=Operation.PUBLISH,
            agency=rng.choice(["police.staffordshire", "housing.stoke-on-trent"]),
            # None: an event without a user has no user posting.
            user=rng.choice([None, *(f"officer.{u}" for u in range(12))]),
            area="staffordshire",
            subject_ref=refs[i] if subjects is None else rng.choice(refs),
            isa_id="mappa-default.staffordshire",
            isa_version=1,
            outcome=rng.choice(list(Outcome)),
        )
        for i in range(n)
    ]


def _plainly(first_seq: int, events: list[AuditEvent]) -> search.BatchIndex:
    """The index as ``search`` defines it: for each field and value, the offsets of the
    events carrying it, under the value's key; postings sharing a key merged."""
    postings: dict[int, set[int]] = {}
    for offset, event in enumerate(events):
        for name in search.POSTED:
            value: Any = getattr(event, name)
            if value is not None:
                postings.setdefault(search.posting_key(name, str(value)), set()).add(offset)
    times = [e.time for e in events]
    lines = [f"{k} {' '.join(map(str, sorted(postings[k])))}" for k in sorted(postings)]
    return search.BatchIndex(first_seq, len(events), min(times), max(times), lines)


@pytest.mark.parametrize("subjects", [1, 3, 40, None])
def test_the_index_is_what_its_definition_says(subjects: int | None) -> None:
    """One subject, a few, many with repeats, and every event its own."""
    events = _events(400, random.Random(subjects), subjects)
    assert search.build(64, events) == _plainly(64, events)


def test_values_sharing_a_key_share_a_posting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are 8 bytes of a hash, so two values can share one: their offsets merge, and
    a query re-checks each candidate against its signed event."""
    real = search.posting_key

    def coarse(field: str, value: str) -> int:
        return real(field, value) % 7

    monkeypatch.setattr(search, "posting_key", coarse)
    events = _events(300, random.Random(9), 60)
    built = search.build(0, events)
    assert built == _plainly(0, events)
    assert len(built.lines) <= 7
