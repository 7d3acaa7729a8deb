"""Tables of where agency exports keep the parts of canonical messages.

Exports differ mostly in names: where a record keeps the person, the MAPPA state
and each part of a form, how it writes dates and codes. An adapter states those
differences as tables (``SubjectColumns`` for the person and MAPPA state of every
record, and one table per message form that several exports share); the tables
here do the reading, and report a missing or mistyped part the way ``to_canonical``
turns into a ``SchemaError`` naming it. Received messages go the other way:
``AlertColumns`` lays one out as a row of a CSV alert import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agency_adapters.base import (
    FieldRule,
    detail,
    enum_code,
    flat_text,
    import_row,
    name_part,
    optional_text,
    uk_date,
    whole_number,
)
from schemas.common import ViewKind
from schemas.messages import MessageBody

# A part's place in a record: a dotted path into nested objects ("referral.date"), or
# a CSV column's name. A "?" at the end: the record may leave the last step out, and
# the part is then none (None, or no victims).
OPTIONAL = "?"
_ABSENT: Any = object()
# How a table reads a part, where the part has no reading of its own.
Read = Callable[[Any], Any]


def _value(record: Mapping[str, Any], path: str, absent: Any = None) -> Any:
    # Plain indexing, so a missing or mistyped step raises what to_canonical reports
    # as "missing or mistypes field", as the hand-written mappings did.
    *steps, last = path.removesuffix(OPTIONAL).split(".")
    value: Any = record
    for step in steps:
        value = value[step]
    return value.get(last, absent) if path.endswith(OPTIONAL) else value[last]


def _put(
    out: dict[str, Any],
    name: str,
    record: Mapping[str, Any],
    path: str | None,
    read: Read | None = None,
    *,
    absent: Any = None,
) -> None:
    if path is None:
        return
    value = _value(record, path, _ABSENT)
    if value is _ABSENT:
        out[name] = absent
    else:
        out[name] = value if read is None else read(value)


def mappa_code(text: str, prefix: str) -> int:
    """A register code such as nDelius's "M1" (category) or "L2" (level) as its number.

    Raises ``FieldRule`` unless ``text`` is ``prefix`` followed by one or two ASCII
    digits (str.isdigit and int() take any script's digits: "L٢" is not a code).
    """
    if not (isinstance(text, str) and re.fullmatch(f"{re.escape(prefix)}[0-9]{{1,2}}", text)):
        raise FieldRule(f"expected a MAPPA code like {prefix}1")
    return int(text[1:])


@dataclass(frozen=True, kw_only=True)
class SubjectColumns:
    """Where an export keeps whom a record is about and their MAPPA state, and how it writes them.

    Every record an export publishes starts with these parts; ``about`` reads them.
    Each place is a path (see ``OPTIONAL``); the defaults are where most exports keep
    them. Dates and MAPPA codes are written the export's way, so its other tables
    read theirs through this one.
    """

    pnc: str = "pnc"
    # Other references the export holds for the person: canonical subject field to path.
    refs: Mapping[str, str] = field(default_factory=dict)
    # A tuple names the name's parts (forenames, surname), joined with a space.
    name: str | tuple[str, ...]
    dob: str = "dateOfBirth"
    # Where the MAPPA area, category and level are.
    mappa: tuple[str, str, str] = ("mappa.area", "mappa.category", "mappa.level")
    # The export's date parser to ISO 8601 (uk_date), or None where its dates are ISO
    # already: they go to the message as written, and the message model checks them.
    date: Callable[[str], str] | None
    # The prefixes of register codes ("M1", "L2") where the export writes category
    # and level that way, not as numbers.
    code_prefixes: tuple[str, str] | None = None
    # NOMIS keeps names in capitals; messages carry them as people write them.
    names_in_capitals: bool = False

    def about(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical ``subject``, ``area``, ``category`` and ``level`` of ``record``.

        Raises KeyError, TypeError or AttributeError for a missing or mistyped field,
        and ``FieldRule`` for a name part that is not text, a value that is not a MAPPA
        code or whole number, or a date not in the export's format (``to_canonical``
        reports each as a SchemaError naming the field, never the value).
        """
        subject = {"pnc_id": _value(record, self.pnc)}
        for name, path in self.refs.items():
            _put(subject, name, record, path)
        subject["name"] = self._name(record)
        _put(subject, "date_of_birth", record, self.dob, self.read_date)
        data: dict[str, Any] = {"subject": subject}
        area, category, level = self.mappa
        _put(data, "area", record, area)
        _put(data, "category", record, category, self.read_category)
        _put(data, "level", record, level, self.read_level)
        return data

    def _name(self, record: Mapping[str, Any]) -> Any:
        if isinstance(self.name, str):
            return _value(record, self.name)
        parts = []
        for path in self.name:
            part = name_part(_value(record, path))
            parts.append(part.title() if self.names_in_capitals else part)
        return " ".join(parts)

    def read_date(self, text: str) -> str:
        """A date as the export writes it, in ISO 8601; raises SchemaError if it is not one."""
        return text if self.date is None else self.date(text)

    def read_optional_date(self, text: str | None) -> str | None:
        """An optional date as ``read_date`` reads it; blank is no date where dates are parsed."""
        if self.date is None:
            return text
        return self.date(text) if text else None

    def read_category(self, value: Any) -> int:
        """A MAPPA category as the export writes it, as its number; raises FieldRule if not one."""
        return self._number(value, 0)

    def read_level(self, value: Any) -> int:
        """A MAPPA level as the export writes it, as its number; raises FieldRule if not one."""
        return self._number(value, 1)

    def _number(self, value: Any, which: int) -> int:
        return (
            whole_number(value)
            if self.code_prefixes is None
            else mappa_code(value, self.code_prefixes[which])
        )


@dataclass(frozen=True, kw_only=True)
class ReferralColumns:
    """Where an export keeps the parts of a MAPPA A referral (a ``level-referral``).

    A JSON export keeps the form in one object, ``within``, mostly under the form's
    own headings (the defaults); a table names the parts its export keeps elsewhere,
    each a path within that object (see ``OPTIONAL``). A CSV row keeps them beside
    the subject's columns (``row``). Dates and levels are read as ``subject``'s
    export writes them, the risk of serious harm as an agency code ("VERY_HIGH"),
    the rest as they are, unless ``convert`` names a reading for the part's path.
    The last four parts are ones some exports do not carry (None: this one does not).
    """

    subject: SubjectColumns = field(kw_only=False)
    # The path of the object holding the form; "" for a CSV row, which holds it itself.
    within: str = "referral"
    referred_on: str = "date"
    requested_level: str = "levelRequested"
    reason: str = "reason"
    risk: str
    summary: str = "summary"
    referrer: str
    release_or_hearing_date: str | None = None
    victims: str | None = None
    health_notes: str | None = None
    intelligence_source: str | None = None
    # A part's own reading, by its path without "?": raises FieldRule for a value it refuses.
    convert: Mapping[str, Read] = field(default_factory=dict)

    @classmethod
    def row(
        cls,
        *,
        pnc: str,
        name: str | tuple[str, ...],
        dob: str,
        area: str,
        category: str,
        level: str,
        convert: Mapping[str, Read] | None = None,
        **parts: str,
    ) -> ReferralColumns:
        """The table of a CSV export, whose row holds the subject's columns beside the form's.

        DtC agencies' systems export referrals as flat rows that differ only in their
        column names, so every part is named; dates are dd/mm/yyyy. Raises TypeError
        for a part that is not one.
        """
        subject = SubjectColumns(
            pnc=pnc, name=name, dob=dob, mappa=(area, category, level), date=uk_date
        )
        # A row cannot leave a cell out: an optional column left blank holds nothing.
        blanks = {
            p.removesuffix(OPTIONAL): optional_text for p in parts.values() if p.endswith(OPTIONAL)
        }
        return cls(subject, within="", convert=blanks | dict(convert or {}), **parts)

    def read(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The ``level-referral`` message data in ``record``; raises as ``SubjectColumns.about``."""
        form = _value(record, self.within) if self.within else record
        subject = self.subject
        data = subject.about(record)
        parts: list[tuple[str, str | None, Read | None]] = [
            ("referred_on", self.referred_on, subject.read_date),
            ("requested_level", self.requested_level, subject.read_level),
            ("reason", self.reason, None),
            ("risk_of_serious_harm", self.risk, enum_code),
            ("risk_summary", self.summary, None),
            ("release_or_hearing_date", self.release_or_hearing_date, subject.read_optional_date),
            ("referrer", self.referrer, None),
            ("victims", self.victims, None),
            ("health_notes", self.health_notes, None),
            ("intelligence_source", self.intelligence_source, None),
        ]
        for name, path, read in parts:
            own = self.convert.get(path.removesuffix(OPTIONAL)) if path else None
            # A record that names no victims has none; any other part it leaves out is None.
            _put(data, name, form, path, own or read, absent=[] if name == "victims" else None)
        return data


@dataclass(frozen=True, kw_only=True)
class PlanColumns:
    """Where an export keeps a risk management plan (a ``risk-management-plan-updated``).

    The plan is one object, ``within``, and the defaults are the keys most exports
    give its parts (paths within it, see ``OPTIONAL``); None: the export does not
    carry that part. Every export keys the plan's actions alike: ``heading``,
    ``owner``, ``action``, an optional ``due`` date and, where it records one, a
    ``status`` (open unless it says).
    """

    subject: SubjectColumns = field(kw_only=False)
    within: str = "plan"
    lead_agency: str = "leadAgency"
    updated_on: str = "updated"
    review_by: str = "reviewBy"
    actions: str = "actions"
    # False: the export records no status, so each action takes the message's (open).
    action_status: bool = True
    contingency: str | None = "contingency?"
    victim_safety_measures: str | None = "victimSafety?"
    treatment_detail: str | None = "interventions?"

    def read(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The plan's message data in ``record``; raises as ``SubjectColumns.about``."""
        plan = _value(record, self.within)
        subject = self.subject
        data = subject.about(record)
        _put(data, "lead_agency", plan, self.lead_agency)
        _put(data, "updated_on", plan, self.updated_on, subject.read_date)
        _put(data, "review_by", plan, self.review_by, subject.read_date)
        _put(data, "actions", plan, self.actions, self._actions)
        _put(data, "contingency", plan, self.contingency)
        _put(data, "victim_safety_measures", plan, self.victim_safety_measures, absent=[])
        _put(data, "treatment_detail", plan, self.treatment_detail)
        return data

    def _actions(self, actions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for a in actions:
            action = {
                "heading": enum_code(a["heading"]),
                "owner": a["owner"],
                "action": a["action"],
                "due": self.subject.read_optional_date(a.get("due")),
            }
            if self.action_status:
                action["status"] = enum_code(a.get("status", "OPEN"))
            out.append(action)
        return out


@dataclass(frozen=True, kw_only=True)
class ExitColumns:
    """Where an export keeps the end of MAPPA management for a case (an ``exit-from-mappa``).

    The form is one object, ``within``; the defaults are the keys the exports give
    its parts (paths within it, see ``OPTIONAL``). Dates are read as ``subject``'s
    export writes them, the reason as an agency code ("LICENCE_EXPIRED").
    """

    subject: SubjectColumns = field(kw_only=False)
    within: str
    reason: str = "reason"
    exit_date: str = "date"
    lead_agency: str = "leadAgency"
    notes: str = "notes?"
    continuing_arrangements: str = "continuing?"

    def read(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The exit's message data in ``record``; raises as ``SubjectColumns.about``."""
        form = _value(record, self.within)
        data = self.subject.about(record)
        _put(data, "reason", form, self.reason, enum_code)
        _put(data, "exit_date", form, self.exit_date, self.subject.read_date)
        _put(data, "lead_agency", form, self.lead_agency)
        _put(data, "notes", form, self.notes)
        _put(data, "continuing_arrangements", form, self.continuing_arrangements)
        return data


@dataclass(frozen=True, kw_only=True)
class AlertColumns:
    """Where a CSV alert import puts a received message: one row, every value a string.

    ``kind`` is the column that names the row's kind and the value it holds there;
    the message's own parts are flattened into the ``detail`` column. The defaults
    are the columns most imports have; None: the import has no such column.
    """

    kind: tuple[str, str] = ("AlertType", "MAPPA")
    pnc: str = "PNC"
    name: str = "Name"
    dob: str | None = "DOB"
    level: str | None = "MappaLevel"
    detail: str = "Details"

    def render(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """The import row for ``body`` as received in ``view``."""
        column, value = self.kind
        row = {column: value, self.pnc: body.subject.pnc_id, self.name: body.subject.name}
        if self.dob is not None:
            row[self.dob] = body.subject.date_of_birth
        if self.level is not None:
            row[self.level] = str(int(body.level))
        return import_row(
            row
            | {
                "Notice": body.message_type,
                "View": view.value,
                self.detail: flat_text(detail(body)),
            }
        )
