"""A witness's alarm in a running deployment is audited by its agency: a refusal event
with the alarm's code reaches the ledger, and the alarm is kept in the witness's store."""

from __future__ import annotations

import pytest

from broker.witness.witness import WitnessRefusal
from tests.support import POLICE, World


async def test_a_rollback_alarm_is_audited_by_the_witness_agency(world: World) -> None:
    [police] = [w for n, w in world.deployment.witnesses.items() if n.endswith(POLICE)]
    signer = world.ledger.signer
    assert signer is not None
    root = bytes(range(32))
    police.add_checkpoint(0, [], signer.sign(9, root, "2026-11-23T10:00:00.000Z", bytes(32)))
    with pytest.raises(WitnessRefusal) as caught:
        police.add_checkpoint(0, [], signer.sign(4, root, "2026-11-23T10:00:01.000Z", bytes(32)))
    assert caught.value.code == "witness.rollback"
    assert [a["code"] for a in police.store.alarms()] == ["witness.rollback"]
    await world.pump(lambda: world.gw(POLICE).ctx.audit.emitted > 0)
    await world.sync_ledger()
    [audited] = world.ledger.store.entries(act="refusal", reason_code="witness.rollback")
    assert audited["agency"] == POLICE
    assert "size 4" in audited["reason"]
