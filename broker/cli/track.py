"""`mappa track MESSAGE_ID [--as AGENCY]`: how a message the agency sent stands at each
recipient (queued, sent, delivered, refused, undeliverable), from the agency's own
store in the data directory. No broker is needed, and a running `mappa serve` may hold
the same store (it is read beside it). The same answer as the API's
``GET /v1/agencies/{id}/messages/{message_id}/deliveries`` (``--json`` prints its body).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from broker.api.auth import NotFound
from broker.api.models import Deliveries
from broker.api.operations import deliveries
from broker.errors import ConfigurationError
from broker.gateway.store import AgencyStore
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory

# What an empty cell shows (a due time once settled, a reason when none was given).
NONE = "-"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    track = sub.add_parser("track", help="how a message an agency sent stands at each recipient")
    track.add_argument("message_id", help="the message id its submission returned")
    track.add_argument(
        "--as",
        dest="agency",
        metavar="AGENCY_ID",
        help="the agency that sent it (default: whichever agency of the data directory did)",
    )
    track.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    track.add_argument("--json", action="store_true", help="the API's JSON, not a table")
    track.set_defaults(handler=cmd_track)


def cmd_track(args: argparse.Namespace) -> int:
    """Print the message's deliveries; returns 0. Raises ``ConfigurationError`` when the
    data directory holds no store for the agency, and ``NotFound`` (``api.not-found``)
    when the agency (without ``--as``: any agency here) sent no such message (``mappa``
    prints either in one line)."""
    paths = DataPaths(Settings.with_flags(data_dir=args.data_dir).data_dir)
    if args.agency is None:
        found = _anyone(paths, args.message_id)
    else:
        found = _of(paths, args.agency, args.message_id)
    print(found.model_dump_json(indent=2) if args.json else table(found))
    return 0


def _of(paths: DataPaths, agency: str, message_id: str) -> Deliveries:
    path = paths.agency_store(agency)
    if not path.is_file():
        raise ConfigurationError(f"no store for agency {agency} at {path}")
    store = AgencyStore(path)
    try:
        return deliveries(store, agency, message_id)
    finally:
        store.close()


def _anyone(paths: DataPaths, message_id: str) -> Deliveries:
    """The deliveries of whichever agency with a store here sent ``message_id``."""
    for entry in load_directory(paths).agencies():
        if paths.agency_store(entry.agency_id).is_file():
            with contextlib.suppress(NotFound):
                return _of(paths, entry.agency_id, message_id)
    raise NotFound(f"no agency in {paths.root} has sent a message {message_id}")


def table(found: Deliveries) -> str:
    """One line per recipient, in aligned columns: recipient, state, attempts, queued,
    updated and due times, reason code."""
    rows = [
        (
            d.recipient,
            d.state,
            f"attempts {d.attempts}",
            f"queued {d.queued_at}",
            f"updated {d.updated_at}",
            f"due {d.due_at or NONE}",
            d.reason_code or NONE,
        )
        for d in found.recipients
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
