"""`mappa deploy`: artefacts for a production Apache Kafka cluster."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import yaml
from pydantic import ValidationError

from broker.agreements import agreement_for_area
from broker.errors import SchemaError, invalid
from broker.kafka.acls import acl_bindings, as_shell
from broker.kafka.topics import Topics
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory
from schemas.common import from_data
from schemas.isa import Agreement


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("deploy", help="production artefacts (Kafka ACLs)")
    actions = parser.add_subparsers(dest="action", required=True)
    acls = actions.add_parser(
        "acls",
        help="Kafka ACLs derived from the signed directory and the agreements",
        description="Print kafka-acls.sh commands (or JSON) granting each agency's principal "
        "exactly the topics its agreements need. Without --agreement, the default agreement "
        "is instantiated for each area of the directory with that area's agencies as parties.",
    )
    acls.add_argument("--data-dir", type=Path, help="default: MAPPA_DATA_DIR or .mappa")
    acls.add_argument("--agreement", type=Path, action="append", default=[], metavar="FILE")
    acls.add_argument("--json", action="store_true", help="one JSON list of bindings")
    acls.set_defaults(handler=run_acls)


def _load_agreement(path: Path) -> Agreement:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"cannot read agreement {path}: {exc}") from None
    if isinstance(data, dict) and "agreement" in data:
        data = data["agreement"]  # a signed agreement document wraps the agreement
    try:
        return from_data(Agreement, data)
    except ValidationError as exc:
        raise invalid(exc, f"agreement {path}") from None


def run_acls(args: argparse.Namespace) -> int:
    settings = Settings() if args.data_dir is None else Settings(data_dir=args.data_dir)
    directory = load_directory(DataPaths(settings.data_dir))
    if args.agreement:
        agreements = [_load_agreement(p) for p in args.agreement]
    else:
        areas = sorted({a for agency in directory.agencies() for a in agency.areas})
        agreements = [agreement_for_area(a, directory.agencies(area=a)) for a in areas]
    bindings = acl_bindings(directory.agencies(), agreements, Topics(settings.topic_namespace))
    if args.json:
        print(json.dumps([asdict(b) for b in bindings], indent=2))
    else:
        print(as_shell(bindings), end="")
    return 0
