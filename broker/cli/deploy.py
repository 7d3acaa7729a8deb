"""`mappa deploy`: the production Apache Kafka cluster's topics and ACLs.

``mappa deploy acls`` prints the ACLs the directory and the agreements imply;
``--apply`` makes the cluster hold exactly those (and creates the topics with their
explicit configs), ``--check`` compares and exits 1 on any difference. Both connect
through the Kafka Admin API as the admin principal of the settings
(MAPPA_KAFKA_SECURITY_PROTOCOL, MAPPA_KAFKA_USERNAME, ...).
"""

from __future__ import annotations

import argparse
import json
import secrets
from dataclasses import asdict
from pathlib import Path

from broker.agreements import default_agreements, read_agreement
from broker.cli import service_dirs
from broker.cli.arguments import whole_number
from broker.errors import ConfigurationError
from broker.kafka.acls import LEDGER_USER, AclBinding, acl_bindings, as_shell, scram_user
from broker.kafka.strimzi import DEFAULT_REPLICAS, MAX_REPLICAS, as_yaml, strimzi_resources
from broker.kafka.topics import PARTITIONS, Topics
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory

# 24 random bytes: 192 bits, far past guessing; SCRAM stores only a salted hash of it.
PASSWORD_BYTES = 24


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """Where the topics and ACLs are derived from: the data directory and agreements."""
    parser.add_argument("--data-dir", type=Path, help="default: MAPPA_DATA_DIR or .mappa")
    parser.add_argument(
        "--agreement",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="agreement document, YAML or signed JSON (repeat; default: each area's default)",
    )


def _derive(
    settings: Settings, agreement_files: list[Path]
) -> tuple[list[str], list[AclBinding], list[str]]:
    """What the directory and the agreements (``agreement_files``, else each area's
    default) imply: every agency's Kafka principal, the ACL bindings, and every topic."""
    directory = load_directory(DataPaths(settings.data_dir))
    agencies = directory.agencies()
    agreements = (
        [read_agreement(p) for p in agreement_files]
        if agreement_files
        else default_agreements(directory)
    )
    topics = Topics(settings.topic_namespace)
    areas = sorted({a for agency in agencies for a in agency.areas})
    return (
        [a.kafka_principal for a in agencies],
        acl_bindings(agencies, agreements, topics),
        topics.all_topics(areas),
    )


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
    _add_source_options(acls)
    acls.add_argument("--json", action="store_true", help="one JSON list of bindings")
    acts = acls.add_mutually_exclusive_group()
    acts.add_argument(
        "--apply",
        action="store_true",
        help="create the topics and make the cluster's ACLs exactly these (Admin API)",
    )
    acts.add_argument(
        "--check",
        action="store_true",
        help="compare the cluster's ACLs with these; exit 1 on any difference",
    )
    acls.add_argument(
        "--bootstrap", help="the cluster, for --apply/--check (MAPPA_KAFKA_BOOTSTRAP)"
    )
    acls.set_defaults(handler=run_acls)
    creds = actions.add_parser(
        "credentials",
        help="create or reset the SCRAM credentials of the agency principals and the ledger",
        description="Give each principal of the directory (and mappa-ledger) a fresh random "
        "SCRAM-SHA-512 password through the Kafka Admin API, and write each to OUT/<user> "
        "(mode 0600) to hand to that agency: it is its MAPPA_KAFKA_PASSWORD_FILE.",
    )
    creds.add_argument("--data-dir", type=Path, help="default: MAPPA_DATA_DIR or .mappa")
    creds.add_argument("--bootstrap", help="the cluster (MAPPA_KAFKA_BOOTSTRAP)")
    creds.add_argument("--out", type=Path, required=True, help="folder for the password files")
    creds.add_argument(
        "--user", action="append", default=[], help="only this user (repeatable; default: all)"
    )
    creds.set_defaults(handler=run_credentials)
    register_strimzi(actions)
    service_dirs.register(actions)


def run_acls(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(data_dir=args.data_dir, kafka_bootstrap=args.bootstrap)
    _, bindings, names = _derive(settings, args.agreement)
    if args.apply or args.check:
        return _against_cluster(settings, bindings, names, apply=args.apply)
    if args.json:
        print(json.dumps([asdict(b) for b in bindings], indent=2))
    else:
        print(as_shell(bindings), end="")
    return 0


def _against_cluster(
    settings: Settings, bindings: list[AclBinding], names: list[str], *, apply: bool
) -> int:
    from broker.kafka.admin import KafkaAdmin

    admin = KafkaAdmin(settings)
    namespace = settings.topic_namespace
    if apply:
        created = admin.create_topics(names, partitions=PARTITIONS)
        change = admin.apply(bindings, namespace)
        print(
            f"topics: {len(created)} created, {len(names) - len(created)} already there; "
            f"ACLs: {len(change.missing)} added, {len(change.extra) + len(change.other)} "
            f"removed; {len(bindings)} in force"
        )
        return 0
    diff = admin.diff(bindings, namespace)
    for b in diff.missing:
        print(f"missing  {b.principal} {b.operation.value} {b.topic}")
    for b in diff.extra:
        print(f"extra    {b.principal} {b.operation.value} {b.topic}")
    for text in diff.other:
        print(f"other    {text}")
    if diff.same:
        print(f"the cluster holds exactly the {len(bindings)} ACLs the agreements imply")
        return 0
    print(
        f"the cluster differs: {len(diff.missing)} missing, {len(diff.extra)} extra, "
        f"{len(diff.other)} other; `mappa deploy acls --apply` makes it match"
    )
    return 1


def run_credentials(args: argparse.Namespace) -> int:
    from broker.kafka.admin import KafkaAdmin

    settings = Settings.with_flags(data_dir=args.data_dir, kafka_bootstrap=args.bootstrap)
    directory = load_directory(DataPaths(settings.data_dir))
    every = sorted({scram_user(a.kafka_principal) for a in directory.agencies()} | {LEDGER_USER})
    unknown = sorted(set(args.user) - set(every))
    if unknown:
        raise ConfigurationError(f"not a principal of the directory: {', '.join(unknown)}")
    users = args.user or every
    passwords = {user: secrets.token_urlsafe(PASSWORD_BYTES) for user in users}
    args.out.mkdir(parents=True, exist_ok=True)
    args.out.chmod(0o700)
    KafkaAdmin(settings).upsert_scram_users(passwords)
    for user, password in passwords.items():
        path = args.out / user
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(password)
    print(f"{len(passwords)} SCRAM-SHA-512 credentials set; password files in {args.out}:")
    for user in users:
        print(f"  {user}")
    return 0


def register_strimzi(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mappa deploy strimzi``: the same topics and ACLs as Strimzi resources."""
    strimzi = actions.add_parser(
        "strimzi",
        help="Strimzi KafkaTopic and KafkaUser resources derived from the agreements",
        description="Print (or write to --out) the KafkaTopic of every topic and a "
        "SCRAM-SHA-512 KafkaUser for every principal, with the ACLs `mappa deploy acls` "
        "derives from the same directory and agreements, for `kubectl apply -f` on a "
        "cluster the Strimzi operator runs.",
    )
    _add_source_options(strimzi)
    strimzi.add_argument(
        "--namespace", help="Kubernetes namespace of the resources (default: none set)"
    )
    strimzi.add_argument(
        "--cluster", default="mappa", help="name of the Strimzi Kafka cluster (default: mappa)"
    )
    strimzi.add_argument(
        "--replicas",
        type=whole_number(1, MAX_REPLICAS),
        default=DEFAULT_REPLICAS,
        metavar="N",
        help=f"replicas of each topic, a whole number (default: {DEFAULT_REPLICAS})",
    )
    strimzi.add_argument("--out", type=Path, metavar="FILE", help="write here, not to stdout")
    strimzi.set_defaults(handler=run_strimzi)


def run_strimzi(args: argparse.Namespace) -> int:
    """The bindings ``run_acls`` derives (``_derive``), as Strimzi resources
    (``broker.kafka.strimzi``)."""
    settings = Settings.with_flags(data_dir=args.data_dir)
    principals, bindings, names = _derive(settings, args.agreement)
    text = as_yaml(
        strimzi_resources(
            principals,
            bindings,
            names,
            settings,
            namespace=args.namespace,
            cluster=args.cluster,
            replicas=args.replicas,
        )
    )
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
        print(f"Strimzi resources written to {args.out}")
    return 0
