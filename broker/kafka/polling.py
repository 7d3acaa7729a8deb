"""Background polling: each reader of a running service polls until the service stops.

A failed poll (the broker away, a database locked) is logged and retried with a
doubling delay, never allowed to end the loop silently; a bug is logged with its
traceback and retried too, so that one agency stays served while it is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from broker.errors import MappaError

log = logging.getLogger(__name__)
# After a failed poll, wait this long before the next; doubles up to the cap.
RETRY_FIRST_SECONDS = 0.5
RETRY_CAP_SECONDS = 10.0

Poll = Callable[[], Awaitable[object]]


async def poll_forever(name: str, poll: Poll, stop: asyncio.Event) -> None:
    """Call ``poll`` until ``stop`` is set, retrying failures with backoff."""
    delay = RETRY_FIRST_SECONDS
    while not stop.is_set():
        try:
            await poll()
        except (MappaError, OSError) as exc:
            log.warning("%s: poll failed, retrying in %.1fs: %s", name, delay, exc)
        except Exception:
            log.exception("%s: poll failed unexpectedly, retrying in %.1fs", name, delay)
        else:
            delay = RETRY_FIRST_SECONDS
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, RETRY_CAP_SECONDS)


@asynccontextmanager
async def polling(polls: Mapping[str, Poll]) -> AsyncIterator[None]:
    """Run one ``poll_forever`` task per named poll while the ``with`` block runs; on
    exit, stop and cancel them all and wait until they have ended."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(poll_forever(n, p, stop), name=n) for n, p in polls.items()]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for name, result in zip(polls, results, strict=True):
            if isinstance(result, Exception):
                log.error("%s: poller ended with %r", name, result)
