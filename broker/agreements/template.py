"""Loading agreements: the packaged template and documents on disk."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from broker.agreements.check import MAX_AGREEMENT_BYTES, MAX_AGREEMENT_JSON_BYTES
from broker.errors import ConfigurationError, SchemaError, invalid
from broker.files.strict import read_yaml
from schemas.common import Role, from_data
from schemas.directory import AgencyEntry
from schemas.isa import Agreement, LawfulBasis, Party

if TYPE_CHECKING:
    from broker.trust.directory import Directory


def template_data() -> dict[str, Any]:
    """A fresh copy of the packaged template (the caller fills it in)."""
    return copy.deepcopy(_template())


@functools.cache
def _template() -> dict[str, Any]:
    # Parsed once: it ships with the code, and every agreement made from it starts here.
    text = resources.files("broker").joinpath("data/isa-template.yaml").read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SchemaError("agreement template is not a mapping")
    return data


def lawful_basis_for(agency: AgencyEntry) -> Party:
    """Law enforcement processing for the RA and its co-ordination unit; UK GDPR for the rest."""
    if agency.role.is_responsible_authority or agency.role is Role.COORDINATOR:
        return Party(
            agency_id=agency.agency_id,
            role=agency.role,
            lawful_basis=LawfulBasis.DPA_2018_PART_3,
            basis_detail="CJA 2003 s325: Responsible Authority duty",
        )
    return Party(
        agency_id=agency.agency_id,
        role=agency.role,
        lawful_basis=LawfulBasis.UK_GDPR,
        basis_detail="Art 6(1)(e) public task; CJA 2003 s325(3) duty to co-operate",
    )


def agreement_for_area(
    area: str, parties: Sequence[AgencyEntry], *, agreement_id: str | None = None
) -> Agreement:
    """The default agreement, instantiated for one area and its parties."""
    data = template_data()
    data["id"] = agreement_id or f"mappa-default.{area}"
    data["areas"] = [area]
    data["parties"] = [lawful_basis_for(p).model_dump(mode="json") for p in parties]
    try:
        return from_data(Agreement, data)
    except ValidationError as exc:
        raise invalid(exc, "agreement template") from None


def default_agreements(directory: Directory) -> list[Agreement]:
    """The default agreement of every area the directory covers, every agency of the
    area a party: what a deployment runs under when given no agreement documents."""
    areas = sorted({a for entry in directory.agencies() for a in entry.areas})
    return [agreement_for_area(area, directory.agencies(area=area)) for area in areas]


def read_agreement(path: Path) -> Agreement:
    """An agreement document (YAML or JSON) from disk: the agreement alone, or a signed
    agreement (its ``document`` is read; the signature is checked where it is loaded
    into a deployment's data directory, `mappa isa`). Raises ``ConfigurationError``:
    ``FileRefused`` (``file.*``) for a file that cannot be read or is not acceptable YAML
    (see ``broker.files.strict``), ``config.invalid`` for one that is not an agreement."""
    data = read_yaml(path, max_bytes=MAX_AGREEMENT_BYTES, max_expanded=MAX_AGREEMENT_JSON_BYTES)
    if isinstance(data, dict) and isinstance(data.get("document"), dict):
        data = data["document"]
    try:
        return from_data(Agreement, data)
    except ValidationError as exc:
        raise invalid(exc, f"agreement {path}", kind=ConfigurationError) from None
