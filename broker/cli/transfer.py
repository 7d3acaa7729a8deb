"""`mappa transfer request|accept|refuse|cancel|complete|status|overdue`: area transfers.

Steps are sent as the agency named by ``--as`` (its keys sealed under
MAPPA_KEY_PASSPHRASE) through a running Kafka cluster (``--bootstrap`` or
MAPPA_KAFKA_BOOTSTRAP): the embedded broker keeps nothing between runs, so a step sent
through it would reach nobody. Before acting, the agency's desk reads the transfer
topic up to date. ``status`` and ``overdue`` read the agencies' own case registries and
need no broker. Each area's agreement is the default template instantiated for the
agencies the directory lists there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from broker.agreements import default_agreements
from broker.cli.arguments import calendar_date
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.cli.runner import run_interruptible
from broker.deployment import Deployment
from broker.errors import ConfigurationError, SchemaError, TransferRefused
from broker.gateway.cases import CaseRegistry
from broker.gateway.store import AgencyStore
from broker.settings import Settings
from broker.transfer.deadlines import Overdue, overdue
from broker.transfer.desk import TransferDesk
from broker.trust.keystore import passphrase_from_env
from broker.trust.provision import DataPaths, load_directory
from schemas.common import Role
from schemas.transfer import TransferRecord, TransferState

# Reading the transfer topic up to date: stop after this many empty polls in a row.
QUIET_POLLS = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser("transfer", help="move a case between MAPPA areas")
    tr.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    tr.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap (MAPPA_KAFKA_BOOTSTRAP)"
    )
    cmds = tr.add_subparsers(dest="transfer_command", required=True)

    def step(name: str, text: str, *, reason_required: bool = True) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=text)
        p.add_argument(
            "--as", dest="agency", required=True, metavar="AGENCY_ID", help="acting agency id"
        )
        p.add_argument("--user", required=True, metavar="USER_ID", help="the person acting")
        p.add_argument(
            "--reason",
            required=reason_required,
            help="why, for the record" + ("" if reason_required else " (optional)"),
        )
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        return p

    req = step("request", "ask another area to take a case over")
    req.add_argument(
        "--pnc", required=True, metavar="PNC_ID", help="the offender's PNC id, e.g. 2011/0456789K"
    )
    req.add_argument(
        "--to",
        dest="to_area",
        required=True,
        metavar="AREA",
        help="receiving area code (`mappa areas`)",
    )
    req.add_argument(
        "--move-date",
        type=calendar_date,
        required=True,
        metavar="YYYY-MM-DD",
        help="the day the offender moves",
    )
    req.add_argument(
        "--open-action",
        action="append",
        default=[],
        dest="open_actions",
        metavar="TEXT",
        help="an action still open, for the receiving area (repeat)",
    )
    req.add_argument(
        "--lead",
        metavar="AGENCY_ID",
        help="sending RA lead agency (default: the acting agency)",
    )
    req.add_argument("--rso", action="store_true", help="registered sexual offender")
    req.set_defaults(handler=cmd_step)
    for name, text in (
        ("accept", "receiving co-ordinator: accept a requested transfer"),
        ("refuse", "receiving co-ordinator: refuse a requested transfer"),
        ("cancel", "withdraw a transfer that is requested or accepted"),
    ):
        p = step(name, text, reason_required=name != "accept")
        p.add_argument("--transfer", required=True, metavar="TRANSFER_ID", help="transfer id")
        p.set_defaults(handler=cmd_step)
    done = step(
        "complete", "receiving co-ordinator: the case has been taken over", reason_required=False
    )
    done.add_argument("--transfer", required=True, metavar="TRANSFER_ID", help="transfer id")
    done.add_argument(
        "--address-notified-on",
        type=calendar_date,
        metavar="YYYY-MM-DD",
        help="the day the police were told the new address (registered sexual offenders)",
    )
    done.add_argument(
        "--team",
        action="append",
        default=[],
        metavar="AGENCY_ID",
        help="receiving case team member (repeat)",
    )
    done.set_defaults(handler=cmd_step)

    st = cmds.add_parser("status", help="transfers an agency knows of, with their deadlines")
    st.add_argument(
        "--as", dest="agency", required=True, metavar="AGENCY_ID", help="whose registry to read"
    )
    st.add_argument("--transfer", metavar="TRANSFER_ID", help="only this transfer")
    st.add_argument("--json", action="store_true", help=JSON_HELP)
    st.set_defaults(handler=cmd_status)

    od = cmds.add_parser("overdue", help="overdue transfers, as each co-ordinator sees them")
    od.add_argument(
        "--as", dest="agency", metavar="AGENCY_ID", help="one agency (default: every co-ordinator)"
    )
    od.add_argument(
        "--today", type=calendar_date, metavar="YYYY-MM-DD", help="report date (default: today)"
    )
    od.add_argument("--json", action="store_true", help=JSON_HELP)
    od.set_defaults(handler=cmd_overdue)

    demo = cmds.add_parser("demo", help="move one offender between two areas, on a fresh directory")
    demo.add_argument("--json", action="store_true", help=JSON_HELP)
    demo.set_defaults(handler=cmd_demo)


# -- sending steps ----------------------------------------------------------------------------
def cmd_step(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(data_dir=args.data_dir, kafka_bootstrap=args.bootstrap)
    if not settings.kafka_bootstrap:
        raise ConfigurationError(
            "transfer steps go through a running Kafka cluster: give --bootstrap or set "
            "MAPPA_KAFKA_BOOTSTRAP"
        )
    # Plain asyncio.run: a step is short, its cleanup is in ``finally``, and it must also
    # run off the main thread (the API and tests call it there; signal handlers cannot).
    record = asyncio.run(_send_step(settings, args))
    if args.json:
        print_json(record.model_dump(mode="json"))
    else:
        print(_describe(record))
    return 0


# The state each follow-up step leads to: a person who repeats a step that has already
# taken effect is told so, rather than that the step is impossible.
_LEADS_TO = {
    "accept": TransferState.ACCEPTED,
    "refuse": TransferState.REFUSED,
    "cancel": TransferState.CANCELLED,
    "complete": TransferState.COMPLETED,
}


async def _act_once(desk: TransferDesk, args: argparse.Namespace) -> TransferRecord:
    """``_act``; a step the transfer has already taken is refused as
    ``transfer.already-done``, naming who took it (exit 1: nothing was sent)."""
    try:
        return await _act(desk, args)
    except TransferRefused as exc:
        current = desk.registry.get(getattr(args, "transfer", None) or "")
        if (
            exc.code != "transfer.invalid-transition"
            or current is None
            or current.state is not _LEADS_TO.get(args.transfer_command)
        ):
            raise
        raise TransferRefused(
            f"transfer {current.transfer_id} is already {current.state.value} (last step by "
            f"{current.last_step_by}): nothing was sent",
            code="transfer.already-done",
        ) from None


def _act(desk: TransferDesk, args: argparse.Namespace) -> Awaitable[TransferRecord]:
    command = args.transfer_command
    if command == "request":
        return desk.request(
            pnc_id=args.pnc,
            to_area=args.to_area,
            move_date=args.move_date,
            reason=args.reason,
            user=args.user,
            open_actions=args.open_actions,
            lead_agency=args.lead,
            registered_sex_offender=args.rso,
        )
    if command == "complete":
        return desk.complete(
            args.transfer,
            user=args.user,
            address_notified_on=args.address_notified_on,
            case_team=args.team,
            **({"reason": args.reason} if args.reason else {}),
        )
    acts: dict[str, Callable[..., Awaitable[TransferRecord]]] = {
        "accept": desk.accept,
        "refuse": desk.refuse,
        "cancel": desk.cancel,
    }
    return acts[command](args.transfer, user=args.user, reason=args.reason or "accepted")


async def _send_step(settings: Settings, args: argparse.Namespace) -> TransferRecord:
    agreements = default_agreements(load_directory(DataPaths(settings.data_dir)))
    deployment = Deployment(
        settings=settings, passphrase=passphrase_from_env(), agreements=agreements
    )
    async with deployment.running([args.agency], ledger=False) as running:
        gateway = running.gateways[args.agency]
        # Read the transfer topic up to date before acting (the gateway's start sent
        # anything an earlier run left in the outbox).
        quiet = 0
        while quiet < QUIET_POLLS:
            quiet = 0 if await gateway.poll_once(timeout_ms=300) else quiet + 1
        return await _act_once(running.desks[args.agency], args)


# -- reading the registries -------------------------------------------------------------------
def _registry_records(paths: DataPaths, agency: str) -> list[TransferRecord]:
    path = paths.agency_store(agency)
    if not path.exists():
        raise SchemaError(f"no store for {agency} in {paths.root}", code="transfer.no-store")
    store = AgencyStore(path)
    try:
        return CaseRegistry(store).records()
    finally:
        store.close()


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def _describe(record: TransferRecord) -> str:
    return (
        f"transfer {record.transfer_id}: {record.from_area} -> {record.to_area}, "
        f"{record.state.value} (lead {record.lead_agency}, move {record.move_date}, "
        f"last step by {record.last_step_by})"
    )


def cmd_status(args: argparse.Namespace) -> int:
    records = _registry_records(_paths(args), args.agency)
    if args.transfer:
        records = [r for r in records if r.transfer_id == args.transfer]
        if not records:
            raise SchemaError(
                f"{args.agency} knows of no transfer {args.transfer}", code="transfer.unknown"
            )
    if args.json:
        print_json([r.model_dump(mode="json") for r in records])
        return 0
    if not records:
        print(f"{args.agency} knows of no transfers")
        return 0
    print_table(
        ("transfer", "from", "to", "state", "lead", "move date", "last step by"),
        (
            (r.transfer_id, r.from_area, r.to_area, r.state.value, r.lead_agency,
             r.move_date, r.last_step_by)
            for r in records
        ),
    )  # fmt: skip
    return 0


def _overdue_json(item: Overdue) -> dict[str, Any]:
    return {
        "transfer_id": item.record.transfer_id,
        "from_area": item.record.from_area,
        "to_area": item.record.to_area,
        "state": item.record.state.value,
        "deadline": item.deadline.kind,
        "due": item.deadline.due.isoformat(),
        "days_over": item.days_over,
    }


def cmd_overdue(args: argparse.Namespace) -> int:
    paths = _paths(args)
    today = args.today or date.today()  # noqa: DTZ011 - a calendar date in England and Wales
    if args.agency:
        agencies = [args.agency]
    else:
        directory = load_directory(paths)
        agencies = [
            a.agency_id
            for a in directory.agencies(roles=(Role.COORDINATOR,))
            if paths.agency_store(a.agency_id).exists()
        ]
    report = {a: overdue(_registry_records(paths, a), today) for a in agencies}
    if args.json:
        print_json({a: [_overdue_json(o) for o in items] for a, items in report.items()})
        return 0
    rows = [(a, *_overdue_json(o).values()) for a, items in report.items() for o in items]
    if rows:
        print_table(
            ("agency", "transfer", "from", "to", "state", "deadline", "due", "days over"), rows
        )
    for agency, items in report.items():
        print(f"{agency}: {len(items)} overdue on {today.isoformat()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from broker.cli.demo.transfer import render, run_transfer_demo

    bootstrap = args.bootstrap or os.environ.get("MAPPA_KAFKA_BOOTSTRAP") or None
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-tr-")))
        elif data_dir.exists() and any(data_dir.iterdir()):
            print(f"mappa transfer demo: {data_dir} is not empty; it needs a fresh data directory")
            return 2
        settings = Settings(data_dir=data_dir, kafka_bootstrap=bootstrap)
        summary = run_interruptible(run_transfer_demo(settings))
    if args.json:
        print_json(summary)
    else:
        print(render(summary))
    return 0
