"""Value objects that several message types carry."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import StringConstraints

from schemas.common import Frozen, RecordDate, Role, ShortText
from schemas.messages.base import PersonName

Postcode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")]
# Clock time as agencies write curfews: 24-hour "HH:MM".
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
# ISO 3166-1 alpha-2, as travel notifications record a destination.
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Address(Frozen):
    line1: ShortText
    line2: ShortText | None = None
    town: ShortText
    postcode: Postcode


class VictimDetail(Frozen):
    """A victim or potential victim. Never leaves the full view."""

    name: PersonName
    relationship: ShortText
    address: Address | None = None


class Change(enum.StrEnum):
    """Whether a document records a first decision or a variation of one."""

    MADE = "made"
    VARIED = "varied"


class Action(Frozen):
    """One thing one agency has agreed to do, by when."""

    owner: Role
    action: ShortText
    due: RecordDate | None = None
