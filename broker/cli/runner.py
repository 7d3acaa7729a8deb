"""Run a command's coroutine so that Ctrl-C always ends it as an interrupt."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, except that SIGINT always ends in ``KeyboardInterrupt``.

    asyncio turns Ctrl-C into cancelling the main task. A library that swallows
    that cancellation (aiokafka can, while it is connecting) would let the command
    carry on and exit 0 as if nobody had pressed Ctrl-C. So the interrupt is
    remembered here, and the command's own cleanup (``finally`` / ``async with``)
    still runs before the interrupt is reported.
    """
    interrupted = False

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            if task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await main
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    if interrupted:
        raise KeyboardInterrupt
    return result
