"""`mappa keys init|rotate|revoke|prune|suites|show`: agency key pairs and the directory entries
that publish them. Private keys are sealed under MAPPA_KEY_PASSPHRASE (or the file named
by MAPPA_KEY_PASSPHRASE_FILE) and never printed."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from broker.cli.arguments import whole_number
from broker.cli.output import JSON_HELP, print_json, print_table
from broker.crypto.suites import SUITES
from broker.errors import ConfigurationError, invalid
from broker.files.strict import read_yaml
from broker.settings import Settings
from broker.trust import admin as trust_admin
from broker.trust.keystore import Keystore, passphrase_from_env
from broker.trust.provision import AgencySpec, DataPaths, load_directory, provision
from schemas.common import Role, parse_timestamp
from schemas.directory import KeyAlg


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def _keystore(paths: DataPaths) -> Keystore:
    return Keystore(paths.keys, passphrase_from_env())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser(
        "keys", help="agency key pairs: init, rotate, revoke, prune, suites, show"
    )
    keys.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = keys.add_subparsers(dest="keys_command", required=True)

    init = cmds.add_parser("init", help="governance, subject and agency keys; directory v1")
    init.add_argument(
        "--agencies",
        type=Path,
        required=True,
        metavar="FILE",
        help="YAML file listing the agencies (deploy/agencies.example.yaml shows the form)",
    )
    init.add_argument(
        "--suite",
        action="append",
        choices=sorted(SUITES),
        help="suite every agency may send in (repeat for several; default MAPPA_SUITE)",
    )
    init.set_defaults(handler=cmd_init)

    rot = cmds.add_parser("rotate", help="new key pairs for an agency; next directory version")
    rot.add_argument("--agency", required=True, metavar="AGENCY_ID", help="agency id")
    rot.add_argument(
        "--alg",
        action="append",
        choices=[a.value for a in KeyAlg],
        help="only this algorithm's key (repeat; default: every algorithm)",
    )
    # At most a year: past that an old key is not in overlap, it is still in use.
    rot.add_argument(
        "--overlap-minutes",
        type=whole_number(0, 525_600),
        default=60,
        metavar="MINUTES",
        help="how long old signing keys stay valid, in whole minutes (0 to 525600; default 60)",
    )
    rot.set_defaults(handler=cmd_rotate)

    rev = cmds.add_parser("revoke", help="refuse anything a key signs from a moment on")
    rev.add_argument("--agency", required=True, metavar="AGENCY_ID", help="agency id")
    rev.add_argument("--key", required=True, metavar="KEY_ID", help="key id (`mappa keys show`)")
    rev.add_argument("--reason", required=True, help="why, for the directory's record")
    rev.add_argument(
        "--at",
        metavar="YYYY-MM-DDTHH:MM:SS.sssZ",
        help="revocation time, RFC 3339 in UTC with milliseconds (default: now)",
    )
    rev.set_defaults(handler=cmd_revoke)

    prn = cmds.add_parser("prune", help="destroy a retained, no longer current private key")
    prn.add_argument("--agency", required=True, metavar="AGENCY_ID", help="agency id")
    prn.add_argument("--key", required=True, metavar="KEY_ID", help="key id (`mappa keys show`)")
    prn.set_defaults(handler=cmd_prune)

    sts = cmds.add_parser("suites", help="the suites an agency may send in; next version")
    sts.add_argument("--agency", required=True, metavar="AGENCY_ID", help="agency id")
    sts.add_argument(
        "--suite",
        action="append",
        required=True,
        choices=sorted(SUITES),
        help="a suite it may send in (repeat for several)",
    )
    sts.set_defaults(handler=cmd_suites)

    show = cmds.add_parser("show", help="every key in the directory, its status, held or not")
    show.add_argument("--agency", metavar="AGENCY_ID", help="only this agency's keys")
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(handler=cmd_show)


def load_agency_specs(path: Path) -> list[AgencySpec]:
    data = read_yaml(path)
    try:
        return [
            AgencySpec(a["agency_id"], a["name"], Role(a["role"]), tuple(a["areas"]))
            for a in data["agencies"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        # A missing field is named; a wrong value is not quoted back.
        missing = f" (no {exc})" if isinstance(exc, KeyError) else ""
        raise ConfigurationError(
            f"{path}: expected `agencies:` with agency_id, name, role, areas each{missing}"
        ) from None


def cmd_init(args: argparse.Namespace) -> int:
    paths = _paths(args)
    specs = load_agency_specs(args.agencies)
    suites = args.suite or [Settings().suite]
    try:
        directory = provision(
            paths, specs, passphrase=passphrase_from_env(), now=datetime.now(UTC), suites=suites
        )
    except ValidationError as exc:
        raise invalid(exc, "agency entry", kind=ConfigurationError) from None
    print(f"initialised {paths.root}: {len(specs)} agencies, directory version {directory.version}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    paths = _paths(args)
    keystore = _keystore(paths)
    directory = load_directory(paths)
    algs = [KeyAlg(a) for a in args.alg] if args.alg else list(KeyAlg)
    doc = trust_admin.rotate(
        directory,
        keystore,
        args.agency,
        now=datetime.now(UTC),
        algs=algs,
        overlap=timedelta(minutes=args.overlap_minutes),
    )
    print(f"rotated {', '.join(a.value for a in algs)} keys of {args.agency}")
    print(trust_admin.publish(paths, keystore, doc))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    paths = _paths(args)
    keystore = _keystore(paths)
    now = datetime.now(UTC)
    try:
        at = parse_timestamp(args.at) if args.at else now
    except ValueError:
        raise ConfigurationError("--at must look like 2026-11-23T12:00:00.000Z") from None
    doc = trust_admin.revoke(
        load_directory(paths), args.agency, args.key, at=at, reason=args.reason, now=now
    )
    print(f"revoked {args.key} of {args.agency} from {args.at or 'now'}")
    print(trust_admin.publish(paths, keystore, doc))
    return 0


def cmd_suites(args: argparse.Namespace) -> int:
    paths = _paths(args)
    doc = trust_admin.set_suites(
        load_directory(paths), args.agency, args.suite, now=datetime.now(UTC)
    )
    print(f"{args.agency} may send in {', '.join(dict.fromkeys(args.suite))}")
    print(trust_admin.publish(paths, _keystore(paths), doc))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    paths = _paths(args)
    trust_admin.prune(
        load_directory(paths), _keystore(paths), args.agency, args.key, now=datetime.now(UTC)
    )
    print(f"destroyed private key {args.key} of {args.agency}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    paths = _paths(args)
    directory = load_directory(paths)
    keystore = Keystore(paths.keys, b"listing does not unlock anything")
    now = datetime.now(UTC)
    rows = []
    for agency in directory.document.agencies:
        if args.agency and agency.agency_id != args.agency:
            continue
        held = set(keystore.key_ids(agency.agency_id))
        for k in agency.keys:
            rows.append(
                {
                    "agency": agency.agency_id,
                    "key_id": k.key_id,
                    "alg": k.alg.value,
                    "status": trust_admin.key_status(k, agency, now),
                    "not_before": k.not_before,
                    "not_after": k.not_after,
                    "revoked_at": k.revoked_at,
                    "private_key_held": k.key_id in held,
                }
            )
    if args.json:
        print_json({"directory_version": directory.version, "keys": rows})
        return 0
    print(f"directory version {directory.version}")
    columns = ("agency", "alg", "key_id", "status", "not_before", "not_after")
    print_table(
        (*columns, "private key"),
        ([*(r[c] for c in columns), "held" if r["private_key_held"] else None] for r in rows),
    )
    return 0
