"""The annual report's renderings (broker/statistics/render.py) and the shipped
population table (broker/statistics/population.py), from tables built directly."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import pytest

from broker.errors import ConfigurationError
from broker.statistics import population
from broker.statistics.annual import AnnualTables, Grid, Problem, ReportYear
from broker.statistics.render import as_csv, as_html, as_json, as_text, html_fragment

YEAR = ReportYear(2013)
# A population that gives Hampshire's published 101 per 100,000 for its 1,715
# Category 1 RSOs (1715e5 / 1_700_000 = 100.88): chosen for the test, not an estimate.
TEST_POPULATION = 1_700_000
TEST_SOURCE = "test figure"


def _published(key: str) -> dict[str, Any]:
    text = (
        resources.files("broker.statistics")
        .joinpath("data", "published-tables.json")
        .read_text("utf-8")
    )
    entry: dict[str, Any] = json.loads(text)["areas"][key]
    return entry


def _grid(rows: dict[str, list[int | None]]) -> Grid:
    return {int(lv[1:]): dict(enumerate(cells, start=1)) for lv, cells in rows.items()}


def _tables(key: str = "Hampshire_IoW_2013_14", **changes: Any) -> AnnualTables:
    """AnnualTables holding a published entry's cells, as if the report had counted them."""
    entry = _published(key)
    sopo = entry["returned_to_custody_breach_sopo"]
    names = {"SOPO": "sopo", "NO": "notification-order", "FTO": "foreign-travel-order"}
    fields: dict[str, Any] = {
        "area": "hampshire",
        "year": YEAR,
        "snapshot": _grid(entry["snapshot_31_march"]),
        "yearly": _grid(entry["yearly_l2_l3"]),
        "rso_breaches": entry["rso_breach_notification"],
        "orders": {names[k]: n for k, n in entry["orders_imposed"].items()},
        "returned_licence": _grid(entry["returned_to_custody_breach_licence"]),
        "returned_sopo": {lv: {1: sopo[f"L{lv}"], 2: None, 3: None} for lv in (2, 3)},
        "population": TEST_POPULATION,
        "population_source": TEST_SOURCE,
        "read": {"eligibility-notified": 2400, "level-set": 300},
        "left_out": {"signature": 2},
        "subjects": 2400,
        "problems": [Problem("ref-0001", "a Category 3 offender at level 1 on 31 March")],
    }
    fields.update(changes)
    return AnnualTables(**fields)


# ---------------------------------------------------------------- JSON


def test_json_reproduces_the_published_entry_cell_for_cell() -> None:
    published = _published("Hampshire_IoW_2013_14")
    document = as_json(_tables())
    for key, value in published.items():
        if key in ("pct_level1_stated", "_check"):
            continue
        assert document[key] == value, key
    # Computed, never copied: the report printed 94.
    assert document["pct_level1"] == 93.1
    assert document["population"] == TEST_POPULATION
    assert document["problems"] == [
        {"subject_ref": "ref-0001", "what": "a Category 3 offender at level 1 on 31 March"}
    ]
    json.dumps(document)  # a JSON document, nothing Python-only in it


def test_json_rate_is_null_without_a_population() -> None:
    document = as_json(_tables(population=None, population_source=None))
    assert document["rso_per_100k"] is None
    assert "Table 6. RSOs per 100,000 population: -" in as_text(_tables(population=None))


# ---------------------------------------------------------------- text


def _line(text: str, heading: str, row: str) -> list[str]:
    """The cells of ``row`` in the table under ``heading`` in the text rendering."""
    block = text.split(heading, 1)[1].split("\n\n", 1)[0]
    for line in block.splitlines():
        if line.startswith(row):
            return line[len(row) :].split()
    raise AssertionError(f"no {row} under {heading}")


def test_text_prints_not_applicable_as_dash_or_zero_and_computes_totals() -> None:
    heading = "Table 1. MAPPA-eligible offenders in the community on 31 March 2014"
    dash = as_text(_tables())
    zero = as_text(_tables(), not_applicable="zero")
    assert _line(dash, heading, "Level 1") == ["1626", "282", "-", "1908"]
    assert _line(zero, heading, "Level 1") == ["1626", "282", "0", "1908"]
    assert _line(dash, heading, "Total") == ["1715", "323", "11", "2049"]
    assert "Percentage at Level 1: 93.1%" in dash
    assert _line(dash, "Table 4.", "Sexual Offences Prevention Order (SOPO)") == ["51"]
    assert "Table 6. RSOs per 100,000 population: 101" in dash
    assert "ref-0001: a Category 3 offender at level 1 on 31 March" in dash
    assert "  signature: 2" in dash
    # Table 5b: Category 1 only, the others not applicable.
    assert _line(dash, "breach of a SOPO", "Level 2") == ["2", "-", "-", "2"]
    assert _line(dash, "breach of a SOPO", "Total") == ["2", "-", "-", "2"]


def test_an_empty_table_has_no_percentage_rather_than_zero() -> None:
    empty: Grid = {lv: {1: 0, 2: 0, 3: None if lv == 1 else 0} for lv in (1, 2, 3)}
    tables = _tables(snapshot=empty)
    assert "Percentage at Level 1: -\n" in as_text(tables)
    assert as_json(tables)["pct_level1"] is None
    page = as_html(tables)
    _parse(page)
    assert "Level 1: 0 (-)" in page
    assert 'width="0"' in page


def test_text_has_a_category_4_column_from_2022() -> None:
    grid: Grid = {lv: {1: 1, 2: 1, 3: None if lv == 1 else 1, 4: 1} for lv in (1, 2, 3)}
    tables = _tables(year=ReportYear(2022), snapshot=grid)
    heading = "on 31 March 2023"
    assert _line(as_text(tables), heading, "Level 1") == ["1", "1", "-", "1", "3"]


# ---------------------------------------------------------------- CSV


def _csv_cells(text: str) -> dict[tuple[str, str, str], str]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["table", "row", "column", "value"]
    cells = {(t, r, c): v for t, r, c, v in rows[1:]}
    assert len(cells) == len(rows) - 1, "a cell is given twice"
    return cells


def test_csv_parses_back_to_the_same_cells() -> None:
    tables = _tables()
    cells = _csv_cells(as_csv(tables))
    for level, row in tables.snapshot.items():
        for cat, n in row.items():
            assert cells[("snapshot_31_march", f"L{level}", f"category {cat}")] == (
                "-" if n is None else str(n)
            )
    assert cells[("snapshot_31_march", "total", "total")] == "2049"
    assert cells[("snapshot_31_march", "L1", "total")] == "1908"
    assert cells[("pct_level1", "", "")] == "93.1"
    assert cells[("rso_breach_notification", "", "")] == "171"
    assert cells[("orders_imposed", "SOPO", "")] == "51"
    assert cells[("returned_to_custody_breach_sopo", "L2", "category 2")] == "-"
    assert cells[("rso_per_100k", "", "")] == "101"


def test_csv_prints_not_applicable_as_zero_when_asked() -> None:
    cells = _csv_cells(as_csv(_tables(), not_applicable="zero"))
    assert cells[("snapshot_31_march", "L1", "category 3")] == "0"
    # Unknown is not "not applicable": a rate without a population stays "-".
    cells = _csv_cells(as_csv(_tables(population=None), not_applicable="zero"))
    assert cells[("rso_per_100k", "", "")] == "-"


# ---------------------------------------------------------------- HTML


class _Page(HTMLParser):
    """The tables of a page (caption, rows of cell texts), its SVGs' attributes and
    titles, and whether every element it opened was closed."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tables: list[dict[str, Any]] = []
        self.svgs: list[dict[str, str | None]] = []
        self.svg_titles: list[str] = []
        self.scripts = 0
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "script":
            self.scripts += 1
        elif tag == "table":
            self.tables.append({"caption": None, "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th", "caption") or (tag == "title" and "svg" in self.open):
            self._text = []
        elif tag == "svg":
            self.svgs.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if self._text is None:
            return
        text = "".join(self._text).strip()
        if tag == "caption":
            self.tables[-1]["caption"] = text
        elif tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(text)
        elif tag == "title":
            self.svg_titles.append(text)
        else:
            return
        self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.open == [], "an element was never closed"
    return parser


def _html_row(parser: _Page, caption_starts: str, row: str) -> list[str]:
    table = next(t for t in parser.tables if t["caption"].startswith(caption_starts))
    return next(r[1:] for r in table["rows"] if r[0] == row)


def test_html_is_a_well_formed_page_with_captions_and_a_readable_chart() -> None:
    page = as_html(_tables())
    assert page.startswith("<!DOCTYPE html>")
    parser = _parse(page)
    assert parser.scripts == 0
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert len(parser.tables) >= 7
    assert all(t["caption"] for t in parser.tables)
    assert "scope=" in page
    [svg] = parser.svgs
    assert svg["role"] == "img"
    assert svg["aria-label"]
    assert parser.svg_titles == ["Offenders in the community on 31 March 2014, by level"]
    # The chart's labels say the counts and percentages in text.
    assert "1,908 (93.1%)" in page
    assert "139 (6.8%)" in page
    # Two of 2,049 still shows a bar.
    assert '<rect x="80" y="80" width="1"' in page
    assert _html_row(parser, "Table 1.", "Level 1") == ["1626", "282", "-", "1908"]
    assert _html_row(parser, "Table 1.", "Total") == ["1715", "323", "11", "2049"]


def test_html_prints_not_applicable_as_zero_when_asked() -> None:
    parser = _parse(as_html(_tables(), not_applicable="zero"))
    assert _html_row(parser, "Table 1.", "Level 1") == ["1626", "282", "0", "1908"]


def test_html_escapes_every_text() -> None:
    hostile = "<script>alert(1)</script>"
    tables = _tables(area=hostile, problems=[Problem("ref-<b>", hostile)])
    page = as_html(tables)
    assert "<script>" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;" in page
    parser = _parse(page)
    assert parser.scripts == 0
    assert _html_row(parser, "Data problems", "ref-<b>") == [hostile]


def test_fragment_is_the_body_without_a_page() -> None:
    fragment = html_fragment(_tables())
    assert "<html" not in fragment
    assert "<style" not in fragment
    assert fragment in as_html(_tables())
    _parse(fragment)


# ---------------------------------------------------------------- population


def test_population_of_an_unknown_area_is_none() -> None:
    assert population.population_of("atlantis", YEAR) is None


def test_every_shipped_population_names_its_source() -> None:
    table = population.shipped_table()
    for years in table.values():
        for figure, source in years.values():
            assert figure > 0
            assert source.strip()


@pytest.mark.parametrize(
    "row",
    [
        {"population": 1_000_000},
        {"population": 1_000_000, "source": " "},
        {"population": 0, "source": "ONS"},
        {"population": "1000000", "source": "ONS"},
        {"population": True, "source": "ONS"},
        {"population": 10**9, "source": "ONS"},
    ],
)
def test_a_population_row_without_a_figure_and_source_is_refused(row: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="needs a population and its source"):
        population.parse_table({"areas": {"somewhere": {"2013": row}}})


def test_a_population_table_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no 'areas'"):
        population.parse_table({"rows": []})
    with pytest.raises(ConfigurationError, match="table of years"):
        population.parse_table({"areas": {"somewhere": [1]}})
    with pytest.raises(ConfigurationError, match="written like 2013"):
        population.parse_table({"areas": {"somewhere": {"2013-14": {}}}})


def test_population_is_looked_up_by_area_and_the_years_first_mid_year() -> None:
    table = population.parse_table(
        {"areas": {"Somewhere": {"2013": {"population": 1_000, "source": "ONS mid-2013"}}}}
    )
    assert table == {"somewhere": {2013: (1_000, "ONS mid-2013")}}
    found = population.population_of(" SOMEWHERE ", ReportYear(2013), table=table)
    assert found == (1_000, "ONS mid-2013")
    assert population.population_of("somewhere", ReportYear(2014), table=table) is None
