"""`mappa api token issue|rotate|revoke|list` and `mappa api openapi`.

A token is printed once, on standard output alone (so `TOKEN=$(mappa api token issue
--agency X)` works); only its SHA-256 is kept, in the data directory. Every token
expires (`--expires`: a lifetime such as `90d`, `12h`, or a date); `rotate` issues the
successor and lets the old one run on for `--grace` at most. Who issued, rotated and
revoked each credential (the operating-system account, as `mappa users` records it) is
kept with it and shown by `list`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.api.app import openapi_json
from broker.api.backend import ApiBackend
from broker.api.compose import application
from broker.api.credentials import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    CredentialInfo,
    CredentialKind,
    CredentialStore,
    IssuedCredential,
    credentials_path,
)
from broker.cli.arguments import calendar_date
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.cli.users import actor
from broker.errors import ConfigurationError
from broker.gateway.agency import utc_now
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = sub.add_parser("api", help="HTTP API: credentials and the OpenAPI document")
    api.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = api.add_subparsers(dest="api_command", required=True)

    token = cmds.add_parser("token", help="issue, revoke or list API credentials")
    tokens = token.add_subparsers(dest="token_command", required=True)
    issue = tokens.add_parser("issue", help="a new bearer token, printed once")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--agency", metavar="AGENCY_ID", help="for this agency's system")
    who.add_argument("--officer", metavar="NAME", help="for this information-governance officer")
    issue.add_argument("--label", metavar="TEXT", help="a note: which system or person holds it")
    issue.add_argument(
        "--expires",
        type=lifetime,
        default=DEFAULT_LIFETIME,
        metavar="DURATION|YYYY-MM-DD",
        help=EXPIRES_HELP,
    )
    issue.add_argument("--json", action="store_true", help=JSON_HELP)
    issue.set_defaults(handler=cmd_issue)
    rotate = tokens.add_parser("rotate", help="a successor token, printed once")
    rotate.add_argument("credential_id", help=CREDENTIAL_HELP)
    rotate.add_argument(
        "--expires",
        type=lifetime,
        default=DEFAULT_LIFETIME,
        metavar="DURATION|YYYY-MM-DD",
        help=EXPIRES_HELP,
    )
    rotate.add_argument(
        "--grace",
        type=lifetime_or_none,
        default=timedelta(0),
        metavar="DURATION",
        help="how long the old token keeps working: 0, or a lifetime such as 30m, 1h, 2d "
        "(default 0: it stops now)",
    )
    rotate.add_argument("--json", action="store_true", help=JSON_HELP)
    rotate.set_defaults(handler=cmd_rotate)
    revoke = tokens.add_parser("revoke", help="refuse a credential from now on")
    revoke.add_argument("credential_id", help=CREDENTIAL_HELP)
    revoke.set_defaults(handler=cmd_revoke)
    listing = tokens.add_parser("list", help="every credential (never a token)")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler=cmd_list)

    openapi = cmds.add_parser("openapi", help="print the OpenAPI document (docs/openapi.json)")
    openapi.set_defaults(handler=cmd_openapi)


CREDENTIAL_HELP = "credential id (`mappa api token list`)"
EXPIRES_HELP = (
    f"a lifetime (90d, 12h, 30m) or a date (YYYY-MM-DD, at 00:00 UTC); at most "
    f"{MAX_LIFETIME.days} days; default {DEFAULT_LIFETIME.days}d"
)
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def lifetime(text: str) -> timedelta | datetime:
    """A token's lifetime from ``90d``, ``12h``, ``30m``, or the moment a date starts
    (UTC) for ``until``. Raises ``argparse.ArgumentTypeError`` (one line) for anything
    else."""
    found = _DURATION.match(text)
    if found:
        return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        day = calendar_date(text)
    except argparse.ArgumentTypeError:
        # Not quoting what was given: argparse's line never echoes a value.
        raise argparse.ArgumentTypeError(
            "expected a lifetime (90d, 12h, 30m) or a date (YYYY-MM-DD)"
        ) from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lifetime_or_none(text: str) -> timedelta | datetime:
    """``0`` (none), or a lifetime as ``lifetime`` reads it."""
    return timedelta(0) if text == "0" else lifetime(text)


def until(given: timedelta | datetime, now: datetime) -> timedelta:
    """A lifetime as given, or the time from ``now`` to a moment given (which the
    store refuses unless it is in the future)."""
    return given if isinstance(given, timedelta) else given - now


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def _store(paths: DataPaths) -> CredentialStore:
    if not paths.directory.exists():
        raise ConfigurationError(f"no deployment at {paths.root}: run `mappa keys init` first")
    return CredentialStore(credentials_path(paths.root))


def cmd_issue(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if args.agency:
        load_directory(paths).agency(args.agency)  # refuses an agency not in the directory
        kind, name = CredentialKind.AGENCY, args.agency
    else:
        kind, name = CredentialKind.OFFICER, args.officer
    store = _store(paths)
    now = utc_now()
    try:
        issued = store.issue(
            kind, name, now=now, lifetime=until(args.expires, now), label=args.label,
            actor=actor(),
        )  # fmt: skip
    finally:
        store.close()
    _print_issued(issued, json_out=args.json, act="issued")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    store = _store(_paths(args))
    now = utc_now()
    try:
        issued = store.rotate(
            args.credential_id,
            now=now,
            lifetime=until(args.expires, now),
            grace=until(args.grace, now),
            actor=actor(),
        )
    finally:
        store.close()
    _print_issued(issued, json_out=args.json, act=f"rotated {args.credential_id} to")
    return 0


def _print_issued(issued: IssuedCredential, *, json_out: bool, act: str) -> None:
    info = issued.info
    if json_out:
        print(json.dumps(_listed(info) | {"token": issued.token}))
        return
    print(issued.token)
    print(
        f"{act} {info.kind.value} credential {info.credential_id} for {info.principal}, "
        f"expiring {info.expires_at}; the token is shown once",
        file=sys.stderr,
    )


def cmd_revoke(args: argparse.Namespace) -> int:
    store = _store(_paths(args))
    try:
        revoked = store.revoke(args.credential_id, now=utc_now(), actor=actor())
    finally:
        store.close()
    if not revoked:
        print(f"mappa api: no active credential {args.credential_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.credential_id}")
    return 0


def _listed(r: CredentialInfo) -> dict[str, str | None]:
    return {
        "credential_id": r.credential_id,
        "kind": r.kind.value,
        "principal": r.principal,
        "label": r.label,
        "state": r.state(utc_now()),
        "issued_at": r.issued_at,
        "issued_by": r.issued_by,
        "expires_at": r.expires_at,
        "revoked_at": r.revoked_at,
        "revoked_by": r.revoked_by,
        "replaces": r.replaces,
    }


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(_paths(args))
    try:
        rows = store.list()
    finally:
        store.close()
    if args.json:
        print_json([_listed(r) for r in rows])
        return 0
    now = utc_now()
    table = []
    for r in rows:
        state = r.state(now)
        when = r.revoked_at if state == "revoked" else r.expires_at
        table.append((r.credential_id, r.kind.value, r.principal, state, when, r.label))
    print_table(("credential", "kind", "principal", "state", "since/until", "label"), table)
    return 0


@asynccontextmanager
async def documentation_only() -> AsyncIterator[ApiBackend]:
    """A backend that never starts: for an app built only to print its OpenAPI document.
    Raises ``ConfigurationError`` if anything tries to run it."""
    raise ConfigurationError("this app instance only documents the API")
    yield  # pragma: no cover - makes this a generator


def cmd_openapi(_: argparse.Namespace) -> int:
    sys.stdout.write(openapi_json(application(documentation_only)))
    return 0
