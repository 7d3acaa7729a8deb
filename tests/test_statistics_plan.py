"""The planned population yields the published tables exactly, and is a realistic one
(broker/statistics/plan.py, docs/statistics.md §6)."""

from __future__ import annotations

import copy
import hashlib
import re
from collections import defaultdict
from datetime import date
from typing import Any

import pytest

from broker.agreements.template import template_data
from broker.statistics.annual import AnnualTables, ReportYear, annual_tables
from broker.statistics.plan import Plan, PlannedMessage, published_tables
from broker.statistics.planning import plan_population
from broker.statistics.timeline import Held, Timeline, current
from schemas.messages import (
    BreachRecall,
    CivilOrderMade,
    EligibilityNotified,
    ExitFromMappa,
    LevelSet,
    NotificationBreachOutcome,
)
from schemas.messages.parts import Change
from schemas.messages.registration import BreachOutcome
from schemas.messages.release import CustodyEvent
from schemas.transfer import TransferRecord

YEAR = ReportYear.parse("2013-14")
# (target key, area, neighbour)
AREAS = (
    ("Staffordshire_2013_14", "staffordshire", "west-mercia"),
    ("Hampshire_IoW_2013_14", "hampshire", "thames-valley"),
)
PNC = re.compile(r"^[0-9]{2,4}/[0-9]{1,7}[A-Z]$")
ORDER_COLUMNS = {"SOPO": "sopo", "NO": "notification-order", "FTO": "foreign-travel-order"}
# The date each message type is about (docs/statistics.md §2 and §4).
DATE_FIELD = {
    "eligibility-notified": "sentence_date",
    "level-set": "effective_date",
    "exit-from-mappa": "exit_date",
    "release-scheduled": "release_date",
    "breach-recall": "event_date",
    "notification-breach-outcome": "outcome_date",
    "civil-order-made": "made_on",
    "rso-notification-recorded": "notified_on",
}


def subject_ref(pnc_id: str) -> str:
    return hashlib.sha256(pnc_id.encode()).hexdigest()


def target_of(key: str) -> dict[str, Any]:
    target: dict[str, Any] = published_tables()["areas"][key]
    return target


@pytest.fixture(scope="module", params=AREAS, ids=[a[1] for a in AREAS])
def planned(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Plan]:
    key, area, neighbour = request.param
    target = target_of(key)
    return target, plan_population(target, area=area, neighbour=neighbour, year=YEAR, seed=2014)


def tables_of(plan: Plan) -> AnnualTables:
    held, records = plan.held(subject_ref)
    return annual_tables(held, records, area=plan.area, year=YEAR)


def mismatches(tables: AnnualTables, target: dict[str, Any]) -> list[str]:
    """Every cell where ``tables`` differs from ``target``, named; "-" (null) and 0 are
    both "none" where the definitions make a cell not applicable."""
    wrong: list[str] = []

    def check(name: str, got: int | None, want: int | None) -> None:
        if (got or 0) != (want or 0):
            wrong.append(f"{name}: computed {got}, published {want}")

    for level in (1, 2, 3):
        for cat in (1, 2, 3):
            want = target["snapshot_31_march"][f"L{level}"][cat - 1]
            check(f"31 March L{level} cat {cat}", tables.snapshot[level][cat], want)
    if tables.snapshot[1][3] is not None:
        wrong.append("31 March L1 cat 3 should be not applicable")
    for level in (2, 3):
        for cat in (1, 2, 3):
            want = target["yearly_l2_l3"][f"L{level}"][cat - 1]
            check(f"year L{level} cat {cat}", tables.yearly[level][cat], want)
            want = target["returned_to_custody_breach_licence"][f"L{level}"][cat - 1]
            check(
                f"returned, licence L{level} cat {cat}", tables.returned_licence[level][cat], want
            )
        check(
            f"returned, SOPO L{level}",
            tables.returned_sopo[level][1],
            target["returned_to_custody_breach_sopo"][f"L{level}"],
        )
        if tables.returned_sopo[level][2] is not None or tables.returned_sopo[level][3] is not None:
            wrong.append(f"returned, SOPO L{level} cats 2 and 3 should be not applicable")
    check("RSO breaches", tables.rso_breaches, target["rso_breach_notification"])
    want_orders = {ORDER_COLUMNS[k]: v for k, v in target["orders_imposed"].items()}
    if tables.orders != want_orders:
        wrong.append(f"orders: computed {tables.orders}, published {want_orders}")
    wrong += [f"data problem: {p.what}" for p in tables.problems]
    return wrong


def test_the_plan_yields_the_published_tables_cell_for_cell(
    planned: tuple[dict[str, Any], Plan],
) -> None:
    target, plan = planned
    assert mismatches(tables_of(plan), target) == []


def test_a_wrong_cell_is_named() -> None:
    """The comparison can fail: a plan for one area does not give the other's tables."""
    target, other = target_of(AREAS[0][0]), target_of(AREAS[1][0])
    plan = plan_population(target, area="staffordshire", neighbour="west-mercia", year=YEAR)
    wrong = mismatches(tables_of(plan), other)
    assert "31 March L1 cat 1: computed 887, published 1626" in wrong


def test_a_seed_gives_the_same_plan_and_another_seed_another() -> None:
    key, area, neighbour = AREAS[0]

    def dump(seed: int) -> list[tuple[str, str, int | None]]:
        plan = plan_population(target_of(key), area=area, neighbour=neighbour, year=YEAR, seed=seed)
        return [(m.sender.value, m.body.model_dump_json(), m.corrects) for m in plan.messages]

    assert dump(7) == dump(7)
    assert dump(7) != dump(8)


def test_every_subject_has_one_valid_unique_pnc_id_and_a_unique_name_and_birth(
    planned: tuple[dict[str, Any], Plan],
) -> None:
    _, plan = planned
    person: dict[str, tuple[str, str]] = {}
    for m in plan.messages:
        s = m.body.subject
        assert PNC.match(s.pnc_id)
        assert person.setdefault(s.pnc_id, (s.name, s.date_of_birth)) == (s.name, s.date_of_birth)
    assert len(set(person.values())) == len(person)
    assert {t.pnc_id for t in plan.transfers} <= set(person)


def test_each_message_comes_from_a_role_that_may_publish_it(
    planned: tuple[dict[str, Any], Plan],
) -> None:
    _, plan = planned
    may = {p["message_type"]: set(p["roles"]) for p in template_data()["publishers"]}
    for m in plan.messages:
        assert m.sender.value in may[m.body.message_type], m.body.message_type
        assert m.body.area == plan.area


def history(plan: Plan) -> dict[str, list[tuple[int, PlannedMessage]]]:
    by_pnc: dict[str, list[tuple[int, PlannedMessage]]] = defaultdict(list)
    for i, m in enumerate(plan.messages):
        by_pnc[m.body.subject.pnc_id].append((i, m))
    return by_pnc


def dated(m: PlannedMessage) -> date:
    return date.fromisoformat(getattr(m.body, DATE_FIELD[m.body.message_type]))


def test_a_case_is_published_about_only_while_the_area_owns_it(
    planned: tuple[dict[str, Any], Plan],
) -> None:
    """Moved out: every message dated before the move. Moved in: every message but the
    eligibility (dated by its sentence) on or after the completion."""
    _, plan = planned
    by_pnc = history(plan)
    for t in plan.transfers_out:
        if t.completed_on in YEAR:
            assert all(dated(m) < t.completed_on for _, m in by_pnc[t.pnc_id])
    for t in plan.transfers_in:
        later = [m for _, m in by_pnc[t.pnc_id] if not isinstance(m.body, EligibilityNotified)]
        assert all(dated(m) >= t.completed_on for m in later)
    assert plan.transfers_in
    assert plan.transfers_out


def timelines(plan: Plan) -> dict[str, Timeline]:
    held, records = plan.held(subject_ref)
    by_ref: dict[str, list[Held]] = defaultdict(list)
    for h in current(held):
        by_ref[h.subject_ref].append(h)
    moves: dict[str, list[TransferRecord]] = defaultdict(list)
    for r in records:
        moves[r.subject_ref].append(r)
    return {
        pnc: Timeline.of(subject_ref(pnc), by_ref[subject_ref(pnc)], moves[subject_ref(pnc)])
        for pnc in history(plan)
    }


def test_the_plan_holds_every_edge_case(planned: tuple[dict[str, Any], Plan]) -> None:
    target, plan = planned
    area = plan.area
    by_pnc = history(plan)
    lines = timelines(plan)
    march_30, april_2 = date(2014, 3, 30), date(2014, 4, 2)

    # Transferred in on 30 March, out on 2 April, and counted on 31 March.
    ins = {t.pnc_id for t in plan.transfers_in if t.completed_on == march_30}
    outs = {t.pnc_id for t in plan.transfers_out if t.completed_on == april_2}
    both = ins & outs
    assert both
    assert any(
        (s := lines[p].state_on(YEAR.last)).counts_for(area) and not s.in_custody for p in both
    )

    # Levels 2, 3 and 2 again within the year.
    def in_year_levels(pnc: str) -> list[int]:
        return [int(m.body.level) for _, m in by_pnc[pnc] if isinstance(m.body, LevelSet)]

    assert any(
        lines[p].state_on(YEAR.first).level == 2 and in_year_levels(p)[-2:] == [3, 2]
        for p in by_pnc
    )

    # An exit, then a second eligibility, both in the year.
    def re_registered(pnc: str) -> bool:
        exits = [dated(m) for _, m in by_pnc[pnc] if isinstance(m.body, ExitFromMappa)]
        again = [dated(m) for _, m in by_pnc[pnc] if isinstance(m.body, EligibilityNotified)]
        return any(e in YEAR and any(e < a and a in YEAR for a in again) for e in exits)

    assert any(re_registered(p) for p in by_pnc)

    # A breach cautioned and one convicted.
    outcomes = {
        m.body.outcome
        for m in plan.messages
        if isinstance(m.body, NotificationBreachOutcome) and dated(m) in YEAR
    }
    assert outcomes == {BreachOutcome.CAUTION, BreachOutcome.CONVICTION}

    # Returns to custody for breach of licence and of a SOPO, at each level the target has.
    returns: set[tuple[str, int]] = set()
    for pnc, messages in by_pnc.items():
        for _, m in messages:
            body = m.body
            if isinstance(body, BreachRecall) and body.event is CustodyEvent.RETURNED_TO_CUSTODY:
                level = lines[pnc].state_on(dated(m)).level
                returns.add((body.breach_of, level))
                assert int(body.level) == level
    for level in (2, 3):
        if any(target["returned_to_custody_breach_licence"][f"L{level}"]):
            assert ("licence", level) in returns
        if target["returned_to_custody_breach_sopo"][f"L{level}"]:
            assert ("order", level) in returns

    # A message corrected by a later one from the same sender, saying something else.
    corrections = [(i, m) for i, m in enumerate(plan.messages) if m.corrects is not None]
    assert corrections
    for i, m in corrections:
        assert m.corrects is not None
        wrong = plan.messages[m.corrects]
        assert m.corrects < i
        assert wrong.sender == m.sender
        assert wrong.body.subject == m.body.subject
        assert wrong.body != m.body

    # A SOPO varied in the year (not counted) and one made before it.
    assert any(
        isinstance(m.body, CivilOrderMade) and m.body.change is Change.VARIED for m in plan.messages
    )


def test_only_the_correction_is_counted() -> None:
    """The corrected message, left in force in place of its correction, changes the
    tables: so the plan's tables are right because only the correction counts."""
    key, area, neighbour = AREAS[0]
    target = target_of(key)
    plan = plan_population(target, area=area, neighbour=neighbour, year=YEAR)
    i = next(i for i, m in enumerate(plan.messages) if m.corrects is not None)
    wrong = plan.messages[plan.messages[i].corrects or 0]
    plan.messages[i] = PlannedMessage(sender=wrong.sender, body=wrong.body)
    assert mismatches(tables_of(plan), target) != []


def impossible(change: str) -> dict[str, Any]:
    target = copy.deepcopy(target_of(AREAS[0][0]))
    if change == "returned-above-yearly":
        target["returned_to_custody_breach_licence"]["L3"][0] = target["yearly_l2_l3"]["L3"][0] + 1
    elif change == "sopo-returns-above-yearly":
        target["returned_to_custody_breach_sopo"]["L3"] = target["yearly_l2_l3"]["L3"][0] + 1
    elif change == "snapshot-above-yearly":
        target["snapshot_31_march"]["L2"][1] = target["yearly_l2_l3"]["L2"][1] + 1
    elif change == "category-3-at-level-1":
        target["snapshot_31_march"]["L1"][2] = 1
    elif change == "negative":
        target["rso_breach_notification"] = -1
    elif change == "missing":
        del target["orders_imposed"]
    elif change == "category-4":
        target["snapshot_31_march"]["L1"].append(2)
    elif change == "beyond-any-area":
        target["snapshot_31_march"]["L1"][0] = 10**9
    elif change == "unknown-order":
        target["orders_imposed"]["ASBO"] = 1
    return target


@pytest.mark.parametrize(
    "change",
    [
        "returned-above-yearly",
        "sopo-returns-above-yearly",
        "snapshot-above-yearly",
        "category-3-at-level-1",
        "negative",
        "missing",
        "category-4",
        "unknown-order",
        "beyond-any-area",
    ],
)
def test_tables_no_population_yields_are_refused(change: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        plan_population(
            impossible(change), area="staffordshire", neighbour="west-mercia", year=YEAR
        )


def test_an_order_the_year_did_not_have_is_refused() -> None:
    target = target_of(AREAS[0][0])
    later = ReportYear.parse("2016-17")
    with pytest.raises(ValueError, match="had no foreign-travel-order"):
        plan_population(target, area="staffordshire", neighbour="west-mercia", year=later)


def test_each_message_says_the_level_in_force_on_its_date(
    planned: tuple[dict[str, Any], Plan],
) -> None:
    """An eligibility says Level 1 (it sets the level it names); every other message the
    level the report finds on its date (a level set, the level it sets)."""
    _, plan = planned
    lines = timelines(plan)
    corrected = {m.corrects for m in plan.messages if m.corrects is not None}
    for i, m in enumerate(plan.messages):
        if i in corrected:
            continue
        state = lines[m.body.subject.pnc_id].state_on(dated(m))
        want = 1 if isinstance(m.body, EligibilityNotified) else state.level
        assert int(m.body.level) == want, m.body.message_type


def test_a_small_target_with_no_level_1_registered_offenders_is_met_exactly() -> None:
    """The planner's fallbacks: the Category 1 acts need people made for them (nobody
    counted at Level 1 to carry them), the 30 March case and the re-registration are
    Category 2, the Level 2, 3, 2 case is Category 3 and exits, and one of the two
    returned at Level 2 Category 1 is released again to be counted on 31 March."""
    small: dict[str, Any] = {
        "snapshot_31_march": {"L1": [0, 3, None], "L2": [1, 0, 0], "L3": [0, 0, 0]},
        "yearly_l2_l3": {"L2": [2, 1, 1], "L3": [1, 0, 1]},
        "rso_breach_notification": 2,
        "orders_imposed": {"SOPO": 1, "NO": 0, "FTO": 0},
        "returned_to_custody_breach_licence": {"L2": [1, 0, 0], "L3": [0, 0, 0]},
        "returned_to_custody_breach_sopo": {"L2": 1, "L3": 1},
    }
    plan = plan_population(small, area="staffordshire", neighbour="west-mercia", year=YEAR)
    assert mismatches(tables_of(plan), small) == []
    lines = timelines(plan)
    levels = {
        p: [int(m.body.level) for _, m in ms if isinstance(m.body, LevelSet)]
        for p, ms in history(plan).items()
    }
    assert any(
        v[-2:] == [3, 2] and lines[p].state_on(YEAR.last).category == 3 for p, v in levels.items()
    )


def test_a_year_of_both_order_regimes_is_planned_with_every_order() -> None:
    """2014-15 had the SOPO and foreign travel order until 7 March 2015, and the SHPO and
    sexual risk order from the next day: a target may name all five."""
    target = copy.deepcopy(target_of(AREAS[0][0]))
    target["orders_imposed"] = {"SOPO": 20, "NO": 1, "FTO": 2, "SHPO": 5, "SRO": 3}
    year = ReportYear.parse("2014-15")
    plan = plan_population(target, area="staffordshire", neighbour="west-mercia", year=year)
    held, records = plan.held(subject_ref)
    tables = annual_tables(held, records, area="staffordshire", year=year)
    assert tables.orders == {
        "sopo": 20,
        "notification-order": 1,
        "foreign-travel-order": 2,
        "shpo": 5,
        "sro": 3,
    }
    assert tables.problems == []
    # Each made on a day its law allowed it.
    switch = date(2015, 3, 8)
    for m in plan.messages:
        order = m.body
        if isinstance(order, CivilOrderMade) and date.fromisoformat(order.made_on) in year:
            made = date.fromisoformat(order.made_on)
            if order.order.value in {"sopo", "foreign-travel-order"}:
                assert made < switch
            elif order.order.value in {"shpo", "sro"}:
                assert made >= switch
