"""What every message type shares, and how its views are derived.

A message type is one frozen model. Fields that carry victim identities, health
detail or intelligence sources are marked ``Sensitive``; fields a summary keeps
are marked ``InSummary``. The redacted view drops every sensitive field; the
summary view keeps the subject, category, level and the ``InSummary`` fields.
View models are derived from those marks, so a new field cannot slip into a
lesser view by forgetting to list it: it must be marked to appear in a summary
and it must be marked to leave a redacted view.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    create_model,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema

from schemas.common import AreaCode, Frozen, RecordDate, ViewKind


class Sensitivity(enum.StrEnum):
    VICTIM = "victim"
    HEALTH = "health"
    INTELLIGENCE = "intelligence"


# Named redaction sets: which sensitivity categories a redacted view removes. An
# agreement names one per redacted rule; ``standard`` is the DOMAIN "R" (no victim
# identities, health detail or intelligence source). The narrower sets leave more in
# for a recipient whose function needs it (e.g. a health body that must see health
# detail, but never a victim's identity).
STANDARD_REDACTION = "standard"
REDACTION_SETS: dict[str, frozenset[Sensitivity]] = {
    STANDARD_REDACTION: frozenset(Sensitivity),
    "victim": frozenset({Sensitivity.VICTIM}),
    "victim-intelligence": frozenset({Sensitivity.VICTIM, Sensitivity.INTELLIGENCE}),
    "victim-health": frozenset({Sensitivity.VICTIM, Sensitivity.HEALTH}),
}


def redaction_set(name: str) -> frozenset[Sensitivity]:
    try:
        return REDACTION_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown redaction set {name!r}; known: {', '.join(sorted(REDACTION_SETS))}"
        ) from None


@dataclass(frozen=True)
class Sensitive:
    """Field metadata: removed from the redacted and summary views."""

    category: Sensitivity


@dataclass(frozen=True)
class InSummary:
    """Field metadata: kept in the summary view."""


# Joiners some scripts write names with; every other invisible format character (zero
# width spaces, direction overrides that make a name read backwards) is refused.
NAME_JOINERS = frozenset("\u200c\u200d")


def person_name(text: str) -> str:
    """``text`` if it can be a person's name: some letter, and no control, format,
    private-use or unassigned character. Raises ValueError naming the rule."""
    if not any(unicodedata.category(c).startswith("L") for c in text):
        raise ValueError("a name has at least one letter")
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") or (
            unicodedata.category(c) == "Cf" and c not in NAME_JOINERS
        ):
            raise ValueError("a name holds no control or invisible characters")
    return text


PersonName = Annotated[
    str, StringConstraints(min_length=1, max_length=120), AfterValidator(person_name)
]


def whole_number(value: Any) -> Any:
    """``value`` if it is a whole number as JSON writes one: not true or false (which
    Python counts as 1 and 0), not 2.0, not text. Raises ValueError naming the rule."""
    if isinstance(value, bool) or not isinstance(value, int):
        # pydantic reports a ValueError as a validation error; a TypeError would escape.
        raise ValueError("must be a whole number, not text, a fraction or true/false")  # noqa: TRY004
    return value


class WholeNumberEnum(enum.IntEnum):
    """An IntEnum that a document gives as a whole number only: pydantic alone takes
    ``true`` as 1 and ``2.0`` as 2, even in strict mode."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(whole_number, handler(source))


PncId = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,4}/[0-9]{1,7}[A-Z]$")]
VisorRef = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{4,16}$")]
ProbationCrn = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{6}$")]
PrisonNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{4}[A-Z]{2}$")]


class SubjectIdentifiers(Frozen):
    """Who the message is about. The PNC id is the key every agency can match on."""

    pnc_id: PncId
    visor_ref: VisorRef | None = None
    probation_crn: ProbationCrn | None = None
    prison_number: PrisonNumber | None = None
    name: PersonName
    date_of_birth: RecordDate


class Category(WholeNumberEnum):
    REGISTERED_SEXUAL_OFFENDER = 1
    VIOLENT_OFFENDER = 2
    OTHER_DANGEROUS_OFFENDER = 3
    TERRORISM_RISK = 4


class Level(WholeNumberEnum):
    ORDINARY = 1
    MULTI_AGENCY = 2
    SENIOR_OVERSIGHT = 3


# Fields every view keeps: without them the recipient cannot tell which case it is.
ALWAYS_KEPT = frozenset({"message_type", "schema_version", "subject", "area", "category", "level"})


class MessageBody(Frozen):
    """Base of every canonical message type.

    Each subclass declares ``message_type: Literal[...]`` and ``schema_version:
    Literal[...]`` with defaults, so every body names its own type and version.
    """

    message_type: str
    schema_version: int
    subject: SubjectIdentifiers
    area: AreaCode
    category: Category
    level: Level = Field(description="MAPPA management level; 1 where not yet set")

    @field_validator("schema_version", mode="before")
    @classmethod
    def _whole_version(cls, value: Any) -> Any:
        return whole_number(value)


def sensitivity_of(model: type[BaseModel], field_name: str) -> Sensitivity | None:
    for meta in model.model_fields[field_name].metadata:
        if isinstance(meta, Sensitive):
            return meta.category
    return None


def in_summary(model: type[BaseModel], field_name: str) -> bool:
    return any(isinstance(m, InSummary) for m in model.model_fields[field_name].metadata)


def view_fields(
    model: type[MessageBody], kind: ViewKind, redaction: str = STANDARD_REDACTION
) -> frozenset[str]:
    """The fields of ``model`` a ``kind`` view keeps; ``redaction`` names the set of
    sensitivity categories a redacted view removes (ignored by the other kinds)."""
    names = set(model.model_fields)
    if kind is ViewKind.FULL:
        return frozenset(names)
    if kind is ViewKind.REDACTED:
        removed = redaction_set(redaction)
        return frozenset(n for n in names if sensitivity_of(model, n) not in removed)
    return frozenset(
        n
        for n in names
        if n in ALWAYS_KEPT or (in_summary(model, n) and not sensitivity_of(model, n))
    )


@cache
def view_model(
    model: type[MessageBody], kind: ViewKind, redaction: str = STANDARD_REDACTION
) -> type[MessageBody]:
    """The model a recipient of ``kind`` validates against: lesser views forbid the rest."""
    if kind is ViewKind.FULL:
        return model
    keep = view_fields(model, kind, redaction)
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in model.model_fields.items() if name in keep
    }
    suffix = "" if kind is not ViewKind.REDACTED or redaction == STANDARD_REDACTION else redaction
    derived = create_model(
        f"{model.__name__}{kind.value.capitalize()}{suffix.title().replace('-', '')}",
        __base__=MessageBody,
        __config__=None,
        __module__=model.__module__,
        **fields,
    )
    return derived


def derive_view(
    message: MessageBody, kind: ViewKind, redaction: str = STANDARD_REDACTION
) -> dict[str, Any]:
    """The JSON body of ``message`` as a recipient of ``kind`` may see it."""
    keep = view_fields(type(message), kind, redaction)
    return message.model_dump(mode="json", include=set(keep))


def type_name(model: type[MessageBody]) -> str:
    name = model.model_fields["message_type"].default
    if not isinstance(name, str):
        raise TypeError(f"{model.__name__} declares no message_type default")
    return name


def type_version(model: type[MessageBody]) -> int:
    version = model.model_fields["schema_version"].default
    if not isinstance(version, int):
        raise TypeError(f"{model.__name__} declares no schema_version default")
    return version
