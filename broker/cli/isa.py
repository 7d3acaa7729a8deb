"""`mappa isa init|check|sign|show`: information-sharing agreements as signed documents.

``init`` instantiates the packaged template for an area and its parties (from the
trust directory); ``check`` says what is wrong with a document, by line and field;
``sign`` signs it with the governance key and puts it in force in the data directory
(versions only go forward); ``show`` prints who may publish and who sees which view.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from broker.agreements import (
    load_agreement,
    save_agreement,
    sign_agreement,
    template_data,
    verify_agreement,
)
from broker.agreements.check import (
    MAX_AGREEMENT_BYTES,
    CheckResult,
    check_text,
    parse_agreement,
)
from broker.agreements.documents import agreement_path
from broker.agreements.template import lawful_basis_for
from broker.cli.arguments import calendar_date, whole_number
from broker.cli.output import JSON_HELP, print_json
from broker.errors import ConfigurationError
from broker.files.strict import check_json, read_bytes, read_text
from broker.settings import Settings
from broker.trust.admin import governance_key
from broker.trust.directory import Directory
from broker.trust.keystore import Keystore, passphrase_from_env
from broker.trust.provision import DataPaths, load_directory, load_governance_public
from schemas.common import Role
from schemas.isa import Access, Agreement, ShareRule

SHORT_ROLE = {
    Role.POLICE: "police",
    Role.PROBATION: "probation",
    Role.PRISON: "prison",
    Role.COORDINATOR: "coord",
    Role.YOUTH_OFFENDING: "yot",
    Role.SOCIAL_CARE: "social",
    Role.HEALTH: "health",
    Role.HOUSING: "housing",
    Role.JOBCENTRE: "dwp",
    Role.EDUCATION: "educ",
    Role.ELECTRONIC_MONITORING: "em",
    Role.IMMIGRATION: "immig",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    isa = sub.add_parser("isa", help="information-sharing agreements: init, check, sign, show")
    isa.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = isa.add_subparsers(dest="isa_command", required=True)

    init = cmds.add_parser("init", help="the default agreement for an area and its parties")
    init.add_argument("--area", required=True, metavar="AREA", help="area code (`mappa areas`)")
    init.add_argument(
        "--party",
        action="append",
        metavar="AGENCY_ID",
        help="agency id (repeat); default: every agency in the area",
    )
    init.add_argument(
        "--id", metavar="AGREEMENT_ID", help="agreement id; default mappa-default.<area>"
    )
    init.add_argument(
        "--version",
        type=whole_number(1),
        default=1,
        metavar="N",
        help="agreement version, a whole number from 1 (default 1)",
    )
    init.add_argument("--out", type=Path, help="write here instead of standard output")
    init.set_defaults(handler=cmd_init)

    check = cmds.add_parser("check", help="validate an agreement; every problem by line")
    check.add_argument("file", type=Path, help="agreement YAML, or a signed agreement (JSON)")
    check.add_argument(
        "--today",
        type=calendar_date,
        metavar="YYYY-MM-DD",
        help="judge dates as of this day (default: today)",
    )
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.set_defaults(handler=cmd_check)

    sign = cmds.add_parser("sign", help="sign with the governance key and put in force")
    sign.add_argument("file", type=Path, help="agreement YAML file")
    sign.set_defaults(handler=cmd_sign)

    show = cmds.add_parser("show", help="parties and the sharing matrix of an agreement")
    src = show.add_mutually_exclusive_group(required=True)
    src.add_argument("file", type=Path, nargs="?", help="agreement YAML or signed JSON")
    src.add_argument(
        "--id", metavar="AGREEMENT_ID", help="the signed agreement in force in the data directory"
    )
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(handler=cmd_show)


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def _directory_if_any(paths: DataPaths) -> Directory | None:
    return load_directory(paths) if paths.directory.exists() else None


def _read(path: Path) -> str:
    return read_text(path, max_bytes=MAX_AGREEMENT_BYTES)


def _today(args: argparse.Namespace) -> date:
    return getattr(args, "today", None) or datetime.now(UTC).date()


def _document_text(text: str, path: Path) -> tuple[str, bool]:
    """The agreement part of ``text``: a signed agreement's ``document``, else all of it.
    A signed agreement is held to ``check_json`` (no duplicate key, bounded nesting and
    numbers) before anything in it is believed."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return text, False
        if isinstance(data, dict) and set(data) == {"document", "signature"}:
            check_json(text.encode(), str(path))
            return json.dumps(data["document"], indent=1), True
    return text, False


# -- init -----------------------------------------------------------------------------------


def render_yaml(data: dict[str, Any]) -> str:
    """Block style for the header, one flow-style line per rule: a diff shows one rule."""
    head = {k: v for k, v in data.items() if k not in {"publishers", "rules"}}
    out = ["# MAPPA information-sharing agreement; check with `mappa isa check FILE`."]
    out.append(yaml.safe_dump(head, sort_keys=False, width=100, allow_unicode=True).rstrip())
    for section in ("publishers", "rules"):
        out.append(f"{section}:")
        for item in data.get(section, []):
            line = yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=1000)
            out.append(f"  - {line.strip()}")
    return "\n".join(out) + "\n"


def cmd_init(args: argparse.Namespace) -> int:
    directory = load_directory(_paths(args))
    in_area = directory.agencies(area=args.area)
    if not in_area:
        raise ConfigurationError(f"no active agency in area {args.area} in the trust directory")
    wanted = args.party or [a.agency_id for a in in_area]
    parties = [directory.agency(a) for a in wanted]
    data = template_data()
    data["id"] = args.id or f"mappa-default.{args.area}"
    data["version"] = args.version
    data["areas"] = [args.area]
    data["parties"] = [lawful_basis_for(p).model_dump(mode="json") for p in parties]
    text = render_yaml(data)
    result = check_text(text, today=datetime.now(UTC).date(), directory=directory)
    for finding in result.errors:
        print(finding.render(str(args.out or "agreement")), file=sys.stderr)
    if not result.ok:
        return 1
    if args.out:
        args.out.write_text(text)
        print(f"written {args.out}: {len(parties)} parties, {len(data['rules'])} rules")
    else:
        sys.stdout.write(text)
    return 0


# -- check ----------------------------------------------------------------------------------


def report(result: CheckResult, name: str, *, strict: bool, as_json: bool = False) -> int:
    """Print ``result``'s findings and verdict for the file ``name`` (as one JSON
    document with ``as_json``); returns the exit status: 1 if it failed."""
    failed = bool(result.errors) or (strict and bool(result.warnings))
    if as_json:
        a = result.agreement
        print_json({
            "file": name,
            "valid": not failed,
            "agreement": None if a is None else {"id": a.id, "version": a.version},
            "errors": len(result.errors),
            "warnings": len(result.warnings),
            "findings": [
                {"severity": f.severity.value, "line": f.line, "field": f.field,
                 "message": f.message}
                for f in result.findings
            ],
        })  # fmt: skip
        return 1 if failed else 0
    for finding in result.findings:
        print(finding.render(name))
    summary = f"{len(result.errors)} errors, {len(result.warnings)} warnings"
    if result.agreement is not None and not failed:
        a = result.agreement
        print(f"{name}: agreement {a.id} v{a.version} is valid ({summary})")
    else:
        print(f"{name}: invalid ({summary})")
    return 1 if failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    paths = _paths(args)
    directory = _directory_if_any(paths)
    text, signed = _document_text(_read(args.file), args.file)
    if signed:
        verify_signed_file(text_bytes(args.file), paths)
    result = check_text(text, today=_today(args), directory=directory)
    if directory is None:
        # On standard error: a --json document stays the one thing on standard output.
        print(
            f"note: no trust directory at {paths.directory}: parties not checked against it",
            file=sys.stderr if args.json else sys.stdout,
        )
    return report(result, str(args.file), strict=args.strict, as_json=args.json)


def text_bytes(path: Path) -> bytes:
    return read_bytes(path, max_bytes=MAX_AGREEMENT_BYTES)


def verify_signed_file(data: bytes, paths: DataPaths) -> None:
    verify_agreement(data, governance_key=load_governance_public(paths))


# -- sign -----------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    paths = _paths(args)
    directory = load_directory(paths)
    agreement = parse_agreement(_read(args.file), today=_today(args), directory=directory)
    signer = governance_key(Keystore(paths.keys, passphrase_from_env()))
    if signer is None:
        raise ConfigurationError(f"no governance key in {paths.keys}: sign where it is held")
    save_agreement(paths, sign_agreement(agreement, signer), load_governance_public(paths))
    print(
        f"agreement {agreement.id} version {agreement.version} signed and in force: "
        f"{agreement_path(paths, agreement.id)}"
    )
    return 0


# -- show -----------------------------------------------------------------------------------


def cell(rule: ShareRule | None) -> str:
    if rule is None or rule.access is Access.NONE:
        return "-"
    letter = rule.access.value[0].upper()
    if rule.access is Access.REDACTED and rule.redaction not in {None, "standard"}:
        letter += f":{rule.redaction}"
    return f"C-{letter}" if rule.active_role_required else letter


def matrix_lines(a: Agreement) -> list[str]:
    rules = {(r.message_type, r.role): r for r in a.rules}
    types = list(
        dict.fromkeys([p.message_type for p in a.publishers] + [r.message_type for r in a.rules])
    )
    publishers = {p.message_type: p for p in a.publishers}
    roles = [r for r in Role if any(k[1] is r for k in rules)]
    cells = {t: [cell(rules.get((t, r))) for r in roles] for t in types}
    widths = [
        max(len(SHORT_ROLE[r]), *(len(cells[t][i]) for t in types)) for i, r in enumerate(roles)
    ]
    type_w = max(len("message type"), *(len(t) for t in types))
    pub_w = max(
        len("published by"),
        *(len(",".join(SHORT_ROLE[x] for x in p.roles)) + 1 for p in a.publishers),
    )
    head = f"{'message type':<{type_w}}  {'published by':<{pub_w}}  " + "  ".join(
        f"{SHORT_ROLE[r]:<{w}}" for r, w in zip(roles, widths, strict=True)
    )
    lines = [head.rstrip()]
    for t in types:
        pub = publishers.get(t)
        by = ",".join(SHORT_ROLE[x] for x in pub.roles) if pub else "(nobody)"
        if pub and not pub.case_load_required:
            by += "*"
        row = f"{t:<{type_w}}  {by:<{pub_w}}  " + "  ".join(
            f"{c:<{w}}" for c, w in zip(cells[t], widths, strict=True)
        )
        lines.append(row.rstrip())
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if args.id:
        agreement = load_agreement(paths, args.id, load_governance_public(paths))
    else:
        text, signed = _document_text(_read(args.file), args.file)
        if signed:
            # Shown only once its signature checks out against this deployment's anchor.
            agreement = verify_agreement(
                text_bytes(args.file), governance_key=load_governance_public(paths)
            )
        else:
            agreement = parse_agreement(text, today=_today(args))
    if args.json:
        print(json.dumps(agreement.model_dump(mode="json"), indent=1))
        return 0
    a = agreement
    print(f"agreement {a.id} version {a.version}: {a.title}")
    print(f"areas: {', '.join(a.areas)}")
    print(
        f"in force {a.valid_from} to {a.valid_until}; review by {a.review_date}; "
        f"retention {a.retention.years} years; onward sharing: {a.onward_sharing}"
    )
    print("parties:")
    for p in a.parties:
        print(f"  {p.agency_id:<28} {p.role.value:<22} {p.lawful_basis.value}: {p.basis_detail}")
    print()
    for line in matrix_lines(a):
        print(line)
    print()
    print(
        "F full, R redacted (standard set; R:<set> a named narrower set), S summary, - nothing;"
        " C- only to agencies on the case team; * needs no case load to publish"
    )
    return 0
