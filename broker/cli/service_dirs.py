"""`mappa deploy gateway-dir|ledger-dir`: one service's own data directory, carved from
the deployment's (``broker.trust.service_dirs``), to hand to the host that runs it:
`mappa serve --agency ID` for a gateway, `mappa ledger serve` for the ledger.

Prints the files written (paths only); nothing is unsealed, so no passphrase is
needed."""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.settings import Settings
from broker.trust.provision import DataPaths
from broker.trust.service_dirs import gateway_dir, ledger_dir


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gateway-dir`` and ``ledger-dir`` to the ``mappa deploy`` subcommands."""
    gateway = actions.add_parser(
        "gateway-dir",
        help="a data directory for one agency's gateway: only that agency's private keys",
        description="Copy into OUT what `mappa serve --agency ID` needs: the trust anchor, "
        "the signed directory, the signed agreements, the ledger's public key, the subject "
        "key and the agency's own sealed private keys, with the witness policy, the agency's "
        "witness key and a copy of its witness store where the deployment has them; no other "
        "agency's key, no ledger or governance key, no other store, no API credentials.",
    )
    gateway.add_argument("--data-dir", type=Path, help="the deployment's (MAPPA_DATA_DIR)")
    gateway.add_argument("--agency", required=True, help="the agency id whose gateway it is for")
    gateway.add_argument("--out", type=Path, required=True, help="the new data directory")
    gateway.set_defaults(handler=cmd_gateway_dir)
    ledger = actions.add_parser(
        "ledger-dir",
        help="a data directory for the audit ledger service: its key and no agency's",
        description="Copy into OUT what `mappa ledger serve` needs: the public files as for "
        "a gateway (the witness policy too), the subject key and the ledger's sealed private "
        "key; no agency's key.",
    )
    ledger.add_argument("--data-dir", type=Path, help="the deployment's (MAPPA_DATA_DIR)")
    ledger.add_argument("--out", type=Path, required=True, help="the new data directory")
    ledger.set_defaults(handler=cmd_ledger_dir)


def _source(args: argparse.Namespace) -> DataPaths:
    return DataPaths(Settings.with_flags(data_dir=args.data_dir).data_dir)


def _said(out: Path, written: list[Path], what: str) -> int:
    print(f"{what}: {len(written)} files in {out}")
    for path in written:
        print(f"  {path.relative_to(out)}")
    return 0


def cmd_gateway_dir(args: argparse.Namespace) -> int:
    written = gateway_dir(_source(args), DataPaths(args.out), args.agency)
    return _said(args.out, written, f"gateway of {args.agency}")


def cmd_ledger_dir(args: argparse.Namespace) -> int:
    return _said(args.out, ledger_dir(_source(args), DataPaths(args.out)), "audit ledger")
