"""An envelope the broker refuses for good is set aside by the relay (docs/delivery.md,
part 1); its sender's delivery tracking must say so, or ``mappa track`` and the
deliveries API tell the sender, for ever, that the message is still on its way.

The oversize copy is made the way an earlier version could have queued one: the
outbox row's value, in the real SQLite file, is larger than the broker takes. The
real embedded broker then refuses it.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from broker.api.operations import deliveries
from broker.gateway.tracking import REFUSED
from broker.kafka.topics import RECORD_LIMIT_BYTES
from broker.kafka.transport import RecordRejected
from tests.support import HOUSING, POLICE, PRISON, PROBATION, World, risk_assessment

RECIPIENTS = {PROBATION, PRISON, HOUSING}


def enlarge(path: Path, seqs: set[int]) -> None:
    """Make the outbox rows ``seqs`` larger than the broker takes, through a connection
    of its own (as another process would)."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.executemany(
                "UPDATE outbox SET value = ? WHERE seq = ?",
                [(b"x" * (RECORD_LIMIT_BYTES + 1), s) for s in seqs],
            )
    finally:
        db.close()


async def test_a_set_aside_envelope_settles_its_tracking_rows_as_refused(world: World) -> None:
    police = world.gw(POLICE)
    store = police.ctx.store
    result = police.publisher.publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    seqs = {r.outbox_seq for r in store.tracking.of_message(mid)}
    enlarge(store.path, seqs)

    await police.relay.flush()

    assert seqs <= set(store.set_aside_rows())
    rows = store.tracking.of_message(mid)
    assert {r.recipient for r in rows} == RECIPIENTS
    # The broker's reason code, never the value it refused.
    assert {(r.state, r.reason_code, r.due_at) for r in rows} == {
        (REFUSED, RecordRejected.code, None)
    }
    # What the deliveries API (and ``mappa track``) answer from the same rows.
    answer = deliveries(store, POLICE, mid)
    assert {(d.recipient, d.state, d.reason_code) for d in answer.recipients} == {
        (r, REFUSED, RecordRejected.code) for r in RECIPIENTS
    }
    # Settled: nothing sends it again or gives it up, however long the sender waits
    # (the publication's audit events, never receipted here, are given up instead).
    with store.transaction():
        later = police.ctx.clock() + timedelta(days=365)
        given_up = police.relay.requeue_overdue(later)
    assert mid not in {r.message_id for r in given_up}
    assert not seqs & {r.seq for r in store.unsent()}
    assert {r.state for r in store.tracking.of_message(mid)} == {REFUSED}


async def test_the_set_aside_settles_only_its_own_rows(world: World) -> None:
    """The audit events of the publication and every other message still go, and are
    tracked as before."""
    police = world.gw(POLICE)
    store = police.ctx.store
    refused = police.publisher.publish(risk_assessment(), purpose="risk management")
    kept = police.publisher.publish(risk_assessment(), purpose="risk management")
    enlarge(store.path, {r.outbox_seq for r in store.tracking.of_message(refused.message_id)})

    await police.relay.flush()

    assert {r.state for r in store.tracking.of_message(kept.message_id)} == {"sent"}
    # Only the refused envelope's rows: its audit events went to the ledger as ever.
    assert store.tracking.counts()[REFUSED] == len(RECIPIENTS)
