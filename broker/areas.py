"""The 42 MAPPA areas of England and Wales (``broker/data/areas.json``).

Source: ``shared/data/areas.json`` of the mappa-broker brief, one area per police
force area with a stable code used in topic names and agreements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from broker.errors import ConfigurationError


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    country: str


@cache
def all_areas() -> dict[str, Area]:
    raw = json.loads(resources.files("broker").joinpath("data/areas.json").read_text())
    return {a["code"]: Area(a["code"], a["name"], a["country"]) for a in raw["areas"]}


def area(code: str) -> Area:
    found = all_areas().get(code)
    if found is None:
        raise ConfigurationError(
            f"unknown MAPPA area {code!r}; see `mappa areas` for the 42 codes",
            code="area.unknown",
        )
    return found
