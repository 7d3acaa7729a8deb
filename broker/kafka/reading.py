"""A part's reader of its topics, kept through broker trouble: one per agency gateway and
one for the ledger.

The part stores its own offsets (in the same transaction as what it does with each
record); the reader only has to stand where they say. Three things can move it away:
a batch that failed (its records read but not kept: go back to the stored offsets), a
broker replaced under it (the embedded one restarted with an empty log: open a new
reader on the new log), and a reader that could not be repositioned (the store that
says where to go is itself unavailable just now). In the last case, and whenever a
reread could not open its new reader, the reader is dropped and the next poll opens one
from the stored offsets: no record is ever skipped because a step in between failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from broker.kafka.transport import Offsets, PartitionReader, Record

log = logging.getLogger(__name__)


class KeptReader:
    """The reader of one part, opened by ``open_reader`` (which positions it at the
    part's stored offsets and handles a changed cluster), repositioned at ``offsets()``.
    ``batch`` holds the part's one-poll-at-a-time lock: a reread waits for the poll in
    progress."""

    def __init__(
        self,
        name: str,
        open_reader: Callable[[], Awaitable[PartitionReader]],
        offsets: Callable[[], Offsets],
    ) -> None:
        self._name = name
        self._open = open_reader
        self._offsets = offsets
        self._reader: PartitionReader | None = None
        # Between start and stop: a poll finding no reader opens one.
        self._started = False
        self._lock = asyncio.Lock()

    @property
    def reading(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._started

    async def start(self) -> None:
        """Open the reader, if not open. Idempotent. Raises what ``open_reader`` raises
        (the reader then opens at the first poll)."""
        self._started = True
        if self._reader is None:
            self._reader = await self._open()

    async def stop(self) -> None:
        """Stop reading. Idempotent."""
        self._started = False
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    async def reread(self) -> None:
        """The broker was replaced: drop the reader of the old log (whatever it says) and
        open one on the new. Raises what ``open_reader`` raises; the next poll then
        opens it."""
        async with self._lock:
            reader, self._reader = self._reader, None
            if reader is not None:
                await reader.stop()  # bounded, and never raises for its client
            self._reader = await self._open()

    @asynccontextmanager
    async def batch(self, timeout_ms: int) -> AsyncIterator[list[Record]]:
        """``async with reader.batch(ms) as records:`` one poll's records, under the lock.
        If the block raises, the reader goes back to the stored offsets (or, if they
        cannot be read, is dropped, to be opened from them at the next poll), so the
        records are read again, and the exception propagates. Raises ``RuntimeError``
        before ``start``."""
        async with self._lock:
            if self._reader is None:
                if not self._started:
                    raise RuntimeError(f"{self._name}: not started")
                self._reader = await self._open()
            reader = self._reader
            records = await reader.poll(timeout_ms=timeout_ms)
            try:
                yield records
            except BaseException:
                await self._go_back(reader)
                raise

    async def _go_back(self, reader: PartitionReader) -> None:
        try:
            await reader.rewind(self._offsets())
        except Exception as exc:  # noqa: BLE001 - any failure: reopen from the store instead
            log.info(
                "%s: reading again from the stored offsets at the next poll (%s)", self._name, exc
            )
            if self._reader is reader:
                self._reader = None
            await reader.stop()  # bounded, and never raises for its client
