"""The annual report's tables as text, CSV, JSON and HTML (docs/statistics.md §4-§5).

Every function here is pure: it takes an ``AnnualTables`` and returns what a person or a
program reads, computing the totals and percentages from the cells (a cell that is not
applicable, None, counts 0). Nothing is copied from a published report.

A cell that is not applicable prints "-" (``not_applicable="dash"``), or 0
(``not_applicable="zero"``) for an area whose report prints 0 there, as Staffordshire's
does. A figure that is unknown rather than not applicable (the rate per 100,000 without
a population, the percentage of an empty table) always prints "-", never 0: it is not
a count of nobody.

The JSON document has the shape of one area's entry of ``data/published-tables.json``
so that a report can be compared with a published one cell for cell; the HTML page
stands alone (no script, no external asset, its style inline) and ``html_fragment`` is
its body, for the console to embed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any, Literal

from broker.statistics.annual import AnnualTables, Grid, percent

NotApplicable = Literal["dash", "zero"]
# What a cell that is not there prints: "-" for not applicable (unless "zero"), and
# always for a figure that cannot be computed.
DASH = "-"

# Human names of the civil orders (table 4), by ``CivilOrderKind`` value.
ORDER_NAMES = {
    "sopo": "Sexual Offences Prevention Order (SOPO)",
    "notification-order": "Notification Order",
    "foreign-travel-order": "Foreign Travel Order",
    "shpo": "Sexual Harm Prevention Order (SHPO)",
    "sro": "Sexual Risk Order",
}
# The keys the published tables use for the same orders (published-tables.json).
ORDER_KEYS = {
    "sopo": "SOPO",
    "notification-order": "NO",
    "foreign-travel-order": "FTO",
    "shpo": "SHPO",
    "sro": "SRO",
}
# The published tables' names for the tables, used by CSV and JSON alike.
SNAPSHOT = "snapshot_31_march"
YEARLY = "yearly_l2_l3"
RSO_BREACHES = "rso_breach_notification"
ORDERS = "orders_imposed"
RETURNED_LICENCE = "returned_to_custody_breach_licence"
RETURNED_SOPO = "returned_to_custody_breach_sopo"
RSO_RATE = "rso_per_100k"
PCT_LEVEL1 = "pct_level1"
TOTAL = "total"
CSV_HEADER = ("table", "row", "column", "value")
# The tables' titles, as the published reports give them (table 1's names its date).
TABLE_2 = "Table 2. Level 2 and 3 offenders during the year"
TABLE_3 = "Table 3. RSOs cautioned or convicted for breach of notification requirements"
TABLE_4 = "Table 4. Orders imposed by the courts on Category 1 offenders"
TABLE_5A = "Table 5a. Level 2 and 3 offenders returned to custody for breach of licence"
TABLE_5B = "Table 5b. Level 2 and 3 offenders returned to custody for breach of a SOPO"


def _na(value: int | None, not_applicable: NotApplicable) -> str:
    """A count as printed: a None cell is "-" or "0", as the area's report prints it."""
    if value is None:
        return "0" if not_applicable == "zero" else DASH
    return str(value)


def _known(value: object) -> str:
    """A figure that may be unknown (never "not applicable"): "-" when it is None."""
    return DASH if value is None else str(value)


def _pct(value: Decimal | None) -> str:
    """A percentage as printed: "93.1%", or "-" when there is none."""
    return DASH if value is None else f"{value}%"


def _row_total(row: Mapping[int, int | None]) -> int:
    return sum(n or 0 for n in row.values())


def _column_total(grid: Grid, category: int) -> int | None:
    """A category's total over the levels; None (not applicable) when every cell of
    the column is, as table 5b's Categories 2 and 3 are."""
    cells = [row.get(category) for row in grid.values()]
    if all(n is None for n in cells):
        return None
    return sum(n or 0 for n in cells)


def _grid_total(grid: Grid) -> int:
    return sum(_row_total(row) for row in grid.values())


def _level_key(level: int) -> str:
    return f"L{level}"


def _snapshot_heading(tables: AnnualTables) -> str:
    return f"MAPPA-eligible offenders in the community on 31 March {tables.year.last.year}"


def _rate_note(tables: AnnualTables) -> str:
    """Where the rate per 100,000 comes from, or why there is none."""
    if tables.population is None:
        return (
            "no population aged 10 and over is known for this area and year "
            "(give one with --population N)"
        )
    source = tables.population_source or "population given for this report"
    return f"population aged 10 and over {tables.population:,} ({source})"


# ---------------------------------------------------------------- text


def _aligned(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows under ``header``: the first column left-aligned, the others right-aligned
    (they are numbers), two spaces between columns, no trailing spaces."""
    body = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    lines = []
    for r in body:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _grid_rows(
    grid: Grid, categories: Sequence[int], not_applicable: NotApplicable
) -> list[list[str]]:
    """A level-by-category grid as rows with a total column and a total row."""
    rows = [
        [f"Level {level}"]
        + [_na(row.get(cat), not_applicable) for cat in categories]
        + [str(_row_total(row))]
        for level, row in grid.items()
    ]
    rows.append(
        ["Total"]
        + [_na(_column_total(grid, cat), not_applicable) for cat in categories]
        + [str(_grid_total(grid))]
    )
    return rows


def _grid_header(categories: Sequence[int]) -> list[str]:
    return ["", *(f"Category {c}" for c in categories), "Total"]


def as_text(tables: AnnualTables, *, not_applicable: NotApplicable = "dash") -> str:
    """The tables as a person reads them in a terminal, in the published reports' order
    (no newline at the end: ``print`` adds it)."""
    cats = tables.categories
    out = [f"MAPPA annual report {tables.year.label}: {tables.area}", ""]

    def grid(title: str, g: Grid) -> None:
        out.extend([title, *_aligned(_grid_header(cats), _grid_rows(g, cats, not_applicable)), ""])

    grid(f"Table 1. {_snapshot_heading(tables)}", tables.snapshot)
    out.extend([f"Percentage at Level 1: {_pct(tables.pct_level1)}", ""])
    grid(TABLE_2, tables.yearly)
    out.extend(
        [
            f"{TABLE_3}: {tables.rso_breaches}",
            "",
            TABLE_4,
            *_aligned(["", "Number"], ([_order_name(k), str(n)] for k, n in tables.orders.items())),
            "",
        ]
    )
    grid(
        TABLE_5A,
        tables.returned_licence,
    )
    grid(
        TABLE_5B,
        tables.returned_sopo,
    )
    out.extend(
        [
            f"Table 6. RSOs per 100,000 population: {_known(tables.rso_per_100k)}",
            f"  Category 1 RSOs on 31 March {tables.snapshot_total(category=1)}; "
            f"{_rate_note(tables)}",
            "",
            f"Read: {sum(tables.read.values())} messages about {tables.subjects} subjects",
            *(f"  {kind}: {n}" for kind, n in sorted(tables.read.items())),
            f"Left out: {sum(tables.left_out.values()) or 'none'}",
            *(f"  {code}: {n}" for code, n in sorted(tables.left_out.items())),
            f"Data problems: {len(tables.problems) or 'none'}",
            *(f"  {p.subject_ref}: {p.what}" for p in tables.problems),
        ]
    )
    return "\n".join(out)


def _order_name(kind: str) -> str:
    return ORDER_NAMES.get(kind, kind)


# ---------------------------------------------------------------- CSV


def _grid_cells(
    table: str, grid: Grid, categories: Sequence[int], not_applicable: NotApplicable
) -> list[tuple[str, str, str, str]]:
    """One CSV row per cell of ``grid``, then its row, column and grand totals."""
    rows = []
    for level, row in grid.items():
        for cat in categories:
            rows.append(
                (table, _level_key(level), f"category {cat}", _na(row.get(cat), not_applicable))
            )
        rows.append((table, _level_key(level), TOTAL, str(_row_total(row))))
    for cat in categories:
        total = _na(_column_total(grid, cat), not_applicable)
        rows.append((table, TOTAL, f"category {cat}", total))
    rows.append((table, TOTAL, TOTAL, str(_grid_total(grid))))
    return rows


def as_csv(tables: AnnualTables, *, not_applicable: NotApplicable = "dash") -> str:
    """One row per cell, ``table,row,column,value`` (header first): the grids by level
    and category with their totals, then one row per figure (scalars have an empty row
    and column; an order's row is its published key, SOPO, NO, FTO, SHPO or SRO)."""
    cats = tables.categories
    rows: list[tuple[str, str, str, str]] = [CSV_HEADER]
    rows += _grid_cells(SNAPSHOT, tables.snapshot, cats, not_applicable)
    rows.append((PCT_LEVEL1, "", "", _known(tables.pct_level1)))
    rows += _grid_cells(YEARLY, tables.yearly, cats, not_applicable)
    rows.append((RSO_BREACHES, "", "", str(tables.rso_breaches)))
    rows += [(ORDERS, ORDER_KEYS.get(k, k), "", str(n)) for k, n in tables.orders.items()]
    rows += _grid_cells(RETURNED_LICENCE, tables.returned_licence, cats, not_applicable)
    rows += _grid_cells(RETURNED_SOPO, tables.returned_sopo, cats, not_applicable)
    rows.append(("population", "", "", _known(tables.population)))
    rows.append((RSO_RATE, "", "", _known(tables.rso_per_100k)))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


# ---------------------------------------------------------------- JSON


def _lists(grid: Grid, categories: Sequence[int]) -> dict[str, list[int | None]]:
    return {_level_key(lv): [row.get(cat) for cat in categories] for lv, row in grid.items()}


def as_json(tables: AnnualTables) -> dict[str, Any]:
    """The tables in the shape of one area's entry of ``published-tables.json`` (lists
    by category, null where not applicable), plus the report's own figures."""
    cats = tables.categories
    pct = tables.pct_level1
    return {
        "area": tables.area,
        "year": tables.year.label,
        SNAPSHOT: _lists(tables.snapshot, cats),
        YEARLY: _lists(tables.yearly, cats),
        RSO_BREACHES: tables.rso_breaches,
        ORDERS: {ORDER_KEYS.get(k, k): n for k, n in tables.orders.items()},
        RETURNED_LICENCE: _lists(tables.returned_licence, cats),
        # Category 1 only (the others are not applicable), as the published tables give it.
        RETURNED_SOPO: {_level_key(lv): row.get(1) for lv, row in tables.returned_sopo.items()},
        RSO_RATE: tables.rso_per_100k,
        PCT_LEVEL1: None if pct is None else float(pct),
        "population": tables.population,
        "population_source": tables.population_source,
        "read": dict(sorted(tables.read.items())),
        "left_out": dict(sorted(tables.left_out.items())),
        "subjects": tables.subjects,
        "problems": [{"subject_ref": p.subject_ref, "what": p.what} for p in tables.problems],
    }


# ---------------------------------------------------------------- HTML

# The page's only style, inline: the page loads nothing. The classes are GOV.UK
# Frontend's, so the fragment looks like the rest of the console when it is embedded
# there (the console's own stylesheet styles them; it allows no inline style).
_STYLE = """
body{font-family:Arial,sans-serif;color:#0b0c0c;margin:2rem;max-width:60rem}
.govuk-table{border-collapse:collapse;margin:0 0 2rem;width:100%}
.govuk-table__caption{font-weight:bold;text-align:left;padding-bottom:.5rem}
.govuk-table__header,.govuk-table__cell{border-bottom:1px solid #b1b4b6;
 padding:.4rem 1rem .4rem 0;text-align:left}
.govuk-table__header--numeric,.govuk-table__cell--numeric{text-align:right}
.mappa-chart text{font-family:Arial,sans-serif;font-size:14px;fill:#0b0c0c}
.mappa-chart rect{fill:#1d70b8}
"""
_TABLE = "govuk-table"
_CHART_WIDTH = 640
_BAR_HEIGHT = 28
_BAR_GAP = 12
# Left of the bars: "Level n"; right of them, room for "1,908 (93.1%)".
_LABEL_WIDTH = 80
_VALUE_WIDTH = 140


def _th(text: str, *, scope: str, numeric: bool = False) -> str:
    cls = "govuk-table__header" + (" govuk-table__header--numeric" if numeric else "")
    return f'<th scope="{scope}" class="{cls}">{escape(text)}</th>'


def _td(text: str, *, numeric: bool = True) -> str:
    cls = "govuk-table__cell" + (" govuk-table__cell--numeric" if numeric else "")
    return f'<td class="{cls}">{escape(text)}</td>'


def _html_table(
    caption: str,
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: bool = True,
) -> str:
    """A table with a caption, a header row of column headers and one row header per
    row; its other cells right-aligned when they are ``numeric``."""
    head = "".join(
        _th(h, scope="col", numeric=numeric and i > 0)
        if h
        else '<td class="govuk-table__header"></td>'
        for i, h in enumerate(header)
    )
    body = "".join(
        '<tr class="govuk-table__row">'
        + _th(r[0], scope="row")
        + "".join(_td(c, numeric=numeric) for c in r[1:])
        + "</tr>"
        for r in rows
    )
    return (
        f'<table class="{_TABLE}"><caption class="govuk-table__caption">{escape(caption)}'
        f'</caption><thead class="govuk-table__head"><tr class="govuk-table__row">{head}'
        f'</tr></thead><tbody class="govuk-table__body">{body}</tbody></table>'
    )


def level_chart(tables: AnnualTables) -> str:
    """The level split of table 1 as an inline SVG bar chart: a bar per level, each
    labelled with its count and percentage in text, so it reads without colour."""
    total = tables.snapshot_total()
    levels = list(tables.snapshot)
    bar_room = _CHART_WIDTH - _LABEL_WIDTH - _VALUE_WIDTH
    parts = []
    summary = []
    for i, level in enumerate(levels):
        count = tables.snapshot_total(level=level)
        label = f"{count:,} ({_pct(percent(count, total))})"
        summary.append(f"Level {level}: {label}")
        y = i * (_BAR_HEIGHT + _BAR_GAP)
        # A level with anyone in it shows at least a sliver, so a bar of 2 among 2,000
        # is not read as none; its label gives the number either way.
        width = max(1, round(bar_room * count / total)) if count else 0
        text_y = y + _BAR_HEIGHT * 2 // 3
        parts.append(
            f'<text x="0" y="{text_y}">Level {level}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{width}" height="{_BAR_HEIGHT}"></rect>'
            f'<text x="{_LABEL_WIDTH + width + 8}" y="{text_y}">{escape(label)}</text>'
        )
    height = len(levels) * (_BAR_HEIGHT + _BAR_GAP)
    title = f"Offenders in the community on 31 March {tables.year.last.year}, by level"
    desc = "; ".join(summary)
    return (
        # Presentation attributes, not a style: the console's policy refuses inline styles.
        f'<svg class="mappa-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'font-family="Arial, sans-serif" font-size="14" fill="#0b0c0c" '
        f'width="{_CHART_WIDTH}" height="{height}" viewBox="0 0 {_CHART_WIDTH} {height}" '
        f'aria-label="{escape(title)}: {escape(desc)}">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(parts)}</svg>"
    )


def html_fragment(tables: AnnualTables, *, not_applicable: NotApplicable = "dash") -> str:
    """The report's body (chart, tables, what was read and left out, data problems),
    without a page around it: for the console to embed. Every text is escaped."""
    cats = tables.categories
    header = _grid_header(cats)

    def grid(caption: str, g: Grid) -> str:
        return _html_table(caption, header, _grid_rows(g, cats, not_applicable))

    read_rows = [[kind, str(n)] for kind, n in sorted(tables.read.items())]
    left_rows = [[code, str(n)] for code, n in sorted(tables.left_out.items())]
    problem_rows = [[p.subject_ref, p.what] for p in tables.problems]
    sections = [
        f'<h2 class="govuk-heading-m">{escape(_snapshot_heading(tables))}, by level</h2>',
        f"<figure>{level_chart(tables)}</figure>",
        grid(f"Table 1. {_snapshot_heading(tables)}", tables.snapshot),
        f'<p class="govuk-body">Percentage at Level 1: {escape(_pct(tables.pct_level1))}</p>',
        grid(TABLE_2, tables.yearly),
        _html_table(
            TABLE_3,
            ["", "Number"],
            [["Cautioned or convicted", str(tables.rso_breaches)]],
        ),
        _html_table(
            TABLE_4,
            ["", "Number"],
            ([_order_name(k), str(n)] for k, n in tables.orders.items()),
        ),
        grid(
            TABLE_5A,
            tables.returned_licence,
        ),
        grid(
            TABLE_5B,
            tables.returned_sopo,
        ),
        _html_table(
            "Table 6. RSOs per 100,000 population",
            ["", "Number"],
            [
                ["Category 1 RSOs on 31 March", str(tables.snapshot_total(category=1))],
                ["RSOs per 100,000 population", _known(tables.rso_per_100k)],
            ],
        ),
        f'<p class="govuk-body">{escape(_rate_note(tables).capitalize())}.</p>',
        _html_table(
            f"Messages read: {sum(tables.read.values())} about {tables.subjects} subjects",
            ["Message type", "Number"],
            read_rows,
        ),
        _html_table(
            f"Messages left out: {sum(tables.left_out.values()) or 'none'}",
            ["Refusal code", "Number"],
            left_rows,
        ),
        _html_table(
            f"Data problems: {len(tables.problems) or 'none'}",
            ["Subject reference", "Problem"],
            problem_rows,
            numeric=False,
        ),
    ]
    return "\n".join(sections)


def as_html(tables: AnnualTables, *, not_applicable: NotApplicable = "dash") -> str:
    """A complete HTML5 page of the report: no script, no external asset, its style
    inline; the body is ``html_fragment``. No newline at the end: ``print`` adds it."""
    title = f"MAPPA annual report {tables.year.label}: {tables.area}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{escape(title)}</h1>\n"
        f"{html_fragment(tables, not_applicable=not_applicable)}\n"
        "</main>\n</body>\n</html>"
    )
