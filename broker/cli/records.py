"""`mappa records correct|erase-expired`: acts on personal data after publication, audited
as DPA 2018 s62 alteration and erasure (``broker.gateway.lifecycle``).

``correct`` publishes a corrected record (in the agency system's own format, as the
API takes it) that supersedes a message the agency sent. ``erase-expired`` erases what
the agency's inbox has held past the agreement's retention period (all of it, or the
messages named), or with ``--dry-run`` lists it.

Both act on the agency's own store with its keys (unsealed with MAPPA_KEY_PASSPHRASE),
as `mappa deadletter retry` does, and need no broker: what they write (the corrected
envelopes, the audit events) waits in the store's outbox, and the agency's running
`mappa serve` sends it at its next relay (within a second), or the next one started.
Unlike `mappa transfer`, no second gateway reads beside the server's. The audit names
the person given by ``--user`` and the operating-system account that ran the command
(``<user> via os:<account>@<host>``), as the API names ``<user> via service:<id>``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agency_adapters.registry import adapter_for
from broker.api.auth import MAX_ON_BEHALF_CHARS
from broker.api.backend import ServedAgency
from broker.api.limits import MAX_BODY_BYTES
from broker.api.records import correct_record
from broker.cli.offline import offline_gateway
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.cli.users import actor
from broker.files.strict import read_json
from broker.gateway.audit import MAX_REASON_CHARS
from broker.gateway.sealing import MAX_PURPOSE_CHARS
from broker.gateway.store import InboxItem
from broker.identity.users import MAX_ACTOR_CHARS
from broker.settings import Settings
from schemas.common import UUID_PATTERN

# A record file is one request body's worth, as the API bounds a body (1 MiB).
MAX_RECORD_BYTES = MAX_BODY_BYTES
# A person's name as the API takes it in X-Mappa-On-Behalf-Of (a username's length).
MAX_USER_CHARS = MAX_ON_BEHALF_CHARS
_UUID = re.compile(UUID_PATTERN)
# Where these commands act, for their help (module docstring).
WHERE = (
    "Acts on the agency's own store with its keys (MAPPA_KEY_PASSPHRASE), not through a "
    "running `mappa serve` and with no broker: what it writes waits in the store's outbox, "
    "and the agency's `mappa serve` sends it at its next relay."
)


def text(limit: int) -> Callable[[str], str]:
    """An argparse ``type``: 1 to ``limit`` printable characters."""

    def parse(value: str) -> str:
        if not 1 <= len(value) <= limit or not value.isprintable():
            raise argparse.ArgumentTypeError(f"expected 1 to {limit} printable characters")
        return value

    parse.__name__ = "text"
    return parse


def message_id(value: str) -> str:
    """An argparse ``type``: a message id, a UUID in lower-case hex."""
    if _UUID.fullmatch(value) is None:
        raise argparse.ArgumentTypeError(
            "expected a message id: a UUID such as 0b6a3c1e-5f0d-4d7e-9a51-3c2f8e1d9b70"
        )
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = sub.add_parser(
        "records",
        help="correct a message sent, erase what is held past retention (s62 audited)",
        description=WHERE,
    )
    rec.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = rec.add_subparsers(dest="records_command", required=True)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=summary, description=f"{description} {WHERE}")
        p.add_argument(
            "--as",
            dest="agency",
            metavar="AGENCY",
            required=True,
            help="acting agency id, as in the trust directory (police.staffordshire)",
        )
        p.add_argument(
            "--user",
            metavar="NAME",
            type=text(MAX_USER_CHARS),
            required=True,
            help="the person acting, for the audit trail (recorded as "
            "'<user> via os:<account>@<host>')",
        )
        p.add_argument(
            "--agreement",
            metavar="FILE",
            type=Path,
            action="append",
            default=[],
            help="agreement document (YAML or JSON) the agency runs under; repeat per area "
            "(default: each area's default agreement, as `mappa serve` has it)",
        )
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        return p

    fix = command(
        "correct",
        "publish a corrected record superseding a message this agency sent",
        "Queue a corrected record as a message that supersedes one this agency sent "
        "(audited as an alteration). Only the sending agency may correct a message, with a "
        "message of the same type about the same subject.",
    )
    fix.add_argument(
        "--message",
        dest="original",
        metavar="ID",
        type=message_id,
        required=True,
        help="the id of the message to correct (a UUID, as `submit` answered it)",
    )
    fix.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        required=True,
        help="JSON file: the corrected record in the agency system's own export format "
        "(as POST /v1/agencies/{id}/records takes it), at most 1 MiB",
    )
    fix.add_argument(
        "--purpose",
        metavar="TEXT",
        type=text(MAX_PURPOSE_CHARS),
        required=True,
        help=f"why it is shared (1-{MAX_PURPOSE_CHARS} characters; goes into the envelope header)",
    )
    fix.add_argument(
        "--reason",
        metavar="TEXT",
        type=text(MAX_REASON_CHARS),
        required=True,
        help=f"what was wrong and what changed (1-{MAX_REASON_CHARS} characters; recorded "
        "in the alteration audit event, never sent to recipients)",
    )
    fix.add_argument(
        "--adapter",
        metavar="KIND",
        help="the adapter kind that reads --record, where the agency's role has several "
        "(as `mappa serve --adapter`)",
    )
    fix.set_defaults(handler=cmd_correct)

    erase = command(
        "erase-expired",
        "erase what the inbox has held past the agreement's retention period",
        "Erase from the agency's inbox every message received before the agreement's "
        "retention period (counted back from now), or only those named with --message "
        "(each must be held and past it, else nothing is erased); one erasure audit event "
        "each.",
    )
    erase.add_argument(
        "--message",
        dest="message_ids",
        metavar="ID",
        type=message_id,
        action="append",
        help="erase only this message (a UUID; repeat for several)",
    )
    erase.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be erased, and erase nothing",
    )
    erase.set_defaults(handler=cmd_erase)


@contextmanager
def _served(args: argparse.Namespace) -> Iterator[ServedAgency]:
    """The acting agency's gateway over its own store (never started: no broker) with
    its adapter; every store closes on exit."""
    settings = Settings.with_flags(data_dir=args.data_dir)
    with offline_gateway(settings, args.agency, args.agreement) as (gateway, _):
        yield ServedAgency(gateway, adapter_for(gateway, getattr(args, "adapter", None)))


def _audit_name(user: str) -> str:
    return f"{user} via {actor()}"[:MAX_ACTOR_CHARS]


def cmd_correct(args: argparse.Namespace) -> int:
    record = json.loads(read_json(args.record, max_bytes=MAX_RECORD_BYTES))
    with _served(args) as served:
        result = correct_record(
            served,
            args.original,
            record,
            purpose=args.purpose,
            user=_audit_name(args.user),
            reason=args.reason,
        )
    answer: dict[str, Any] = {
        "message_id": result.message_id,
        "supersedes": args.original,
        "message_type": result.message_type,
        "subject_ref": result.subject_ref,
        "disclosures": [{"agency": a, "view": v.value} for a, v in result.disclosures],
        "topics": list(result.topics),
        "queued": True,
    }
    if args.json:
        print_json(answer)
        return 0
    print(
        f"correction {result.message_id} of {args.original} queued ({result.message_type}, "
        f"to {len(result.disclosures)} recipients); `mappa serve` sends it"
    )
    print_table(("recipient", "view"), ((a, v.value) for a, v in result.disclosures))
    return 0


def _row(item: InboxItem) -> dict[str, str]:
    return {
        "message_id": item.message_id,
        "sender": item.sender,
        "message_type": item.message_type,
        "subject_ref": item.subject_ref,
        "view": item.view,
        "received_at": item.received_at,
    }


def cmd_erase(args: argparse.Namespace) -> int:
    with _served(args) as served:
        lifecycle = served.gateway.lifecycle
        ctx = served.gateway.ctx
        now = ctx.clock()
        if args.dry_run:
            items = lifecycle.expired(now=now, message_ids=args.message_ids)
        else:
            items = lifecycle.erase_expired(
                now=now, user=_audit_name(args.user), message_ids=args.message_ids
            )
        retention = ctx.policy.agreement.retention.years
        cutoff = lifecycle.cutoff(now)
    rows = [_row(i) for i in items]
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "retention_years": retention,
                "held_before": cutoff,
                "erased": rows,
            }
        )
        return 0
    verb = "would erase" if args.dry_run else "erased"
    print(
        f"{args.agency} {verb} {len(rows)} message(s) received before {cutoff} "
        f"(retention {retention} years)"
    )
    columns = ("message_id", "sender", "message_type", "received_at")
    print_table(columns, ([r[c] for c in columns] for r in rows))
    return 0
