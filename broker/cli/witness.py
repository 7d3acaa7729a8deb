"""`mappa witness alarms`: what the witnesses run in this data directory refused, for the
information-governance officer.

Each witness keeps its latest cosigned checkpoint and its alarms (a rollback or a fork of
the ledger) in its own store, ``witnesses/<agency>.sqlite``; this lists, for each witness
the governance-signed witness policy names whose store is here, its latest cosigned size
and every alarm: when, the code (``witness.rollback``, ``witness.inconsistent``), the size
the ledger offered, the size the witness had cosigned, and why. A store not here is
skipped (that witness runs elsewhere); nothing is created. Exit 3 if any alarm is listed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from broker.cli import exits
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.errors import ConfigurationError
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_governance_public
from broker.witness.policy import load_policy
from broker.witness.setup import witness_store_path
from broker.witness.witness import WitnessStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    witness = sub.add_parser("witness", help="the ledger's witnesses run here, and their alarms")
    witness.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = witness.add_subparsers(dest="witness_command", required=True)
    alarms = cmds.add_parser(
        "alarms",
        help="each witness's latest cosigned size and the rollbacks and forks it refused; "
        "exit 3 if there is any",
    )
    alarms.add_argument("--json", action="store_true", help=JSON_HELP)
    alarms.set_defaults(handler=cmd_alarms)


def witness_report(paths: DataPaths) -> list[dict[str, Any]]:
    """Per witness of the policy whose store is in ``paths``: name, agency, latest size
    (None before its first cosignature) and alarms. Raises ``ConfigurationError`` if the
    data directory has no witness policy, and as ``load_policy`` does for one that does
    not verify."""
    policy = load_policy(paths.root, load_governance_public(paths))
    if policy is None:
        raise ConfigurationError(f"no witness policy in {paths.root}")
    report = []
    for entry in policy.witnesses:
        path = witness_store_path(paths, entry.agency)
        if not path.exists():
            continue
        store = WitnessStore(path)
        try:
            latest = store.latest(policy.document.origin)
            report.append(
                {
                    "witness": entry.name,
                    "agency": entry.agency,
                    "latest_size": None if latest is None else latest.size,
                    "alarms": store.alarms(),
                }
            )
        finally:
            store.close()
    return report


def cmd_alarms(args: argparse.Namespace) -> int:
    base = Settings()
    report = witness_report(DataPaths(args.data_dir or base.data_dir))
    raised = sum(len(w["alarms"]) for w in report)
    if args.json:
        print_json(report)
        return exits.TAMPERED if raised else 0
    print_table(
        ("witness", "latest_size", "alarms"),
        ((w["witness"], w["latest_size"], len(w["alarms"])) for w in report),
    )
    print_table(
        ("witness", "time", "code", "size", "own_size", "reason"),
        (
            (w["witness"], a["time"], a["code"], a["size"], a["own_size"], a["reason"])
            for w in report
            for a in w["alarms"]
        ),
    )
    print(f"{len(report)} witnesses here; {raised} alarms")
    return exits.TAMPERED if raised else 0
