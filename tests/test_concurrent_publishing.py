"""Publishing under load: sealing in worker processes, and concurrent publications
committed together (broker/gateway/sealing_pool.py, broker/gateway/group_commit.py).

The worker-pool tests run one deployment with two sealing workers (the rest of the
suite seals on the event loop: tests/conftest.py) and check what the workers sealed is
delivered and verifies, that a refusal raised in a worker reaches the caller with its
code, and that no worker outlives the deployment. The group-commit tests run on a
real agency store: a write that fails rolls back alone, a database failure fails the
whole group, and concurrent publications share transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker.errors import KeyUnavailable, SchemaError, StoreUnavailable
from broker.gateway.agency import AgencyContext
from broker.gateway.group_commit import GroupCommit
from broker.gateway.publish import GroundsChanged
from broker.gateway.sealing import Sealing, ToSeal
from broker.gateway.sealing_pool import SealHere, SealingPool
from broker.gateway.store import AgencyStore
from broker.settings import Settings
from schemas.audit import AuditEvent
from tests import brokers
from tests.support import (
    HOUSING,
    PARTIES,
    POLICE,
    PRISON,
    PROBATION,
    World,
    build_world,
    risk_assessment,
)


def pool_of(world: World) -> SealingPool:
    sealer = world.gw(POLICE).sealer
    assert isinstance(sealer, SealingPool)
    return sealer


async def test_the_workers_seal_what_recipients_verify_and_open(pooled: World) -> None:
    police = pooled.gw(POLICE)
    # The subject on the seeded case team: housing is a recipient too.
    results = await asyncio.gather(
        *(police.publish(risk_assessment(), purpose="MAPPA risk management") for _ in range(12))
    )
    sent = {r.message_id for r in results}
    # Several recipient topics a publication: the workers signed each once, over a root.
    assert all(len(r.topics) > 1 for r in results)
    await pooled.pump(
        lambda: {h.message_id for h in pooled.delivered(PROBATION)} >= sent, within=30
    )
    assert pool_of(pooled).workers == 2


async def test_a_refusal_in_a_worker_reaches_the_caller_with_its_code(pooled: World) -> None:
    police = pooled.gw(POLICE)
    prepared = police.publisher.prepare(risk_assessment(), purpose="MAPPA risk management")
    # A header naming a signing key this agency does not hold: the worker cannot unlock it.
    first = prepared.envelopes[0]
    header = first.header.model_copy(update={"sender_keys": ("0" * 32,)})
    with pytest.raises(KeyUnavailable):
        await pool_of(pooled).seal(police.ctx, [dataclasses.replace(first, header=header)])


async def test_no_worker_outlives_the_deployment(
    tmp_path: Path, tansu_broker: brokers.Broker
) -> None:
    world = await build_world(tmp_path, tansu_broker, seal_workers=2)
    try:
        world.seed_case_team(PARTIES)
        await world.gw(POLICE).publish(risk_assessment(), purpose="MAPPA risk management")
        executor = pool_of(world)._executor
        assert executor is not None
        pids = list(executor._processes)
        assert pids
    finally:
        await world.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- group commit ----------------------------------------------------------------------------


def queued(store: AgencyStore) -> list[bytes]:
    return [row.value for row in store.unsent()]


async def test_a_write_that_fails_rolls_back_alone(tmp_path: Path) -> None:
    store = AgencyStore(tmp_path / "agency.db")
    try:
        commits = GroupCommit(store)

        def write(n: int) -> int:
            store.enqueue("topic", f"record {n}".encode(), key=b"k", headers=[])
            if n == 2:
                raise SchemaError("this one is refused")
            return n

        outcomes = await asyncio.gather(
            *(commits.run(functools.partial(write, n)) for n in range(5)), return_exceptions=True
        )
        assert outcomes[:2] == [0, 1]
        assert outcomes[3:] == [3, 4]
        assert isinstance(outcomes[2], SchemaError)
        assert queued(store) == [f"record {n}".encode() for n in (0, 1, 3, 4)]
        assert commits.groups == 1
    finally:
        store.close()


async def test_a_database_failure_fails_the_whole_group(tmp_path: Path) -> None:
    store = AgencyStore(tmp_path / "agency.db")
    try:
        commits = GroupCommit(store)

        def write(n: int) -> int:
            store.enqueue("topic", f"record {n}".encode(), key=b"k", headers=[])
            if n == 1:
                raise StoreUnavailable("disk full")
            return n

        outcomes = await asyncio.gather(
            *(commits.run(functools.partial(write, n)) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes)
        assert queued(store) == []
        assert commits.groups == 0
    finally:
        store.close()


async def test_concurrent_publications_share_commits(world: World) -> None:
    police = world.gw(POLICE)
    before = police.commits.groups
    results = await asyncio.gather(
        *(
            police.publish(risk_assessment(f"2016/{n:07d}R"), purpose="MAPPA risk management")
            for n in range(16)
        )
    )
    assert len({r.message_id for r in results}) == 16
    assert police.commits.groups - before < 16
    sent = {r.message_id for r in results}
    await world.pump(lambda: {h.message_id for h in world.delivered(PROBATION)} >= sent)


class ChangingTeam(SealHere):
    """Seals here, after the case team on record changes to the next of ``teams`` (as a
    co-ordinator's message read meanwhile would change it), while any are left."""

    def __init__(self, world: World, teams: list[tuple[str, ...]]) -> None:
        self._world = world
        self._teams = teams

    async def seal(
        self, ctx: AgencyContext, items: Sequence[ToSeal], events: Sequence[AuditEvent] = ()
    ) -> Sealing:
        if self._teams:
            self._world.seed_case_team(self._teams.pop(0))
        return await super().seal(ctx, items, events)


async def test_a_publication_decided_on_a_changed_team_is_decided_again(world: World) -> None:
    police = world.gw(POLICE)
    # Housing leaves the team while the first decision is being sealed.
    police.sealer = ChangingTeam(world, [(POLICE, PROBATION, PRISON)])
    result = await police.publish(risk_assessment(), purpose="MAPPA risk management")
    told = {agency for agency, _ in result.disclosures}
    assert HOUSING not in told
    assert PROBATION in told
    # Only the second decision was queued: each of its recipients tracked once.
    tracked = [t.recipient for t in police.ctx.store.tracking.of_message(result.message_id)]
    assert sorted(tracked) == sorted(told)
    await world.pump(lambda: result.message_id in {h.message_id for h in world.delivered(PRISON)})
    await world.pump_quiet()
    assert result.message_id not in {h.message_id for h in world.delivered(HOUSING)}


async def test_a_publication_whose_grounds_keep_changing_is_refused(world: World) -> None:
    police = world.gw(POLICE)
    teams = [(POLICE, PROBATION), (POLICE, PROBATION, PRISON), (POLICE, PROBATION)]
    police.sealer = ChangingTeam(world, teams)
    before = police.ctx.audit.emitted
    with pytest.raises(GroundsChanged):
        await police.publish(risk_assessment(), purpose="MAPPA risk management")
    # Nothing queued but the refusal's audit event.
    assert police.ctx.audit.emitted == before + 1
    refusal = police.ctx.store.unsent()[-1].value
    assert b"publish.changed-meanwhile" in refusal


# A process that starts a sealing pool, says its workers' ids, and waits to be killed.
POOL_HOLDER = """
import sys, time
from pathlib import Path
from broker.gateway.sealing_pool import SealingPool, _ready
pool = SealingPool(Path(sys.argv[1]), b"unused", 2)
executor = pool._started()
for _ in range(4):
    executor.submit(_ready).result()
print(" ".join(str(pid) for pid in executor._processes), flush=True)
time.sleep(120)
"""


def test_workers_follow_a_parent_killed_outright(tmp_path: Path) -> None:
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", POOL_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            workers = [int(pid) for pid in holder.stdout.readline().split()]
            assert workers
        finally:
            holder.kill()
    deadline = time.monotonic() + 30
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if running(pid)}
        time.sleep(0.2)
    assert not alive, f"sealing workers {sorted(alive)} outlived their parent"


def running(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_settings_refuse_a_pool_or_fetch_wait_out_of_bounds(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="seal_workers"):
        Settings(seal_workers=-1)
    with pytest.raises(ValidationError, match="fetch_max_wait_ms"):
        Settings(fetch_max_wait_ms=0)
    with pytest.raises(ValueError, match="at least one worker"):
        SealingPool(tmp_path, b"unused", 0)
