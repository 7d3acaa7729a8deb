"""The latency section's receiver, a process of its own:
``python -m broker.bench.receiver AGENCY``.

It opens ``AGENCY``'s gateway in the deployment its environment names (the ``MAPPA_*``
settings and ``MAPPA_KEY_PASSPHRASE``: ``broker.bench.deployments``), with the default
settings, and writes to standard output, one line each:

  ready                          once its reader has started
  delivered <message id> <ns>    per message delivered (durable in its inbox), with
                                 ``time.time_ns()`` when its gateway said so
  refused <reason code>          per record refused

Its standard input is its lifeline: it stops when that closes, whether the bench
closed it or the bench died (the kernel closes it then, even after SIGKILL); SIGTERM
and SIGINT stop it too. It writes nothing else to standard output: log lines go to
standard error, and never carry message content; an error of ours (the agency not in
the directory, its keys not held) ends it with one line there and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence

from broker.agreements import default_agreements
from broker.deployment import Deployment
from broker.errors import MappaError
from broker.gateway.handled import Handled, Handling
from broker.observe.logs import configure_logging
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from broker.trust.provision import DataPaths, load_directory


def line(handled: Handled) -> str | None:
    """The line ``handled`` is reported by, if any (module docstring)."""
    if handled.handling is Handling.DELIVERED:
        return f"delivered {handled.message_id} {time.time_ns()}\n"
    if handled.handling is Handling.REFUSED:
        return f"refused {handled.reason_code}\n"
    return None


def report(handled: Handled) -> None:
    """Write ``handled``'s line, at once: the bench times it as it arrives."""
    text = line(handled)
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()


async def stopped() -> None:
    """Return when standard input closes, or at SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    lifeline = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lifeline), sys.stdin)

    async def closed() -> None:
        while await lifeline.read(4096):
            pass
        stop.set()

    watcher = asyncio.create_task(closed())
    try:
        await stop.wait()
    finally:
        watcher.cancel()


async def receive(agency: str) -> None:
    """Run ``agency``'s gateway, reporting what it handles, until ``stopped``."""
    settings = Settings()
    passphrase = passphrase_from_env()
    agreements = default_agreements(load_directory(DataPaths(settings.data_dir)))
    deployment = Deployment(settings=settings, passphrase=passphrase, agreements=agreements)
    async with deployment.running([agency], ledger=False) as running:
        gateway = running.gateways[agency]
        gateway.on_handled(report)
        sys.stdout.write("ready\n")
        sys.stdout.flush()

        async def poll() -> None:
            while True:
                await gateway.poll_once()

        polling = asyncio.create_task(poll())
        stop = asyncio.create_task(stopped())
        done, _ = await asyncio.wait({polling, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (polling, stop):
            task.cancel()
        await asyncio.gather(polling, stop, return_exceptions=True)
        if polling in done:
            polling.result()  # a failed poll ends the receiver with its error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.bench.receiver")
    parser.add_argument("agency", help="the receiving agency's id")
    args = parser.parse_args(argv)
    configure_logging(logging.WARNING, json=False, stream=sys.stderr)
    try:
        asyncio.run(receive(args.agency))
    except MappaError as exc:
        # One line, as `mappa` says its errors: the bench quotes it.
        print(f"receiver: {exc.code}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
