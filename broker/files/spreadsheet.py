"""CSV that a spreadsheet opens as data, never as formulas: the audit export's, and the
import rows agency adapters render.

Names and free text in the broker come from other agencies' systems. A cell that
starts with ``=``, ``+``, ``-``, ``@``, TAB, CR or LF (also after leading spaces) is
run as a formula by common spreadsheets, so every CSV the product writes goes through
``neutral_cell`` (OWASP's rule: such a cell is prefixed with a single quote) and is
written with every cell quoted, so a CR or LF inside a cell cannot start a row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

# The characters a spreadsheet takes as the start of a formula (TAB, CR and LF because
# some spreadsheets strip them before looking).
FORMULA_STARTS = frozenset("=+-@\t\r\n")


def neutral_cell(value: Any) -> str:
    """``value`` as CSV cell text a spreadsheet shows as text: prefixed with ``'`` if it
    would start a formula, as it is, or after leading whitespace. Idempotent."""
    text = "" if value is None else str(value)
    if text[:1] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document: ``header``, then each row, every cell neutralised and quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow([neutral_cell(h) for h in header])
    writer.writerows([neutral_cell(c) for c in row] for row in rows)
    return out.getvalue()
