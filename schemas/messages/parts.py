"""Value objects that several message types carry."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from schemas.common import Frozen, ShortText

Postcode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$")]


class Address(Frozen):
    line1: ShortText
    line2: ShortText | None = None
    town: ShortText
    postcode: Postcode


class VictimDetail(Frozen):
    """A victim or potential victim. Never leaves the full view."""

    name: ShortText
    relationship: ShortText
    address: Address | None = None
