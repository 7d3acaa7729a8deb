"""`mappa deadletter list|retry`: records an agency refused for a reason that can pass.

A refusal whose cause can pass (its clock running slow, a directory or agreement version
it had not yet received) keeps the record in the agency's store. Once the cause is
fixed, ``retry`` runs each kept record through the agency's receiving path again, as it
would have been read: delivered now, or refused again (and kept, if it can still pass).
Each retry is audited, naming who asked. What a retry writes (the delivery, its audit
events and its receipt) waits in the outbox for `mappa serve` to send, as everything
the gateway does. No broker is needed here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.cli import exits
from broker.cli.arguments import whole_number
from broker.cli.offline import offline_gateway
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.cli.progress import progress
from broker.errors import ConfigurationError, SchemaError
from broker.gateway import AgencyGateway
from broker.gateway.deadletters import DeadLetter
from broker.gateway.handled import Handling
from broker.gateway.receive import RETRIABLE_REFUSALS
from broker.gateway.store import AgencyStore
from broker.kafka.transport import Record
from broker.settings import Settings
from broker.transfer.desk import TransferDesk
from broker.trust.provision import DataPaths
from schemas.audit import AuditAct, Operation, Outcome


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dl = sub.add_parser("deadletter", help="refused records an agency can process again")
    dl.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = dl.add_subparsers(dest="deadletter_command", required=True)
    listing = cmds.add_parser("list", help="the records an agency keeps for a retry")
    listing.add_argument(
        "--as", dest="agency", required=True, metavar="AGENCY_ID", help="the agency that refused"
    )
    listing.add_argument("--all", action="store_true", help="also those settled by a retry")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler=cmd_list)
    retry = cmds.add_parser("retry", help="process kept records again, now the cause is fixed")
    retry.add_argument(
        "--as", dest="agency", required=True, metavar="AGENCY_ID", help="the agency that refused"
    )
    retry.add_argument(
        "--user", required=True, metavar="USER_ID", help="the person asking, for the audit trail"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "ids",
        nargs="*",
        type=whole_number(1),
        default=[],
        metavar="ID",
        help="dead letter ids, whole numbers (`mappa deadletter list`)",
    )
    which.add_argument("--all", action="store_true", help="every open one")
    retry.add_argument(
        "--agreement",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="agreement document the agency runs under (repeat per area; default: each "
        "area's default agreement, as `mappa serve` has it)",
    )
    retry.add_argument("--json", action="store_true", help=JSON_HELP)
    retry.set_defaults(handler=cmd_retry)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.with_flags(data_dir=args.data_dir)


def _describe(d: DeadLetter) -> dict[str, object]:
    return {
        "id": d.id,
        "record": f"{d.topic}/{d.partition}@{d.offset}",
        "reason_code": d.reason_code,
        "refused_at": d.refused_at,
        "retried_at": d.retried_at,
        "outcome": d.outcome or "open",
    }


def cmd_list(args: argparse.Namespace) -> int:
    paths = DataPaths(_settings(args).data_dir)
    path = paths.agency_store(args.agency)
    if not path.exists():
        raise SchemaError(f"no store for {args.agency} in {paths.root}", code="deadletter.no-store")
    store = AgencyStore(path)
    try:
        kept = store.deadletters.all() if args.all else store.deadletters.pending()
    finally:
        store.close()
    rows = [_describe(d) for d in kept]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"{args.agency} keeps no {'' if args.all else 'open '}dead letters")
        return 0
    columns = ("id", "reason_code", "refused_at", "outcome", "record")
    print_table(columns, ([r[c] for c in columns] for r in rows))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with offline_gateway(_settings(args), args.agency, args.agreement) as (gateway, deployment):
        # The transfer topic's rules, as the running gateway has them.
        TransferDesk(gateway, agreements=deployment.agreements)
        outcomes = _retry(gateway, args)
    if args.json:
        print_json(outcomes)
    else:
        for o in outcomes:
            print(f"dead letter {o['id']}: {o['outcome']}")
    # Refused again: the retry did what was asked, but not what was wanted.
    delivered = all(o["outcome"] == "delivered" for o in outcomes)
    return exits.OK if delivered else exits.REFUSED


def _retry(gateway: AgencyGateway, args: argparse.Namespace) -> list[dict[str, object]]:
    ctx = gateway.ctx
    kept = ctx.store.deadletters
    chosen: list[DeadLetter] = kept.pending() if args.all else []
    for i in args.ids:
        found = kept.get(i)
        if found is None:
            raise ConfigurationError(f"{args.agency} keeps no dead letter {i}")
        if found.outcome is not None:
            raise ConfigurationError(f"dead letter {i} was settled already ({found.outcome})")
        chosen.append(found)
    outcomes = []
    with progress("retrying dead letters") as advance:
        for done, d in enumerate(chosen):
            advance(done, len(chosen))
            outcomes.append(_retry_one(gateway, args, d))
    return outcomes


def _retry_one(
    gateway: AgencyGateway, args: argparse.Namespace, d: DeadLetter
) -> dict[str, object]:
    """Run one kept record through the receiving path again, audited; its outcome."""
    ctx = gateway.ctx
    kept = ctx.store.deadletters
    record = Record(d.topic, d.partition, d.offset, d.key, d.value, (), d.timestamp_ms)
    with ctx.store.transaction():
        handled = gateway.receiver.handle(record)
        # A duplicate without a reason code: taken already (by an earlier retry).
        delivered = handled.handling is Handling.DELIVERED or (
            handled.handling is Handling.DUPLICATE and handled.reason_code is None
        )
        outcome = "delivered" if delivered else f"refused:{handled.reason_code}"
        # Refused again: still open if the new cause can pass too, else settled.
        if delivered or handled.reason_code not in RETRIABLE_REFUSALS:
            kept.settle(d.id, outcome, ctx.clock())
        ctx.audit.emit(
            AuditAct.COLLECTION if delivered else AuditAct.REFUSAL,
            Operation.RETRY,
            Outcome.OK if delivered else Outcome.REFUSED,
            user=args.user,
            recipient=ctx.agency_id,
            message_id=handled.message_id,
            reason_code=None if delivered else handled.reason_code,
            reason=f"dead letter {d.id} ({d.reason_code}) retried: {outcome}",
        )
    return {"id": d.id, "outcome": outcome}
