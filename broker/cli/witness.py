"""`mappa witness alarms|policy`: what the witnesses run in this data directory refused,
and the governance-signed witness policy, for the information-governance officer.

``policy`` prints the policy in force; with ``--add-independent``, ``--remove`` or
``--threshold`` it writes the next version, signed with the governance key (held in this
data directory's key store, as for ``mappa directory sign``). The ledger reads the policy
when it starts: a change applies from its next start. A policy nobody could meet (a
threshold above its witnesses) is refused before it is signed.

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
from broker.cli.arguments import whole_number
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.errors import ConfigurationError
from broker.ledger.verify_proofs import ProofError, parse_cosigner_key
from broker.settings import Settings
from broker.trust.admin import governance_key
from broker.trust.keystore import Keystore, passphrase_from_env
from broker.trust.provision import DataPaths, load_governance_public
from broker.witness.policy import (
    INDEPENDENT,
    MAX_WITNESSES,
    Policy,
    WitnessEntry,
    load_policy,
    sign_policy,
    write_policy,
)
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
    policy = cmds.add_parser(
        "policy",
        help="the witness policy in force; with a change, its next version signed with the "
        "governance key",
    )
    policy.add_argument(
        "--add-independent",
        action="append",
        default=[],
        metavar="COSIGNER_KEY",
        help="name a witness that is no agency, by its cosigner key "
        "<name>+<key id>+<base64 key> (repeat)",
    )
    policy.add_argument(
        "--remove", action="append", default=[], metavar="NAME", help="drop a witness (repeat)"
    )
    policy.add_argument(
        "--threshold",
        type=whole_number(1, MAX_WITNESSES),
        metavar="N",
        help="how many distinct witnesses must cosign, a whole number of at least 1",
    )
    policy.add_argument("--json", action="store_true", help=JSON_HELP)
    policy.set_defaults(handler=cmd_policy)


def witness_report(paths: DataPaths) -> list[dict[str, Any]]:
    """Per witness of the policy whose store is in ``paths``: name, agency, latest size
    (None before its first cosignature) and alarms. Raises ``ConfigurationError`` if the
    data directory has no witness policy, and as ``load_policy`` does for one that does
    not verify."""
    policy = _policy(paths)
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


def _policy(paths: DataPaths) -> Policy:
    """The data directory's witness policy, verified. Raises ``ConfigurationError`` if it
    has none, and as ``load_policy`` does for one that does not verify."""
    policy = load_policy(paths.root, load_governance_public(paths))
    if policy is None:
        raise ConfigurationError(
            f"no witness policy in {paths.root}: the ledger makes the default one on its "
            "first start where the governance key is held (`mappa serve` or `mappa demo`)"
        )
    return policy


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


def cmd_policy(args: argparse.Namespace) -> int:
    paths = DataPaths(args.data_dir or Settings().data_dir)
    policy = _policy(paths)
    if args.add_independent or args.remove or args.threshold is not None:
        policy = _next_version(paths, policy, args)
        print(f"witness policy version {policy.document.version} signed and written")
    document = policy.document
    if args.json:
        print_json(document.model_dump(mode="json"))
        return 0
    print(f"witness policy version {document.version} for {document.origin}")
    print(f"log key: {document.log_verifier_key}")
    print_table(
        ("witness", "run by", "cosigner key"),
        ((w.name, w.agency, w.verifier_key) for w in document.witnesses),
    )
    print(f"threshold: {document.threshold} of {len(document.witnesses)} witnesses")
    return 0


def _next_version(paths: DataPaths, policy: Policy, args: argparse.Namespace) -> Policy:
    """The policy with ``args``' changes, as its next version, signed and written.
    Raises ``ConfigurationError`` for a change that names no witness, a malformed
    cosigner key, or where the governance key is not held."""
    document = policy.document
    names = {w.name for w in document.witnesses}
    if unknown := sorted(set(args.remove) - names):
        raise ConfigurationError(f"no witness named {unknown[0]!r} in the policy")
    witnesses = [w for w in document.witnesses if w.name not in set(args.remove)]
    for vkey in args.add_independent:
        try:
            name, _ = parse_cosigner_key(vkey)
        except ProofError as exc:
            raise ConfigurationError(f"--add-independent: {exc}") from None
        if name in {w.name for w in witnesses}:
            raise ConfigurationError(f"a witness named {name!r} is in the policy already")
        witnesses.append(WitnessEntry(name=name, verifier_key=vkey, agency=INDEPENDENT))
    signer = governance_key(Keystore(paths.keys, passphrase_from_env()))
    if signer is None:
        raise ConfigurationError(f"no governance key in {paths.keys}: sign where it is held")
    new = document.model_copy(
        update={
            "version": document.version + 1,
            "witnesses": tuple(witnesses),
            "threshold": document.threshold if args.threshold is None else args.threshold,
        }
    )
    signed = sign_policy(new, signer)
    write_policy(paths.root, signed)
    return Policy(signed.document)
