"""`mappa report annual` and `mappa demo-data annual` (docs/statistics.md).

``report annual`` computes an area's annual MAPPA tables from its co-ordination unit's
store (beside a running ``mappa serve``: its audit record waits in the store's outbox
for that server's relay). ``demo-data annual`` plans a fictional population that yields
given tables, publishes it on a broker into a fresh data directory, and prints the
report the unit then computes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.areas import all_areas
from broker.cli.arguments import whole_number
from broker.cli.offline import offline_gateway
from broker.cli.runner import run_interruptible
from broker.errors import ConfigurationError, SchemaError
from broker.files.strict import read_json
from broker.settings import Settings
from broker.statistics.annual import AnnualTables, ReportYear
from broker.statistics.generate import coordinator, provision_world, publish_plan
from broker.statistics.held import annual_report
from broker.statistics.planning import plan_population
from broker.statistics.population import MAX_POPULATION
from broker.statistics.render import as_csv, as_html, as_json, as_text
from broker.trust.keystore import passphrase_from_env

FORMATS = ("table", "csv", "json", "html")
# A neighbour for the moves in and out of an area in generated data.
NEIGHBOURS = {"staffordshire": "west-mercia", "hampshire": "thames-valley"}
MAX_TABLES_BYTES = 256 * 1024
USER_HELP = "the person running it, for the audit trail"


def _year(text: str) -> ReportYear:
    try:
        return ReportYear.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _area(text: str) -> str:
    if text not in all_areas():
        raise argparse.ArgumentTypeError("not a MAPPA area code (see `mappa areas`)")
    return text


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default table)")
    p.add_argument(
        "--not-applicable",
        choices=("dash", "zero"),
        default="dash",
        help="print a not-applicable cell as '-' (default) or 0, as some areas' reports do",
    )
    p.add_argument(
        "--population",
        type=whole_number(1, MAX_POPULATION),
        help="the number of people aged 10 and over, for RSOs per 100,000 "
        "(default: the shipped table)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="the annual MAPPA statistics, from the unit's store")
    reports = report.add_subparsers(dest="report_command", required=True)
    annual = reports.add_parser(
        "annual",
        help="an area's annual report tables (docs/statistics.md)",
        description="Compute an area's annual MAPPA report tables from its co-ordination "
        "unit's store: every message opened and verified, the definitions in "
        "docs/statistics.md. Writes one audit record (a combination).",
    )
    annual.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    annual.add_argument(
        "--agency", required=True, help="the area's co-ordination unit (coordinator.AREA)"
    )
    annual.add_argument("--year", type=_year, required=True, help="reporting year, e.g. 2013-14")
    annual.add_argument("--user", default="report", help=USER_HELP)
    _output_options(annual)
    annual.set_defaults(handler=cmd_report)

    demo = sub.add_parser("demo-data", help="generated data that yields given annual tables")
    kinds = demo.add_subparsers(dest="demo_data_command", required=True)
    gen = kinds.add_parser(
        "annual",
        help="a fictional population yielding given tables, published on a broker",
        description="Plan a fictional population whose message histories yield the tables "
        "in FILE, publish it through the agencies' gateways on a broker (embedded unless "
        "MAPPA_KAFKA_BOOTSTRAP), and print the report the co-ordination unit then computes.",
    )
    gen.add_argument("--area", type=_area, required=True, help="area code, e.g. staffordshire")
    gen.add_argument("--year", type=_year, required=True, help="reporting year, e.g. 2013-14")
    gen.add_argument(
        "--tables",
        type=Path,
        required=True,
        help="published tables: one area's entry, or a file of them under 'areas' "
        "(broker/statistics/data/published-tables.json)",
    )
    gen.add_argument(
        "--entry", help="which entry of the file's 'areas' (default: by area and year)"
    )
    gen.add_argument("--neighbour", type=_area, help="the area cases move to and from")
    gen.add_argument(
        "--seed",
        type=whole_number(),
        default=2014,
        help="the plan's seed, a whole number (default 2014)",
    )
    gen.add_argument(
        "--data-dir",
        type=Path,
        help="fresh directory to keep (then MAPPA_KEY_PASSPHRASE is required); "
        "default: a temporary one",
    )
    _output_options(gen)
    gen.set_defaults(handler=cmd_demo_data)


def print_report(tables: AnnualTables, args: argparse.Namespace) -> None:
    if args.format == "json":
        print(json.dumps(as_json(tables), indent=2))
    elif args.format == "csv":
        print(as_csv(tables, not_applicable=args.not_applicable), end="")
    elif args.format == "html":
        print(as_html(tables, not_applicable=args.not_applicable))
    else:
        print(as_text(tables, not_applicable=args.not_applicable))


def cmd_report(args: argparse.Namespace) -> int:
    settings = Settings.with_flags(data_dir=args.data_dir)
    with offline_gateway(settings, args.agency, ()) as (gateway, _):
        tables = annual_report(gateway, year=args.year, user=args.user, population=args.population)
    print_report(tables, args)
    return 0


def target_of(data: Mapping[str, Any], *, area: str, year: ReportYear, entry: str | None) -> Any:
    """One area's tables from a file holding one entry or several under ``areas``."""
    entries = data.get("areas")
    if not isinstance(entries, Mapping):
        return data
    if entry is None:
        # Keys name the area and the year, as "West_Mercia_2013_14" or "Hampshire_IoW_2013_14".
        found = [
            k
            for k in entries
            if (name := k.lower().replace("_", "-")).startswith(f"{area}-")
            and name.endswith(f"-{year.label}")
        ]
        if len(found) != 1:
            raise SchemaError(
                f"the tables file has no single entry for {area} {year.label}; name one "
                f"with --entry ({', '.join(sorted(entries))})",
                code="report.tables-entry",
            )
        entry = found[0]
    if entry not in entries:
        raise SchemaError(f"the tables file has no entry {entry!r}", code="report.tables-entry")
    return entries[entry]


def cmd_demo_data(args: argparse.Namespace) -> int:
    data = json.loads(read_json(args.tables, max_bytes=MAX_TABLES_BYTES))
    target = target_of(data, area=args.area, year=args.year, entry=args.entry)
    neighbour = (
        args.neighbour
        or NEIGHBOURS.get(args.area)
        or next(a for a in sorted(all_areas()) if a != args.area)
    )
    try:
        plan = plan_population(
            target, area=args.area, neighbour=neighbour, year=args.year, seed=args.seed
        )
    except ValueError as exc:
        raise SchemaError(
            f"no population yields these tables: {exc}", code="report.tables"
        ) from None
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mappa-data-")))
            passphrase = secrets.token_urlsafe(24).encode()
        else:
            if data_dir.exists() and any(data_dir.iterdir()):
                raise ConfigurationError(f"{data_dir} is not empty: demo-data needs a fresh one")
            passphrase = passphrase_from_env()
        # The broker: MAPPA_KAFKA_BOOTSTRAP's, else an embedded one (Settings reads it).
        settings = Settings.with_flags(data_dir=data_dir)
        deployment = provision_world(settings, plan, passphrase)
        published = run_interruptible(publish_plan(deployment, plan))
        with offline_gateway(settings, coordinator(args.area), (), passphrase=passphrase) as (
            gateway,
            _,
        ):
            tables = annual_report(
                gateway, year=args.year, user="demo-data", population=args.population
            )
        kept = "" if args.data_dir is None else f"; kept in {data_dir}"
        print(
            f"# generated: {published.messages} messages ({published.corrections} corrections), "
            f"{published.transfers_in} moves in and {published.transfers_out} out, "
            f"in {published.seconds} s{kept}",
            file=sys.stderr,
        )
    print_report(tables, args)
    return 0
