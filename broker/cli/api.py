"""`mappa api token issue|revoke|list` and `mappa api openapi`.

A token is printed once, on standard output alone (so `TOKEN=$(mappa api token issue
--agency X)` works); only its SHA-256 is kept, in the data directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from broker.api.app import openapi_json
from broker.api.backend import ApiBackend
from broker.api.compose import application
from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.errors import ConfigurationError
from broker.gateway.agency import utc_now
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory
from schemas.common import format_timestamp


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = sub.add_parser("api", help="HTTP API: credentials and the OpenAPI document")
    api.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = api.add_subparsers(dest="api_command", required=True)

    token = cmds.add_parser("token", help="issue, revoke or list API credentials")
    tokens = token.add_subparsers(dest="token_command", required=True)
    issue = tokens.add_parser("issue", help="a new bearer token, printed once")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--agency", help="for this agency's system")
    who.add_argument("--officer", help="for this information-governance officer")
    issue.add_argument("--label", help="a note: which system or person holds it")
    issue.add_argument("--json", action="store_true")
    issue.set_defaults(handler=cmd_issue)
    revoke = tokens.add_parser("revoke", help="refuse a credential from now on")
    revoke.add_argument("credential_id")
    revoke.set_defaults(handler=cmd_revoke)
    listing = tokens.add_parser("list", help="every credential (never a token)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    openapi = cmds.add_parser("openapi", help="print the OpenAPI document (docs/openapi.json)")
    openapi.set_defaults(handler=cmd_openapi)


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
    try:
        issued = store.issue(kind, name, now=format_timestamp(utc_now()), label=args.label)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "credential_id": issued.info.credential_id,
                    "kind": kind.value,
                    "principal": name,
                    "token": issued.token,
                }
            )
        )
    else:
        print(issued.token)
        print(
            f"issued {kind.value} credential {issued.info.credential_id} for {name}; "
            "the token is shown once",
            file=sys.stderr,
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = _store(_paths(args))
    try:
        revoked = store.revoke(args.credential_id, now=format_timestamp(utc_now()))
    finally:
        store.close()
    if not revoked:
        print(f"mappa api: no active credential {args.credential_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.credential_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(_paths(args))
    try:
        rows = store.list()
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "credential_id": r.credential_id,
                        "kind": r.kind.value,
                        "principal": r.principal,
                        "label": r.label,
                        "issued_at": r.issued_at,
                        "revoked_at": r.revoked_at,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    for r in rows:
        status = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        print(f"{r.credential_id}  {r.kind.value:<8} {r.principal:<32} {status}  {r.label or ''}")
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
