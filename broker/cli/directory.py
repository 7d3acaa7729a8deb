"""`mappa directory sign|refresh|verify|show`: the signed trust directory."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from broker.cli.arguments import whole_number
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.errors import ConfigurationError, invalid
from broker.files.strict import read_json
from broker.settings import Settings
from broker.trust import admin as trust_admin
from broker.trust.admin import governance_key
from broker.trust.directory import sign_directory
from broker.trust.keystore import Keystore, passphrase_from_env
from broker.trust.provision import (
    DIRECTORY_VALIDITY,
    DataPaths,
    load_directory,
    load_governance_public,
    verify_against_accepted,
    write_directory,
)
from schemas.common import parse_timestamp
from schemas.directory import DirectoryDocument


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("directory", help="the signed trust directory: sign, refresh, verify, show")
    d.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = d.add_subparsers(dest="directory_command", required=True)
    sign = cmds.add_parser("sign", help="sign a pending directory version and put it in force")
    sign.add_argument(
        "document",
        type=Path,
        nargs="?",
        help="directory JSON file (default: directory.pending.json)",
    )
    sign.set_defaults(handler=cmd_sign)
    refresh = cmds.add_parser(
        "refresh", help="the same directory as the next version, valid for longer"
    )
    refresh.add_argument(
        "--days",
        type=whole_number(1, 3650),
        default=DIRECTORY_VALIDITY.days,
        metavar="DAYS",
        help="how long the new version is valid, in whole days (1 to 3650; default "
        f"{DIRECTORY_VALIDITY.days})",
    )
    refresh.set_defaults(handler=cmd_refresh)
    verify = cmds.add_parser("verify", help="check a signed directory against the trust anchor")
    verify.add_argument(
        "file", type=Path, nargs="?", help="signed directory JSON file (default: the one in force)"
    )
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    verify.set_defaults(handler=cmd_verify)
    show = cmds.add_parser("show", help="agencies, roles, areas and key counts")
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(handler=cmd_show)


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def cmd_sign(args: argparse.Namespace) -> int:
    paths = _paths(args)
    source = args.document or paths.pending_directory
    try:
        document = DirectoryDocument.model_validate_json(read_json(source))
    except ValidationError as exc:
        raise invalid(exc, f"directory {source}") from None
    signer = governance_key(Keystore(paths.keys, passphrase_from_env()))
    if signer is None:
        raise ConfigurationError(f"no governance key in {paths.keys}: sign where it is held")
    current = load_directory(paths)
    if document.version <= current.version:
        raise ConfigurationError(
            f"version {document.version} is not newer than {current.version} in force"
        )
    if parse_timestamp(document.valid_until) <= datetime.now(UTC):
        raise ConfigurationError(
            f"version {document.version} expired at {document.valid_until}: nobody would "
            "trust it; `mappa directory refresh` issues one valid from now"
        )
    write_directory(paths, sign_directory(document, signer))
    load_directory(paths)
    paths.pending_directory.unlink(missing_ok=True)
    print(f"directory version {document.version} signed and in force")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    paths = _paths(args)
    keystore = Keystore(paths.keys, passphrase_from_env())
    # Read without the expiry check: renewing an expired directory is the point.
    document = trust_admin.renew(
        load_directory(paths), now=datetime.now(UTC), validity=timedelta(days=args.days)
    )
    print(trust_admin.publish(paths, keystore, document))
    print(f"valid until {document.valid_until}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if args.file is None:
        directory = load_directory(paths)
    else:
        directory = verify_against_accepted(paths, read_json(args.file))
    directory.check_current(datetime.now(UTC))
    key = load_governance_public(paths)
    if args.json:
        print_json({
            "valid": True,
            "version": directory.version,
            "agencies": len(directory.document.agencies),
            "signed_by": key.key_id,
            "valid_until": str(directory.document.valid_until),
        })  # fmt: skip
        return 0
    print(
        f"valid: directory version {directory.version}, {len(directory.document.agencies)} "
        f"agencies, signed by governance key {key.key_id}, until "
        f"{directory.document.valid_until}"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    directory = load_directory(_paths(args))
    doc = directory.document
    if args.json:
        print_json(doc.model_dump(mode="json"))
        return 0
    print(f"directory version {doc.version}, issued {doc.issued_at}, valid until {doc.valid_until}")
    print_table(
        ("agency", "role", "status", "areas", "keys", "suites", "name"),
        (
            (a.agency_id, a.role.value, a.status.value, list(a.areas), len(a.keys),
             list(a.suites), a.name)
            for a in doc.agencies
        ),
    )  # fmt: skip
    return 0
