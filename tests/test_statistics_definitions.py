"""The definitions of docs/statistics.md, case by case, without a broker: what a
history counts as, and what the report refuses to place (its data problems)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import pytest

from broker.statistics.annual import AnnualTables, ReportYear, annual_tables, last_reporting_year
from broker.statistics.plan import Plan, PlannedMessage, PlannedTransfer
from broker.statistics.timeline import Held
from schemas.common import Role, ViewKind
from schemas.messages import NotificationBreachOutcome
from schemas.messages.base import view_model
from tests.test_annual_report import AREA, NEIGHBOUR, YEAR, Person


def ref(pnc: str) -> str:
    return hashlib.sha256(pnc.encode()).hexdigest()


def tables_of(
    messages: list[PlannedMessage],
    transfers: list[PlannedTransfer] | None = None,
    extra: list[Held] | None = None,
) -> AnnualTables:
    plan = Plan(AREA, NEIGHBOUR, YEAR, messages, transfers or [])
    held, records = plan.held(ref)
    return annual_tables(held + (extra or []), records, area=AREA, year=YEAR)


def test_the_year_is_written_as_published_and_ends_on_31_march() -> None:
    year = ReportYear.parse("2013-14")
    assert (year.first, year.last, year.label) == (date(2013, 4, 1), date(2014, 3, 31), "2013-14")
    assert date(2014, 3, 31) in year
    assert date(2014, 4, 1) not in year
    for bad in ("2013-15", "2013/14", "13-14", "2013-14 "):
        with pytest.raises(ValueError, match="written like 2013-14"):
            ReportYear.parse(bad)
    assert last_reporting_year(date(2026, 12, 6)).label == "2025-26"
    assert last_reporting_year(date(2027, 3, 31)).label == "2025-26"
    # The orders the law allowed each year, and Category 4 from 2022-23.
    assert ReportYear.parse("2014-15").orders[-2:] != ReportYear.parse("2013-14").orders[-2:]
    assert ReportYear.parse("2022-23").categories == (1, 2, 3, 4)


def test_a_category_3_offender_at_level_1_is_not_counted_but_named() -> None:
    at_1 = Person(20, 3)
    tables = tables_of([at_1.eligible("2012-01-01")])
    assert tables.snapshot[1][3] is None
    assert tables.snapshot_total() == 0
    assert [p.what for p in tables.problems] == ["a Category 3 offender at level 1 on 31 March"]
    assert tables.problems[0].subject_ref == ref(at_1.pnc)


def test_returns_for_breach_of_an_order_are_counted_only_with_a_sopo_in_force() -> None:
    lapsed, violent = Person(21, 1), Person(22, 2)
    expired = lapsed.order("sopo", "2010-01-01")
    body = expired.body.model_copy(update={"expires_on": "2013-01-01"})
    tables = tables_of(
        [
            lapsed.eligible("2009-01-01"),
            PlannedMessage(Role.POLICE, body),
            lapsed.level(2, "2013-04-01"),
            lapsed.returned("2013-06-01", 2, "order"),
            violent.eligible("2009-01-01"),
            violent.level(3, "2013-04-01"),
            violent.returned("2013-06-01", 3, "order"),
        ]
    )
    assert tables.returned_sopo == {2: {1: 0, 2: None, 3: None}, 3: {1: 0, 2: None, 3: None}}
    assert sorted(p.what for p in tables.problems) == [
        "returned to custody on 2013-06-01 for breach of an order: no SOPO",
        "returned to custody on 2013-06-01 for breach of an order: not Category 1",
    ]


def test_messages_about_a_subject_never_made_eligible_are_named() -> None:
    stray = Person(23, 1)
    tables = tables_of([stray.level(2, "2013-05-01")])
    assert tables.yearly[2][1] == 0
    assert [p.what for p in tables.problems] == ["messages about a subject with no eligibility"]


def test_an_undated_breach_outcome_is_named_not_counted() -> None:
    rso = Person(24, 1)
    summary = view_model(NotificationBreachOutcome, ViewKind.SUMMARY)
    fields: dict[str, Any] = {
        "message_type": "notification-breach-outcome",
        "schema_version": 1,
        "subject": rso.eligible("2010-01-01").body.subject,
        "area": AREA,
        "category": 1,
        "level": 1,
        "outcome": "caution",
    }
    # Built without validation: a summary that lost its date, as no sender can send.
    body = summary.model_construct(**fields)
    held = Held("police", "undated", ref(rso.pnc), "z", body)
    tables = tables_of([rso.eligible("2010-01-01")], extra=[held])
    assert tables.rso_breaches == 0
    assert [p.what for p in tables.problems] == ["a breach outcome undated"]


def test_the_registry_dates_a_move_and_a_message_about_it_is_not_read_again() -> None:
    mover = Person(25, 1)
    said = mover.body(
        "area-transfer",
        stage="completed",
        to_area=NEIGHBOUR,
        move_date="2014-01-10",
        transfer_due_by="2014-02-10",
        receiving_lead=f"police.{NEIGHBOUR}",
        reason="moving",
    )
    messages = [mover.eligible("2010-01-01"), PlannedMessage(Role.POLICE, said)]
    # The message alone moves the case on its move date: gone by 31 March.
    assert tables_of(messages).snapshot[1][1] == 0
    # The unit's registry says the move completed after 31 March: still the area's.
    late = PlannedTransfer(mover.pnc, AREA, NEIGHBOUR, date(2014, 1, 10), date(2014, 4, 3), True)
    assert tables_of(messages, [late]).snapshot[1][1] == 1


def test_an_exit_outlasts_an_eligibility_of_the_same_day() -> None:
    person = Person(26, 2)
    exit_ = PlannedMessage(
        Role.PROBATION,
        person.body(
            "exit-from-mappa",
            reason="risk-no-longer-requires-mappa",
            exit_date="2013-09-01",
            lead_agency=f"probation.{AREA}",
        ),
    )
    same_day = [person.eligible("2010-01-01"), exit_, person.eligible("2013-09-01")]
    assert tables_of(same_day).snapshot_total() == 0
    next_day = [person.eligible("2010-01-01"), exit_, person.eligible("2013-09-02")]
    assert tables_of(next_day).snapshot[1][2] == 1


def test_a_correction_of_a_correction_leaves_only_the_last() -> None:
    person = Person(27, 2)
    messages = [
        person.eligible("2010-01-01"),
        person.level(3, "2013-05-01"),
        person.level(2, "2013-05-01", corrects=1),
        person.level(3, "2013-05-02", corrects=2),
    ]
    tables = tables_of(messages)
    assert (tables.yearly[2][2], tables.yearly[3][2]) == (0, 1)
    assert tables.snapshot[3][2] == 1


def test_an_order_made_when_its_law_had_none_is_named_not_counted() -> None:
    rso = Person(28, 1)
    tables = tables_of([rso.eligible("2010-01-01"), rso.order("shpo", "2013-06-01")])
    assert tables.orders["sopo"] == 0
    assert "shpo" not in tables.orders
    assert [p.what for p in tables.problems] == ["a shpo made on 2013-06-01, when the law had none"]


def test_a_level_held_for_no_whole_day_is_not_counted_in_the_year() -> None:
    """Raised to 3 and exited on the same day: the state on that day is the exit's."""
    person = Person(29, 2)
    exit_ = PlannedMessage(
        Role.PROBATION,
        person.body(
            "exit-from-mappa",
            reason="risk-no-longer-requires-mappa",
            exit_date="2013-09-01",
            lead_agency=f"probation.{AREA}",
        ),
    )
    messages = [
        person.eligible("2010-01-01"),
        person.level(2, "2013-05-01"),
        person.level(3, "2013-09-01"),
        exit_,
    ]
    tables = tables_of(messages)
    assert (tables.yearly[2][2], tables.yearly[3][2]) == (1, 0)
