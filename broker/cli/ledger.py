"""`mappa ledger serve`: the audit ledger as a service of its own, beside one gateway
per agency (`mappa serve --agency ID`).

It reads the audit topic, verifies and appends each event, signs checkpoints and sends
each agency its ledger receipts (``broker.ledger.service``), on the data directory made
by ``mappa deploy ledger-dir`` (the ledger's private key, no agency's) and the ledger
database (``--database-url`` / MAPPA_DATABASE_URL for PostgreSQL, else
``ledger.sqlite`` there). Its HTTP app (``broker.api.ledger_app``) serves the governance
API to officers, and ``/healthz`` and ``/readyz``.

After each checkpoint it asks the witnesses of the witness policy (copied by ``mappa
deploy ledger-dir``) where ``MAPPA_WITNESS_URLS`` says they answer (each agency's
gateway, ``POST /witness/<agency>/add-checkpoint``), off the appending path: a witness
down is logged and skipped (docs/audit-ledger.md, section 3a).

Ctrl-C or SIGTERM stops accepting requests, then the ledger, its pollers, its store and
the embedded broker, if it started one, and exits 0. A data directory without the
ledger's key, or a start that fails on one of our errors (a ledger database or a broker
that does not answer), is said in one line, exit 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.api.ledger_app import ledger_application
from broker.api.runtime import ledger_backend
from broker.cli.serve import add_server_options, run_server
from broker.settings import Settings
from broker.trust.keystore import Keystore, passphrase_from_env
from broker.trust.provision import DataPaths
from broker.trust.service_dirs import require_ledger_key

DEFAULT_PORT = 8710


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = sub.add_parser("ledger", help="the audit ledger as a service of its own")
    ledger.add_argument(
        "--data-dir", type=Path, help="the ledger's data directory (MAPPA_DATA_DIR)"
    )
    actions = ledger.add_subparsers(dest="ledger_command", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the audit ledger and its governance API (uvicorn)",
        description="Read the audit topic, append, sign checkpoints and send ledger "
        "receipts; serve the governance API, /healthz and /readyz. The data directory is "
        "one made by `mappa deploy ledger-dir` (the ledger's private key, no agency's).",
    )
    serve.add_argument(
        "--database-url",
        help="the ledger database, postgresql://... (MAPPA_DATABASE_URL; default: "
        "ledger.sqlite in the data directory)",
    )
    serve.add_argument(
        "--bootstrap", help="external Kafka (default: MAPPA_KAFKA_BOOTSTRAP, else embedded)"
    )
    add_server_options(serve, port=DEFAULT_PORT)
    serve.set_defaults(handler=cmd_ledger_serve)


def cmd_ledger_serve(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(
        data_dir=args.data_dir, kafka_bootstrap=args.bootstrap, database_url=args.database_url
    )
    passphrase = passphrase_from_env()
    paths = DataPaths(settings.data_dir)
    # Checked before anything starts, so a gateway's directory gets one clear line.
    require_ledger_key(paths, Keystore(paths.keys, passphrase))
    return run_server(lambda: ledger_backend(settings, passphrase), ledger_application, args)
