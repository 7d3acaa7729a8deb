"""`mappa isa check`: say precisely what is wrong with an agreement, by line and field.

The YAML is composed into nodes first (PyYAML keeps each node's ``start_mark``), so a
pydantic error location such as ``('rules', 4, 'access')`` maps back to the line it
came from. Then the semantic checks run on the typed document: message types the
catalogue does not know, parties the trust directory does not know or lists under
another role or area, rules for roles no party holds, duplicates, and dates
(expired, not yet in force, review overdue). Errors make the agreement unusable;
warnings are for a person to look at.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from broker.errors import SchemaError, VerificationError
from broker.files.strict import FileRefused, compose_yaml, expanded_size
from broker.trust.directory import Directory
from schemas.common import Role
from schemas.isa import (
    DEFER_COHERENCE,
    Access,
    Agreement,
    LawfulBasis,
    Location,
    coherence_problems,
)
from schemas.messages import CATALOGUE

# The default agreement is about 20 KiB; 1 MiB is far beyond any real one and keeps a
# hostile file (YAML aliases expand when the document is turned into JSON) bounded.
MAX_AGREEMENT_BYTES = 1_048_576
MAX_AGREEMENT_JSON_BYTES = 4 * MAX_AGREEMENT_BYTES


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    loc: Location
    message: str
    line: int | None = None

    @property
    def field(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "(document)"

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        tag = "" if self.severity is Severity.ERROR else "warning: "
        return f"{where}: {tag}{self.field}: {self.message}"


@dataclass(frozen=True)
class CheckResult:
    findings: tuple[Finding, ...]
    agreement: Agreement | None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors


# -- YAML with line numbers ---------------------------------------------------------------


def _node_at(root: yaml.Node, loc: Location) -> yaml.Node:
    """The deepest node along ``loc`` (the key's node for a missing mapping entry)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == part
                ),
                None,
            )
            if match is None:
                return node
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def line_of(root: yaml.Node | None, loc: Location) -> int | None:
    if root is None:
        return None
    return _node_at(root, loc).start_mark.line + 1


def load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree, by the strict loader (``broker.files.strict``: no
    duplicate key, bounded nesting and numbers, real dates). Raises ``FileRefused``."""
    return compose_yaml(text, "agreement")


# -- pydantic errors in words ---------------------------------------------------------------


def _describe(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "enum" and "expected" in ctx:
        expected = str(ctx["expected"]).replace("'", "").replace(" or ", ", ")
        return f"{error['input']!r} is not one of {expected}"
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown field (not part of an agreement)"
    if error["type"] == "literal_error" and "expected" in ctx:
        return f"{error['input']!r} is not one of {ctx['expected']}"
    if error["type"] == "string_pattern_mismatch":
        return f"{error['input']!r} is not in the expected form ({ctx.get('pattern')})"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _clean_loc(loc: Sequence[str | int]) -> Location:
    # Tagged unions and validators add non-field steps such as "function-after[...]".
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith("function-"))


# -- semantic checks ------------------------------------------------------------------------


def _known_types() -> set[str]:
    return set(CATALOGUE)


def _type_findings(a: Agreement, known: set[str]) -> Iterable[Finding]:
    for i, pub in enumerate(a.publishers):
        if pub.message_type not in known:
            yield Finding(
                Severity.ERROR,
                ("publishers", i, "message_type"),
                f"unknown message type {pub.message_type!r}",
            )
    for i, rule in enumerate(a.rules):
        if rule.message_type not in known:
            yield Finding(
                Severity.ERROR,
                ("rules", i, "message_type"),
                f"unknown message type {rule.message_type!r}",
            )


def semantic_findings(
    agreement: Agreement, *, today: date, directory: Directory | None
) -> Iterable[Finding]:
    a = agreement
    for loc, message in coherence_problems(a):
        yield Finding(Severity.ERROR, loc, message)
    known = _known_types()
    yield from _type_findings(a, known)
    for i, party in enumerate(a.parties):
        law_enforcement = party.role.is_responsible_authority or party.role is Role.COORDINATOR
        if law_enforcement and party.lawful_basis is not LawfulBasis.DPA_2018_PART_3:
            yield Finding(
                Severity.WARNING,
                ("parties", i, "lawful_basis"),
                f"{party.agency_id} ({party.role.value}) processes for law enforcement: "
                f"DPA 2018 Part 3, not {party.lawful_basis.value}",
            )
    party_roles = {p.role for p in a.parties}
    orphan: dict[Role, list[int]] = {}
    for i, rule in enumerate(a.rules):
        if rule.access is not Access.NONE and rule.role not in party_roles:
            orphan.setdefault(rule.role, []).append(i)
    for role, indices in orphan.items():
        also = f" (and {len(indices) - 1} more rules)" if len(indices) > 1 else ""
        yield Finding(
            Severity.WARNING,
            ("rules", indices[0], "role"),
            f"rule for role {role.value}{also} but no party holds that role",
        )
    published = {p.message_type for p in a.publishers}
    shared = {r.message_type for r in a.rules if r.access is not Access.NONE}
    for i, pub in enumerate(a.publishers):
        if pub.message_type in known and pub.message_type not in shared:
            yield Finding(
                Severity.WARNING,
                ("publishers", i, "message_type"),
                f"{pub.message_type} may be published but no rule shares it with anyone",
            )
    for i, rule in enumerate(a.rules):
        if rule.message_type in known and rule.message_type not in published:
            yield Finding(
                Severity.WARNING,
                ("rules", i, "message_type"),
                f"no party may publish {rule.message_type}, so this rule never applies",
            )
    yield from _date_findings(a, today)
    if directory is not None:
        yield from _directory_findings(a, directory)


def _date_findings(a: Agreement, today: date) -> Iterable[Finding]:
    iso = today.isoformat()
    if a.valid_until < iso:
        yield Finding(
            Severity.ERROR,
            ("valid_until",),
            f"expired on {a.valid_until} (today is {iso}): nothing may be shared under it",
        )
    elif a.valid_from > iso:
        yield Finding(
            Severity.WARNING, ("valid_from",), f"not in force until {a.valid_from} (today {iso})"
        )
    if a.review_date < iso:
        yield Finding(
            Severity.WARNING,
            ("review_date",),
            f"review was due on {a.review_date} (today is {iso})",
        )
    if a.review_date > a.valid_until:
        yield Finding(
            Severity.WARNING,
            ("review_date",),
            f"review date {a.review_date} is after the agreement ends ({a.valid_until})",
        )


def _directory_findings(a: Agreement, directory: Directory) -> Iterable[Finding]:
    for i, party in enumerate(a.parties):
        try:
            entry = directory.agency(party.agency_id)
        except VerificationError:
            yield Finding(
                Severity.ERROR,
                ("parties", i, "agency_id"),
                f"{party.agency_id} is not in the trust directory (version {directory.version})",
            )
            continue
        if entry.role is not party.role:
            yield Finding(
                Severity.ERROR,
                ("parties", i, "role"),
                f"{party.agency_id} is a {entry.role.value} agency in the directory, "
                f"not {party.role.value}",
            )
        if not set(a.areas) & set(entry.areas):
            yield Finding(
                Severity.ERROR,
                ("parties", i, "agency_id"),
                f"{party.agency_id} operates in {', '.join(entry.areas)}, none of the "
                f"agreement's areas ({', '.join(a.areas)})",
            )


# -- the whole check ------------------------------------------------------------------------


class _Unreadable(Exception):
    """The text is not a YAML mapping we can safely turn into a document."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.finding = Finding(Severity.ERROR, (), message, line)


def _read_document(text: str) -> tuple[str, yaml.Node | None]:
    """The document as JSON text, and its YAML node tree for line numbers."""
    if len(text.encode()) > MAX_AGREEMENT_BYTES:
        raise _Unreadable(f"larger than {MAX_AGREEMENT_BYTES} bytes")
    try:
        data, root = load_yaml(text)
    except FileRefused as exc:
        raise _Unreadable(exc.problem, exc.line) from None
    if not isinstance(data, dict):
        raise _Unreadable("an agreement is a YAML mapping", 1)
    if root is not None and expanded_size(root) > MAX_AGREEMENT_JSON_BYTES:
        raise _Unreadable("expands to too large a document (YAML aliases?)")
    try:
        return _json(data), root
    except ValueError:  # json refuses a structure that contains itself
        raise _Unreadable("a YAML alias refers to itself") from None


def check_text(text: str, *, today: date, directory: Directory | None = None) -> CheckResult:
    """Every problem with the agreement in ``text``, each located by line and field."""
    try:
        as_json, root = _read_document(text)
    except _Unreadable as exc:
        return CheckResult((exc.finding,), None)
    try:
        agreement = Agreement.model_validate_json(as_json, context={DEFER_COHERENCE: True})
    except ValidationError as exc:
        findings = []
        for error in exc.errors():
            loc = _clean_loc(error["loc"])
            findings.append(Finding(Severity.ERROR, loc, _describe(error), line_of(root, loc)))
        return CheckResult(tuple(findings), None)
    findings = [
        Finding(f.severity, f.loc, f.message, line_of(root, f.loc))
        for f in semantic_findings(agreement, today=today, directory=directory)
    ]
    findings.sort(key=lambda f: (f.line or 0, f.severity is not Severity.ERROR))
    return CheckResult(tuple(findings), agreement)


def _json(data: Any) -> str:
    # YAML reads unquoted dates as ``date`` objects; the document wants ISO strings.
    return json.dumps(data, default=lambda v: v.isoformat() if isinstance(v, date) else str(v))


def parse_agreement(text: str, *, today: date, directory: Directory | None = None) -> Agreement:
    """The agreement in ``text`` if it has no errors; else ``SchemaError`` naming the first."""
    result = check_text(text, today=today, directory=directory)
    if result.agreement is None or result.errors:
        first, *rest = result.errors
        more = f" (and {len(rest)} more)" if rest else ""
        raise SchemaError(first.render("agreement") + more, code="isa.invalid")
    return result.agreement


__all__ = ["CheckResult", "Finding", "Severity", "check_text", "parse_agreement"]
