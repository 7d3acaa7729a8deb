"""The population aged 10 and over of each police force area (docs/statistics.md,
table 6), from the table shipped in ``data/population.json``.

The table is data: keyed by area (as in ``coordinator.AREA``), then by the year of the
ONS mid-year estimate, each row ``{"population": N, "source": "..."}``. A reporting
year ``YYYY-YY`` uses the mid-``YYYY`` estimate. A row without a named source is not a
figure we can print beside a rate, so the table is refused
(``ConfigurationError``) rather than half read.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from broker.errors import ConfigurationError
from broker.statistics.annual import ReportYear

TABLE = "population.json"
# Far above any police force area's population (the largest, the Metropolitan
# Police's, is under ten million): a figure past it is a typing error, not a count.
MAX_POPULATION = 100_000_000


def _figure(area: str, year: str, row: Any) -> tuple[int, str]:
    """One row of the table, checked: a positive whole number and a named source."""
    population = row.get("population") if isinstance(row, dict) else None
    source = row.get("source") if isinstance(row, dict) else None
    if (
        not isinstance(population, int)
        or isinstance(population, bool)
        or not 0 < population <= MAX_POPULATION
        or not isinstance(source, str)
        or not source.strip()
    ):
        raise ConfigurationError(f"{TABLE}: {area} {year} needs a population and its source")
    return population, source


# area (lower case) -> year of the mid-year estimate -> (population, source).
PopulationTable = dict[str, dict[int, tuple[int, str]]]


def parse_table(document: Any) -> PopulationTable:
    """The table of ``document`` (the JSON of ``data/population.json``): area -> year of
    the estimate -> (population, source). Raises ConfigurationError for a table of
    another shape, or a row without a figure and its source."""
    areas = document.get("areas") if isinstance(document, dict) else None
    if not isinstance(areas, dict):
        raise ConfigurationError(f"{TABLE}: no 'areas' table")
    table: PopulationTable = {}
    for area, years in areas.items():
        if not isinstance(years, dict):
            raise ConfigurationError(f"{TABLE}: {area} is not a table of years")
        if not all(len(year) == 4 and year.isdigit() for year in years):
            raise ConfigurationError(f"{TABLE}: {area}'s years are written like 2013")
        table[area.lower()] = {int(year): _figure(area, year, row) for year, row in years.items()}
    return table


@cache
def shipped_table() -> PopulationTable:
    """The table shipped in ``data/population.json``, read once."""
    text = resources.files("broker.statistics").joinpath("data", TABLE).read_text("utf-8")
    return parse_table(json.loads(text))


def population_of(
    area: str, year: ReportYear, *, table: PopulationTable | None = None
) -> tuple[int, str] | None:
    """The population aged 10 and over of ``area``'s police force area at mid-``year``
    (the ONS estimate for the reporting year's first year) and its source, or None where
    the table (the shipped one unless given) has no such row."""
    rows = shipped_table() if table is None else table
    return rows.get(area.strip().lower(), {}).get(year.start)
