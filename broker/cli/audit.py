"""`mappa audit query|proof|checkpoint|export|verify|rejected|alarms`: the officer's view of
the ledger.

The ledger is the deployment's (``--data-dir`` / MAPPA_DATA_DIR, and MAPPA_DATABASE_URL
for PostgreSQL). A query by ``--subject`` takes the plain PNC id and needs the key
passphrase (MAPPA_KEY_PASSPHRASE) to compute the keyed hash; nothing else does.
`verify` exits 0 when the ledger is intact and 3 when it is not, naming the first
bad entry (every one it finds with ``--all``) and any alarm the ledger raised about
itself; it never changes the ledger.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from broker.cli import exits
from broker.cli.arguments import whole_number
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.cli.progress import progress
from broker.errors import VerificationError
from broker.ledger.integrity import IntegrityReport
from broker.ledger.integrity_all import DEFAULT_MAX_PROBLEMS, MAX_PROBLEMS, FullReport
from broker.ledger.query import DEFAULT_PAGE
from broker.ledger.reader import LedgerReader, open_ledger_reader
from broker.ledger.verify_proofs import ProofError, leaf_hash, verify_checkpoint, verify_inclusion
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from schemas.audit import AuditAct, Outcome

_FILTERS = ("subject", "subject_ref", "agency", "user", "act", "agreement", "outcome")
_TABLE = ("seq", "time", "act", "agency", "user", "recipient", "outcome", "subject_ref")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--subject", metavar="PNC_ID", help="offender's PNC id (hashed for you; never stored)"
    )
    p.add_argument(
        "--subject-ref", dest="subject_ref", metavar="REF", help="the keyed hash, if you have it"
    )
    p.add_argument("--agency", metavar="AGENCY_ID", help="acting agency id")
    p.add_argument("--user", metavar="USER_ID", help="acting user id")
    p.add_argument("--act", help=f"one of {', '.join(a.value for a in AuditAct)}")
    p.add_argument("--agreement", metavar="AGREEMENT_ID", help="information-sharing agreement id")
    p.add_argument("--outcome", help=f"one of {', '.join(o.value for o in Outcome)}")
    p.add_argument(
        "--since",
        metavar="YYYY-MM-DD[THH:MM:SSZ]",
        help="from this date or UTC time (inclusive), e.g. 2026-11-01",
    )
    p.add_argument(
        "--until",
        metavar="YYYY-MM-DD[THH:MM:SSZ]",
        help="before this date or UTC time (exclusive), e.g. 2026-12-01",
    )
    p.add_argument("--proofs", action="store_true", help="add each row's inclusion proof")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the tamper-evident audit ledger, for governance officers")
    audit.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    audit.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL ledger URL, postgresql://... (MAPPA_DATABASE_URL)",
    )
    cmds = audit.add_subparsers(dest="audit_command", required=True)

    query = cmds.add_parser("query", help="entries matching filters, oldest first, paged")
    _filters(query)
    query.add_argument(
        "--after",
        type=whole_number(-1),
        metavar="SEQ",
        help="continue after this entry number (a whole number: the next_after printed)",
    )
    query.add_argument(
        "--limit",
        type=whole_number(1),
        default=DEFAULT_PAGE,
        metavar="N",
        help=f"page size, a whole number from 1 to 1000 (default {DEFAULT_PAGE})",
    )
    query.add_argument("--json", action="store_true", help=JSON_HELP)
    query.set_defaults(handler=cmd_query)

    proof = cmds.add_parser("proof", help="inclusion proof of one entry in a signed checkpoint")
    proof.add_argument(
        "seq", type=whole_number(), help="entry number, a whole number (leaf index, from 0)"
    )
    proof.add_argument(
        "--size",
        type=whole_number(),
        metavar="N",
        help="checkpoint tree size, a whole number (default: the latest)",
    )
    proof.add_argument(
        "--consistency-from",
        type=whole_number(),
        metavar="N",
        help="also prove the older checkpoint of this tree size (a whole number)",
    )
    proof.set_defaults(handler=cmd_proof)

    checkpoint = cmds.add_parser("checkpoint", help="the latest signed checkpoint")
    checkpoint.add_argument(
        "--size", type=whole_number(), metavar="N", help="the checkpoint of this tree size"
    )
    checkpoint.add_argument("--json", action="store_true", help=JSON_HELP)
    checkpoint.set_defaults(handler=cmd_checkpoint)

    export = cmds.add_parser("export", help="every matching entry as CSV or JSON (SAR / ICO)")
    _filters(export)
    export.add_argument(
        "--format", choices=["csv", "json"], default="json", help="file format (default json)"
    )
    export.add_argument(
        "--output", type=Path, metavar="FILE", help="write here instead of standard output"
    )
    export.set_defaults(handler=cmd_export)

    verify = cmds.add_parser("verify", help="recompute the whole log; exit 3 if tampered")
    verify.add_argument(
        "--all",
        action="store_true",
        help="report every bad entry, range and checkpoint found in one pass, not the first",
    )
    verify.add_argument(
        "--max-problems",
        type=whole_number(1, MAX_PROBLEMS),
        default=DEFAULT_MAX_PROBLEMS,
        metavar="N",
        help=f"with --all, stop after this number of problems, a whole number from 1 to "
        f"{MAX_PROBLEMS} (default {DEFAULT_MAX_PROBLEMS})",
    )
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    verify.set_defaults(handler=cmd_verify)

    alarms = cmds.add_parser(
        "alarms", help="alarms the ledger raised about itself (its watch, its scheduled verify)"
    )
    alarms.add_argument("--json", action="store_true", help=JSON_HELP)
    alarms.set_defaults(handler=cmd_alarms)

    rejected = cmds.add_parser("rejected", help="audit records the ledger refused, and why")
    rejected.add_argument("--json", action="store_true", help=JSON_HELP)
    rejected.set_defaults(handler=cmd_rejected)


def _reader(args: argparse.Namespace) -> LedgerReader:
    base = Settings()
    settings = base.model_copy(
        update={
            "data_dir": args.data_dir or base.data_dir,
            "database_url": args.database_url or base.database_url,
        }
    )
    return open_ledger_reader(settings, passphrase_from_env)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = {k: getattr(args, k) for k in (*_FILTERS, "since", "until")}
    params["proofs"] = args.proofs
    return params


def cmd_query(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        page = reader.query({**_params(args), "after": args.after, "limit": args.limit})
    finally:
        reader.store.close()
    if args.json:
        print_json(page)
        return 0
    print_table(_TABLE, ([row.get(c) for c in _TABLE] for row in page["entries"]))
    more = page["next_after"]
    print(
        f"{len(page['entries'])} entries"
        + (f"; more with --after {more}" if more is not None else "")
    )
    return 0


def cmd_proof(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        # With who cosigned its checkpoint (``LedgerReader.proof``).
        proof = reader.proof(args.seq, size=args.size)
        if args.consistency_from is not None:
            proof["consistency"] = reader.consistency(args.consistency_from, proof["tree_size"])
    finally:
        reader.store.close()
    # Checked here with the standalone verifier before it is handed over.
    try:
        cp = verify_checkpoint(proof["checkpoint"], proof["verifier_key"], origin=reader.origin)
        verify_inclusion(
            proof["seq"],
            cp.size,
            leaf_hash(proof["entry"].encode()),
            [_b64(h) for h in proof["hashes"]],
            cp.root,
        )
    except ProofError as exc:
        raise VerificationError(f"the ledger gave a proof that does not verify: {exc}") from None
    proof["verified"] = True
    print(json.dumps(proof, indent=1))
    return 0


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def cmd_checkpoint(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        doc = reader.checkpoint_json(args.size)
    finally:
        reader.store.close()
    if args.json:
        print_json(doc)
    else:
        print(doc["witnessed_note"] + f"verifier key: {doc['verifier_key']}")
        print(witnesses_line(doc))
    return 0


def witnesses_line(doc: dict[str, Any]) -> str:
    """One line on who cosigned a checkpoint (``witness_summary``'s fields)."""
    if not doc["witness_count"]:
        return "witnesses: none (no witness policy in the data directory)"
    said = (
        "verified against the witness policy"
        if doc["witnessed"]
        else "NOT witnessed: fewer than the policy needs"
    )
    names = ", ".join(doc["witnesses"]) or "none"
    return (
        f"witnesses: {len(doc['witnesses'])} of {doc['witness_count']} cosigned "
        f"(threshold {doc['threshold']}), {said}: {names}"
    )


def cmd_export(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        with progress("exporting the ledger") as advance:
            advance(0, None)
            text = reader.export(_params(args), args.format)
    finally:
        reader.store.close()
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        with progress("verifying the ledger (entries hashed)") as advance:
            report: IntegrityReport | FullReport = (
                reader.verify_all(max_problems=args.max_problems, progress=advance)
                if args.all
                else reader.verify(progress=advance)
            )
        alarms = reader.alarms()
    finally:
        reader.store.close()
    if args.json:
        print_json({**report.to_json(), "alarms": alarms})
        return exits.OK if report.intact else exits.TAMPERED
    if report.intact:
        print(
            f"ledger intact: {report.entries} entries, {report.checkpoints} signed checkpoints "
            f"(latest covers {report.latest_checkpoint_size}); {report.rejected} refused records"
        )
    elif isinstance(report, FullReport):
        more = " (the cap: there may be more)" if report.truncated else ""
        print(f"LEDGER TAMPERED: {len(report.problems)} problems{more}")
        for p in report.problems:
            where = "" if p.entry is None else f"entry {p.entry}"
            if p.last is not None:
                where += f" to {p.last}"
            print(f"  {where}: {p.problem}" if where else f"  {p.problem}")
    else:
        print(f"LEDGER TAMPERED: first bad entry {report.first_bad_entry}: {report.problem}")
    _print_open_alarm(alarms)
    return exits.OK if report.intact else exits.TAMPERED


def _print_open_alarm(alarms: list[dict[str, Any]]) -> None:
    """One line if the ledger halted itself and has not been cleared since."""
    if alarms and alarms[-1]["kind"] != "cleared":
        a = alarms[-1]
        at = "" if a["first_bad_entry"] is None else f", first bad entry {a['first_bad_entry']}"
        print(
            f"ALARM: the ledger halted itself at {a['time']} ({a['kind']}{at}): "
            f"{a['problem']}; see `mappa audit alarms`"
        )


def cmd_alarms(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        rows = reader.alarms()
    finally:
        reader.store.close()
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ("id", "time", "kind", "first_bad_entry", "problem"),
        ((a["id"], a["time"], a["kind"], a["first_bad_entry"], a["problem"]) for a in rows),
    )
    halted = bool(rows) and rows[-1]["kind"] != "cleared"
    print(f"{len(rows)} alarms; the ledger is {'HALTED' if halted else 'running'}")
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        rows = reader.rejected()
    finally:
        reader.store.close()
    if args.json:
        print_json(rows)
        return 0
    # All the ledger keeps of each record: enough to match it with a copy held elsewhere.
    print_table(
        ("id", "record", "reason_code", "bytes", "sha256", "reason"),
        (
            (r["id"], f"{r['topic']}:{r['partition']}@{r['offset']}", r["reason_code"],
             r["bytes"], r["digest"], r["reason"])
            for r in rows
        ),
    )  # fmt: skip
    print(f"{len(rows)} refused records")
    return 0
