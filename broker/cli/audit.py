"""`mappa audit query|proof|checkpoint|export|verify|rejected`: the officer's view of the ledger.

The ledger is the deployment's (``--data-dir`` / MAPPA_DATA_DIR, and MAPPA_DATABASE_URL
for PostgreSQL). A query by ``--subject`` takes the plain PNC id and needs the key
passphrase (MAPPA_KEY_PASSPHRASE) to compute the keyed hash; nothing else does.
`verify` exits 0 when the ledger is intact and 3 when it is not, naming the first
bad entry; it never changes the ledger.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from broker.cli.arguments import whole_number
from broker.errors import VerificationError
from broker.ledger.query import DEFAULT_PAGE
from broker.ledger.reader import LedgerReader, open_ledger_reader
from broker.ledger.verify_proofs import ProofError, leaf_hash, verify_checkpoint, verify_inclusion
from broker.settings import Settings
from broker.trust.keystore import passphrase_from_env
from schemas.audit import AuditAct, Outcome

EXIT_TAMPERED = 3
_FILTERS = ("subject", "subject_ref", "agency", "user", "act", "agreement", "outcome")
_TABLE = ("seq", "time", "act", "agency", "user", "recipient", "outcome", "subject_ref")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subject", help="offender's PNC id (hashed for you; never stored)")
    p.add_argument("--subject-ref", dest="subject_ref", help="the keyed hash, if you have it")
    p.add_argument("--agency", help="acting agency id")
    p.add_argument("--user", help="acting user id")
    p.add_argument("--act", help=f"one of {', '.join(a.value for a in AuditAct)}")
    p.add_argument("--agreement", help="information-sharing agreement id")
    p.add_argument("--outcome", help=f"one of {', '.join(o.value for o in Outcome)}")
    p.add_argument("--since", help="from this date or time (inclusive), e.g. 2026-11-01")
    p.add_argument("--until", help="before this date or time (exclusive)")
    p.add_argument("--proofs", action="store_true", help="add each row's inclusion proof")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the tamper-evident audit ledger, for governance officers")
    audit.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    audit.add_argument("--database-url", help="PostgreSQL ledger URL (MAPPA_DATABASE_URL)")
    cmds = audit.add_subparsers(dest="audit_command", required=True)

    query = cmds.add_parser("query", help="entries matching filters, oldest first, paged")
    _filters(query)
    query.add_argument(
        "--after", type=whole_number(-1), help="continue after this entry (next_after)"
    )
    query.add_argument(
        "--limit", type=whole_number(1), default=DEFAULT_PAGE, help="page size (max 1000)"
    )
    query.add_argument("--json", action="store_true")
    query.set_defaults(handler=cmd_query)

    proof = cmds.add_parser("proof", help="inclusion proof of one entry in a signed checkpoint")
    proof.add_argument("seq", type=whole_number(), help="entry number (leaf index, from 0)")
    proof.add_argument("--size", type=whole_number(), help="checkpoint tree size (default: latest)")
    proof.add_argument(
        "--consistency-from", type=whole_number(), help="also prove this older checkpoint"
    )
    proof.set_defaults(handler=cmd_proof)

    checkpoint = cmds.add_parser("checkpoint", help="the latest signed checkpoint")
    checkpoint.add_argument("--size", type=whole_number(), help="a particular checkpoint")
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(handler=cmd_checkpoint)

    export = cmds.add_parser("export", help="every matching entry as CSV or JSON (SAR / ICO)")
    _filters(export)
    export.add_argument("--format", choices=["csv", "json"], default="json")
    export.add_argument("--output", type=Path, help="write here instead of standard output")
    export.set_defaults(handler=cmd_export)

    verify = cmds.add_parser("verify", help="recompute the whole log; exit 3 if tampered")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)

    rejected = cmds.add_parser("rejected", help="audit records the ledger refused, and why")
    rejected.add_argument("--json", action="store_true")
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
        print(json.dumps(page, indent=1))
        return 0
    print("  ".join(f"{c:<12}" for c in _TABLE))
    for row in page["entries"]:
        cells = [str(row.get(c) or "-") for c in _TABLE]
        cells[-1] = cells[-1][:16]
        print("  ".join(f"{c:<12}" for c in cells))
    more = page["next_after"]
    print(f"{len(page['entries'])} entries" + (f"; more with --after {more}" if more else ""))
    return 0


def cmd_proof(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
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
        print(json.dumps(doc, indent=1))
    else:
        print(doc["note"] + f"verifier key: {doc['verifier_key']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
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
        report = reader.verify()
    finally:
        reader.store.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    elif report.intact:
        print(
            f"ledger intact: {report.entries} entries, {report.checkpoints} signed checkpoints "
            f"(latest covers {report.latest_checkpoint_size}); {report.rejected} refused records"
        )
    else:
        print(f"LEDGER TAMPERED: first bad entry {report.first_bad_entry}: {report.problem}")
    return 0 if report.intact else EXIT_TAMPERED


def cmd_rejected(args: argparse.Namespace) -> int:
    reader = _reader(args)
    try:
        rows = reader.rejected()
    finally:
        reader.store.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['id']:>5}  {r['topic']}:{r['partition']}@{r['offset']}  {r['reason_code']}")
        print(f"       {r['reason']}")
        # All the ledger keeps of the record: enough to match it with a copy held elsewhere.
        print(f"       sha256 {r['digest']}, {r['bytes']} bytes")
    print(f"{len(rows)} refused records")
    return 0
