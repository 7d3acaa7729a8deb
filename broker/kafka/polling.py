"""Background polling: each reader of a running service polls until the service stops.

A failed poll (the broker away, a database locked) is logged once and retried with a
doubling delay, never allowed to end the loop silently; when polls succeed again one
line says how many failed over how long (an outage is two lines, not thousands). A bug
is logged with its traceback and retried too, so that one agency stays served while it
is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from broker.errors import MappaError

log = logging.getLogger(__name__)
# After a failed poll, wait this long before the next; doubles up to the cap.
RETRY_FIRST_SECONDS = 0.5
# A failed poll costs little (one connection attempt): after an outage, work resumes
# within this many seconds of the part coming back.
RETRY_CAP_SECONDS = 5.0

Poll = Callable[[], Awaitable[object]]


async def poll_forever(name: str, poll: Poll, stop: asyncio.Event) -> None:
    """Call ``poll`` until ``stop`` is set, retrying failures with backoff."""
    delay = RETRY_FIRST_SECONDS
    failures, since = 0, 0.0
    while not stop.is_set():
        try:
            await poll()
        except (MappaError, OSError) as exc:
            if not failures:
                since = time.monotonic()
                log.warning("%s: poll failed, retrying with backoff: %s", name, exc)
            else:
                log.debug("%s: poll failed again: %s", name, exc)
            failures += 1
        except Exception:
            if not failures:
                since = time.monotonic()
            failures += 1
            log.exception("%s: poll failed unexpectedly, retrying in %.1fs", name, delay)
        else:
            if failures:
                log.warning(
                    "%s: polling again after %d failed polls over %.1fs",
                    name,
                    failures,
                    time.monotonic() - since,
                )
                failures = 0
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
