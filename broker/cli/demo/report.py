"""`mappa demo`'s summary: what each agency received, what was refused, what the ledger
holds; printed as text or as one JSON document."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AgencyReport:
    agency_id: str
    role: str
    party: bool
    received: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DemoSummary:
    area: str
    suite: str
    broker: str
    published: dict[str, Any]
    agencies: list[AgencyReport]
    agreement: dict[str, Any]
    case_team: dict[str, Any]
    consultation: dict[str, Any]
    eavesdropper: dict[str, int]
    dead_letters: int
    audit: dict[str, Any]
    matrix: dict[str, Any] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary as one JSON-ready document (``mappa demo --json``)."""
        return asdict(self)


def render(summary: DemoSummary) -> str:
    lines = [
        f"mappa-broker demo: area {summary.area}, suite {summary.suite}",
        f"broker: {summary.broker}",
        f"agreement: {summary.agreement['id']} v{summary.agreement['version']}, signed by the "
        f"{summary.agreement['signed_by']}, in force until {summary.agreement['valid_until']}",
        "",
        f"{summary.case_team['by']} set the case team first: "
        f"{', '.join(summary.case_team['members'])}",
        f"  not on the team: {', '.join(summary.case_team['off_team'])} (a party, but rules "
        "that need an active role on the case do not reach it)",
        f"{summary.published['by']} published a {summary.published['message_type']} "
        f"(message {summary.published['message_id']})",
        f"  subject reference {summary.published['subject_ref'][:16]}... "
        "(keyed hash, never the PNC id)",
        f"  envelopes on: {', '.join(summary.published['topics'])}",
        "",
        f"{'agency':<36} {'role':<22} {'party':<6} received",
    ]
    first = summary.published["message_id"]
    for a in summary.agencies:
        received = [r for r in a.received if r["message_id"] == first]
        if a.agency_id == summary.published["by"]:
            got = "(sender)"
        elif received:
            got = "; ".join(f"{r['message_type']}: {r['view']} view" for r in received)
        else:
            got = "nothing it can read" + (
                "" if a.party else " (not a party: no key wrapped for it)"
            )
        lines.append(f"{a.agency_id:<36} {a.role:<22} {'yes' if a.party else 'no':<6} {got}")
    lines += ["", "refused (dead-lettered and audited):"]
    for a in summary.agencies:
        for r in a.refused:
            lines.append(f"  {a.agency_id:<34} {r['reason_code']}: {r['reason']}")
    c = summary.consultation
    lines += [
        "",
        f"consultation: {c['user']} at {c['agency']} opened the {c['view']} view with a "
        "justification;",
        f"  fields seen: {', '.join(c['fields_seen'])}",
        f"  victim details present: {c['victim_details_present']}; health notes present: "
        f"{c['health_notes_present']}",
        f"eavesdropper reading every {summary.area} topic with the non-party's keys: "
        f"{summary.eavesdropper['records_seen']} records, {summary.eavesdropper['attempts']} "
        f"attempts to open, {summary.eavesdropper['readable']} readable",
        _broker_line(summary.eavesdropper),
        f"dead-letter topic: {summary.dead_letters} records",
        "",
        f"audit ledger: {summary.audit['records']} records "
        f"({', '.join(f'{k} {v}' for k, v in summary.audit['by_act'].items())}); "
        f"{summary.audit['rejected']} rejected",
        "",
        *render_matrix(summary.matrix),
        "",
        *_ledger_lines(summary.audit),
        f"all parts stopped; {summary.elapsed_seconds} s",
    ]
    return "\n".join(lines)


def _broker_line(eavesdropper: dict[str, int]) -> str:
    refused, topics = eavesdropper["broker_refused"], eavesdropper["broker_topics"]
    if not refused:
        return "  the broker refused nothing: it has no ACLs (tansu); the envelope kept it out"
    return (
        f"  with the non-party's own Kafka credential the broker refused {refused} of "
        f"{topics} area topics before a byte was fetched (TopicAuthorizationFailed; the "
        "ACLs give it its own role's topic only)"
    )


def _ledger_lines(audit: dict[str, Any]) -> list[str]:
    if "checkpoint" not in audit:
        return []
    p = audit["proof"]
    return [
        "latest signed checkpoint (C2SP signed note):",
        *(f"  {line}" for line in audit["checkpoint"]["note"].rstrip("\n").split("\n")),
        f"  verifier key: {audit['verifier_key']}",
        _witnesses_line(audit["witnesses"]),
        f"inclusion proof of entry {p['seq']} ({p['act']}) in the tree of {p['tree_size']}: "
        f"{len(p['hashes'])} hashes, verified with the standalone verifier: {p['verified']}",
        *(f"  {h}" for h in p["hashes"]),
    ]


def _witnesses_line(w: dict[str, Any]) -> str:
    names = ", ".join(n.rsplit("/", 1)[-1] for n in w["signed"])
    return (
        f"  verified against the witness policy: {len(w['signed'])} of {w['count']} witnesses "
        f"(threshold {w['threshold']}), with the standalone verifier: {names}"
    )


COLUMN_CODES = {
    "police": "POL",
    "probation": "PRB",
    "prison": "PRS",
    "coordinator": "MCU",
    "youth-offending": "YOT",
    "childrens-social-care": "CSC",
    "adult-social-care": "ASC",
    "health": "NHS",
    "housing": "HA",
    "social-landlord": "RSL",
    "jobcentre": "DWP",
    "education": "EDU",
    "electronic-monitoring": "EM",
    "immigration": "IE",
}
CELLS = {"full": "F", "redacted": "R", "summary": "S", "none": "-", "sender": "*"}


def render_matrix(matrix: dict[str, Any]) -> list[str]:
    """Rows: each message type from a permitted sender; columns: every agency."""
    columns = matrix["columns"]
    codes = [
        COLUMN_CODES.get(c["kind"], c["kind"][:3].upper()) if c["party"] else "NP" for c in columns
    ]
    lines = [
        "matrix: every message type from a permitted sender; the view each agency received",
        "  (F full, R redacted, S summary, - nothing, * the sender)",
        f"  {'message type':<30} {'sender':<26}" + "".join(f"{c:>4}" for c in codes),
    ]
    for row in matrix["rows"]:
        cells = "".join(f"{CELLS[row['views'][c['agency_id']]]:>4}" for c in columns)
        lines.append(f"  {row['message_type']:<30} {row['sender']:<26}{cells}")
    lines.append(
        "  columns: "
        + ", ".join(f"{code} {c['agency_id']}" for code, c in zip(codes, columns, strict=True))
    )
    return lines
