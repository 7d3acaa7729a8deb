"""Identifiers and vocabularies shared by every document kind."""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints

# Agency ids look like "police.staffordshire" or "housing.stoke-on-trent": a kind,
# a dot, a local name. They end up in topic names, audit rows and HPKE info, so the
# alphabet is small and the length bounded.
AGENCY_ID_PATTERN = r"^[a-z][a-z0-9-]{1,31}\.[a-z0-9][a-z0-9-]{0,62}$"
AgencyId = Annotated[str, StringConstraints(pattern=AGENCY_ID_PATTERN)]
AreaCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z-]{1,40}[a-z]$")]
# A key id is the hex SHA-256 prefix of the algorithm name and the raw public key.
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
# The pseudonymous subject reference: HMAC-SHA-256 of the subject id, hex.
SubjectRef = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


def _the_integer(value: object) -> object:
    """``value`` if it is a JSON integer: ``Literal[1]`` alone would take ``true`` (in
    Python, ``True == 1``) and ``1.0`` as the version 1, which no other reader would."""
    if type(value) is not int:
        raise ValueError("a version is an integer")
    return value


# The version of a format, exactly the integer 1 (docs/envelope.md §2.1).
VersionOne = Annotated[Literal[1], BeforeValidator(_the_integer)]


class Frozen(BaseModel):
    """Base of every document: immutable, strict, and no unknown fields."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


ModelT = TypeVar("ModelT", bound=BaseModel)


def from_data(model: type[ModelT], data: Any) -> ModelT:
    """Validate JSON-like Python data (an agency export, parsed YAML) by JSON rules.

    Strict models accept enum values and lists only from JSON, so external data
    goes through its JSON text: the same rules apply to a file and a record.
    """
    return model.model_validate_json(json.dumps(data))


class Role(enum.StrEnum):
    """What an agency is in MAPPA; decides its topic scope and its column in an ISA."""

    POLICE = "police"
    PROBATION = "probation"
    PRISON = "prison"
    COORDINATOR = "coordinator"
    YOUTH_OFFENDING = "youth-offending"
    SOCIAL_CARE = "social-care"
    HEALTH = "health"
    HOUSING = "housing"
    JOBCENTRE = "jobcentre"
    EDUCATION = "education"
    ELECTRONIC_MONITORING = "electronic-monitoring"
    IMMIGRATION = "immigration"

    @property
    def is_responsible_authority(self) -> bool:
        return self in RESPONSIBLE_AUTHORITY


RESPONSIBLE_AUTHORITY = frozenset({Role.POLICE, Role.PROBATION, Role.PRISON})


class ViewKind(enum.StrEnum):
    """How much of a message a recipient sees. Ordered: full > redacted > summary."""

    FULL = "full"
    REDACTED = "redacted"
    SUMMARY = "summary"

    @property
    def richness(self) -> int:
        return {ViewKind.SUMMARY: 1, ViewKind.REDACTED: 2, ViewKind.FULL: 3}[self]


class Classification(enum.StrEnum):
    OFFICIAL = "OFFICIAL"
    OFFICIAL_SENSITIVE = "OFFICIAL-SENSITIVE"


def _real_moment(text: str) -> str:
    """``text`` if it names a moment the calendar has (not 30 February, not second 60,
    not year 0). Raises ValueError."""
    parse_timestamp(text)
    return text


# Timestamps are strings in one exact form (UTC, milliseconds, "Z") so the bytes we
# sign are the bytes we parse: no time-zone spellings or precision to canonicalise. Each
# names a real moment, so that every later comparison of it can be made.
Timestamp = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
    ),
    AfterValidator(_real_moment),
]
# ASCII digits only: a pattern's \d would take any script's digits.
ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# The years a date in a record may fall in: every person, order and meeting the broker
# carries is within them, and date arithmetic on them (deadlines, working days) cannot
# run off the calendar.
MIN_YEAR, MAX_YEAR = 1900, 2200


def calendar_date(text: str) -> str:
    """``text`` if it names a day the calendar has (not 31 February, not month 13, not
    year 0); raises ValueError naming the rule, never the text."""
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a real calendar date") from None
    return text


def record_date(text: str) -> str:
    """``text`` if it is a calendar date in the years ``MIN_YEAR`` to ``MAX_YEAR``."""
    if not MIN_YEAR <= date.fromisoformat(calendar_date(text)).year <= MAX_YEAR:
        raise ValueError(f"must be a date in the years {MIN_YEAR} to {MAX_YEAR}")
    return text


# A day as yyyy-mm-dd that the calendar has. The pattern alone let 31 February through.
IsoDate = Annotated[str, StringConstraints(pattern=ISO_DATE_PATTERN), AfterValidator(calendar_date)]
# A day in a record about a person (birth, sentence, meeting, deadline): also bounded.
RecordDate = Annotated[IsoDate, AfterValidator(record_date)]
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]


def format_timestamp(moment: datetime) -> str:
    """The one spelling of a moment: UTC, millisecond precision, trailing Z."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be time-zone aware")
    u = moment.astimezone(UTC)
    # Formatted by hand: strftime is the slower way, on every record and audit event.
    # The year unpadded, as glibc's strftime wrote it.
    return (
        f"{u.year}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}."
        f"{u.microsecond // 1000:03d}Z"
    )


# format_timestamp's own spelling, which fromisoformat reads as strptime would, faster.
_OWN_SPELLING = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def parse_timestamp(text: str) -> datetime:
    """The moment ``text`` names (``yyyy-mm-ddThh:mm:ss.fff`` and a zone, ``Z`` or an
    offset), in UTC. Raises ValueError for anything else."""
    if _OWN_SPELLING.fullmatch(text):
        return datetime.fromisoformat(text).astimezone(UTC)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def now_timestamp() -> str:
    return format_timestamp(datetime.now(UTC))
