"""Long-lived parts: ``start()``, an idempotent ``stop()``, and ``async with`` for both.

The transport, every gateway and the ledger service are such parts, composed by
``Deployment.running`` with an ``AsyncExitStack``, so that nobody orders start and
stop by hand and a failure anywhere stops what had started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class AsyncPart(ABC):
    """A part that starts on ``async with`` and stops when the block ends, however."""

    @abstractmethod
    async def start(self) -> None:
        """Connect or start reading. Idempotent."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect or stop reading. Idempotent: safe after a failed start."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
