"""Group commit: concurrent writes to one agency store share one transaction.

A commit is an fsync (``synchronous=FULL``: durability is not for sale), and on this
kind of machine it costs more than everything else a publication writes. So writers
that arrive while a commit is under way, or while others keep arriving turn after
turn of the event loop, wait for the next group: each runs in a savepoint of its own
(one that raises rolls back alone, its exception going to its own caller), and the
whole group commits once. Nobody is answered before the commit that holds their
writes has returned.

A failure of the database itself (``INFRASTRUCTURE_FAILURES``: locked, full,
read-only) fails the whole group: nothing of it is kept, and every writer in it hears
of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from broker.errors import INFRASTRUCTURE_FAILURES
from broker.gateway.store import AgencyStore

T = TypeVar("T")
# Bounds a group's transaction, and so how long the database is held at a time.
MAX_GROUP = 64


class GroupCommit:
    """The shared transactions of one store's writers (module docstring)."""

    def __init__(self, store: AgencyStore, *, max_group: int = MAX_GROUP) -> None:
        self._store = store
        self._max_group = max_group
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._leader: asyncio.Task[None] | None = None
        self.groups = 0

    async def run(self, write: Callable[[], T]) -> T:
        """Run ``write`` (synchronous, on the event loop) in a savepoint of the next
        group's transaction; return what it returned once the group has committed, or
        raise what it raised (its own writes undone, the group's kept), or the
        database's failure (nothing of the group kept)."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, done))
        if self._leader is None or self._leader.done():
            self._leader = asyncio.create_task(self._lead())
        return await done

    async def _lead(self) -> None:
        # Turns of the loop first, for as long as writers keep arriving (up to a full
        # group): writers already on their way join this group rather than the next.
        arrived = 0
        while arrived < len(self._waiting) < self._max_group:
            arrived = len(self._waiting)
            await asyncio.sleep(0)
        while self._waiting:
            group = self._waiting[: self._max_group]
            del self._waiting[: self._max_group]
            self._commit(group)
            await asyncio.sleep(0)

    def _commit(self, group: list[tuple[Callable[[], Any], asyncio.Future[Any]]]) -> None:
        store = self._store
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            with store.transaction():
                for write, done in group:
                    if done.cancelled():
                        continue
                    try:
                        with store.savepoint():
                            outcomes.append((done, write(), None))
                    except INFRASTRUCTURE_FAILURES:
                        raise
                    except Exception as exc:  # noqa: BLE001 - it goes to its own caller
                        outcomes.append((done, None, exc))
        except BaseException as exc:  # the group's commit failed: everyone hears of it
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.groups += 1
        for done, result, error in outcomes:
            if done.done():
                continue
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)
