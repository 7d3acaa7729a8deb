"""`mappa serve`: the agency HTTP API under uvicorn, with every served agency's gateway
(and the audit ledger) polling in the background.

``mappa serve --agency ID`` on a data directory made by ``mappa deploy gateway-dir``
runs that agency's gateway alone, with only its keys: an agency whose keys are not
held is refused in one line before anything starts, and the audit ledger runs only
where its private key is held (it says so at start otherwise; the ledger then runs as
``mappa ledger serve``, and this server's governance routes answer 404). Without
``--agency``, every agency whose keys are held: the all-in-one demo.

Each served agency whose witness key is held here (``mappa deploy gateway-dir`` copies it
with the witness policy) also serves its witness of the audit ledger over HTTP, for a
ledger run elsewhere: ``POST /witness/<agency>/add-checkpoint`` (docs/api.md, "Witness").

Ctrl-C or SIGTERM stops accepting requests, finishes those in flight, then stops the
pollers, gateways, stores and the embedded broker (the app's lifespan owns them), and
exits 0. A start that fails on one of our errors (a ledger database that does not
answer, a broker that cannot be reached) is said in one line by ``mappa``, exit 1, with
no traceback in the log. This is the composition root: the one place that picks each
agency's adapter (``agency_adapters.registry``) and hands it to the API, which imports
no adapter itself.

``mappa serve --demo`` serves the console on a fresh demo deployment instead
(``broker.cli.demo.console``), printing its address and a sign-in for each role.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn

from agency_adapters.base import AgencyAdapter
from agency_adapters.registry import adapter_for
from broker.agreements import agreement_for_area, read_agreement
from broker.api.backend import BackendFactory
from broker.api.compose import AppBuilder, application
from broker.api.limits import QueryRedaction
from broker.api.runtime import ServeConfig, Startup, choose_agencies, deployment_backend
from broker.cli.arguments import whole_number
from broker.cli.demo.console import banner, demo_data_dir, prepare
from broker.errors import ConfigurationError
from broker.gateway import AgencyGateway
from broker.observe.logs import configure_logging, json_by_default
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from broker.trust.provision import DataPaths, load_directory
from schemas.isa import Agreement

DEFAULT_PORT = 8700
KEEP_ALIVE_SECONDS = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the agency HTTP API (uvicorn) and the gateways")
    serve.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    serve.add_argument(
        "--bootstrap", help="external Kafka (default: MAPPA_KAFKA_BOOTSTRAP, else embedded)"
    )
    add_server_options(serve, port=DEFAULT_PORT)
    serve.add_argument(
        "--agency",
        action="append",
        help="serve this agency (repeatable; default: every agency whose keys are held)",
    )
    serve.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="AGENCY=KIND",
        help="the adapter kind for an agency, where its role has several",
    )
    serve.add_argument("--area", help="area of the default agreement (when there is one area)")
    serve.add_argument("--agreement", type=Path, help="agreement document (YAML or JSON)")
    serve.add_argument(
        "--no-ledger",
        action="store_true",
        help="do not run the audit ledger (it does not run anyway where its key is not held)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="the web console on a fresh demo deployment (embedded broker; a temporary data "
        "directory unless --data-dir names an empty one): prints a sign-in for each role",
    )
    serve.set_defaults(handler=cmd_serve)


def add_server_options(parser: argparse.ArgumentParser, *, port: int) -> None:
    """The options ``run_server`` reads, for every command that runs a server (``mappa
    serve``, ``mappa ledger serve``): where it listens and how much it logs."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 in a container, behind its TLS proxy)",
    )
    parser.add_argument(
        "--port",
        type=whole_number(0, 65535),
        default=port,
        metavar="PORT",
        help=f"TCP port, a whole number from 0 to 65535; 0 picks a free port (default {port})",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning"],
        help="the least severe log lines shown (default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "text"],
        help="log lines on standard error: JSON lines, or plain text for a person "
        "(default: text on a terminal, JSON otherwise; docs/operations.md)",
    )


def default_agreement(paths: DataPaths, area: str | None) -> Agreement:
    """The default agreement for the area, with every agency of that area a party."""
    directory = load_directory(paths)
    areas = sorted({a for entry in directory.agencies() for a in entry.areas})
    if area is None:
        if len(areas) != 1:
            raise ConfigurationError(
                f"the directory covers {len(areas)} areas: say which with --area, "
                "or give --agreement"
            )
        area = areas[0]
    parties = directory.agencies(area=area)
    if len(parties) < 2:
        raise ConfigurationError(f"area {area!r} has fewer than two agencies in the directory")
    return agreement_for_area(area, parties)


def adapter_choice(pairs: list[str]) -> dict[str, str]:
    kinds = {}
    for pair in pairs:
        agency, sep, kind = pair.partition("=")
        if not sep or not agency or not kind:
            raise ConfigurationError(f"--adapter takes AGENCY=KIND, not {pair!r}")
        kinds[agency] = kind
    return kinds


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die by
    the signal; a service stopped on purpose should exit 0 instead. ``on_listening`` is
    told the server's address once it accepts connections."""

    def __init__(
        self, config: uvicorn.Config, on_listening: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_listening(f"http://{host}:{port}")

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(sig: int, frame: FrameType | None) -> None:
            self.handle_exit(sig, frame)

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.demo:
        return serve_demo(args)
    settings = Settings.with_flags(data_dir=args.data_dir, kafka_bootstrap=args.bootstrap)
    paths = DataPaths(settings.data_dir)
    kinds = adapter_choice(args.adapter)

    def choose(gateway: AgencyGateway) -> AgencyAdapter:
        return adapter_for(gateway, kinds.get(gateway.agency_id))

    passphrase = passphrase_from_env()
    # Checked before anything starts, so a typo gets one clear line, not a traceback.
    listed = [a.agency_id for a in load_directory(paths).agencies()]
    choose_agencies(settings, passphrase, listed, args.agency)
    config = ServeConfig(
        settings=settings,
        passphrase=passphrase,
        agreement=read_agreement(args.agreement)
        if args.agreement
        else default_agreement(paths, args.area),
        adapter_for=choose,
        agencies=args.agency,
        run_ledger=not args.no_ledger,
    )
    return run_server(lambda: deployment_backend(config), application, args)


def serve_demo(args: argparse.Namespace) -> int:
    """``mappa serve --demo``: the console on a fresh demo deployment (module docstring).
    Refuses the options that choose a deployment's parts: the demo chooses them."""
    parts = ("bootstrap", "agency", "agreement", "area", "adapter", "no_ledger")
    chosen = ["--" + n.replace("_", "-") for n in parts if getattr(args, n)]
    if chosen:
        raise ConfigurationError(f"--demo chooses its own deployment: drop {', '.join(chosen)}")
    with demo_data_dir(args.data_dir) as (data_dir, temporary):
        config, sign_ins = prepare(data_dir, secrets.token_urlsafe(24).encode())

        def listening(url: str) -> None:
            print(banner(url, sign_ins, data_dir, temporary), flush=True)

        return run_server(
            lambda: deployment_backend(config), application, args, on_listening=listening
        )


def run_server(
    backend: BackendFactory,
    build_app: AppBuilder,
    args: argparse.Namespace,
    *,
    on_listening: Callable[[str], None] | None = None,
) -> int:
    """Serve ``build_app``'s app over ``backend`` under uvicorn at ``args.host`` and
    ``args.port`` (``add_server_options``) until Ctrl-C or SIGTERM; returns the exit
    status. Raises the ``MappaError`` a failed start remembered (``Startup``)."""
    startup = Startup(backend)
    app = startup.app(build_app(startup.backend))
    served = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        lifespan="on",
        log_level=args.log_level,
        # An idle connection is closed after this; the app bounds a body's arrival itself
        # (``broker.api.limits``), uvicorn nothing else in time.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    # After Config, which sets up uvicorn's loggers: the access log names query
    # parameters, never their values (a token sent as ?access_token=, a PNC id); then
    # every logger, uvicorn's too, writes structured, redacted lines (broker.observe.logs).
    logging.getLogger("uvicorn.access").addFilter(QueryRedaction())
    json_lines = args.log_format == "json" if args.log_format else json_by_default(sys.stderr)
    configure_logging(args.log_level, json=json_lines)
    server = _Server(served, on_listening)
    with contextlib.suppress(SystemExit):  # uvicorn's way of saying the app did not start
        server.run()
    if startup.error is not None:
        raise startup.error
    if not server.started:
        print("mappa serve: did not start (see the log above)", file=sys.stderr)
        return 1
    return 0
