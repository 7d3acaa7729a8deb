"""Planning a population that yields given annual tables (``plan_population``).

How a plan is laid out: the table 2 cells are filled first, one person per subject
counted, each with a history that ends the year as the cells need (at its level on
31 March; stepped down to Level 1; exited; returned to custody; moved to the
neighbour; or in custody all year with its level set for release), the table 5 returns
among them. Table 1's Level 1 cells are then filled with a realistic mix (in the
community all year, released or sentenced in the year, transferred in) and a few people
who are not counted (in custody on 31 March, exited, moved out). Tables 3 and 4 are acts
dated on days their subjects surely count at Category 1. The cases the issue names
(transferred in on 30 March and out on 2 April; Level 2, 3 and 2 again; an exit and
re-registration; a caution and a conviction; a return for each breach at each level; a
corrected level set) are among them whenever the target has room for them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from broker.statistics.annual import (
    ORDERS_REPLACED_ON,
    OTHER_DANGEROUS,
    REPLACED_ORDERS,
    REPLACING_ORDERS,
    ReportYear,
)
from broker.statistics.histories import ANNUAL_NOTIFICATIONS, Builder, Cell, shift, sopo_kind
from broker.statistics.plan import Plan, PlannedMessage
from schemas.messages import (
    EligibilityNotified,
    SubjectIdentifiers,
)
from schemas.messages.base import Category, Level
from schemas.messages.orders import CivilOrderKind
from schemas.messages.parts import Change
from schemas.messages.registration import BreachOutcome


def plan_population(
    target: Mapping[str, Any], *, area: str, neighbour: str, year: ReportYear, seed: int = 2014
) -> Plan:
    """A plan whose histories yield ``target`` (one area's entry of
    ``published_tables()['areas']``) for ``area`` in ``year``, with moves to and from
    ``neighbour``. Deterministic for a seed. Raises ValueError for tables no population
    can yield (a return to custody at a level nobody held that year, more on 31 March at
    a level than held it in the year, Category 3 at Level 1, an order the year's law did
    not have) or that this planner does not lay out (more returns to custody in a cell,
    for licence and SOPO together, than people counted in it: it returns each once)."""
    wanted = _Target.read(target, year)
    # Not for secrets: a fictional population, the same for a seed.
    builder = Builder(area, neighbour, year, random.Random(seed))  # noqa: S311
    level1 = {c: wanted.snapshot[(1, c)] for c in CATEGORIES}
    _edge_cases(builder, level1)
    _upper_population(builder, wanted, level1)
    for category in (1, 2):
        builder.level1(category, level1[category])
    _acts(builder, wanted)
    return _assemble(builder)


# --- the target, read and checked --------------------------------------------------------

UPPER = (2, 3)
CATEGORIES = (1, 2, 3)
# Above any area's count (London, the largest, had under 10,000 RSOs in the community in
# the 2010s): a bigger cell would plan, and publish, a population beyond reason.
MAX_CELL = 50_000
# The target's level-by-category tables, and their levels.
GRIDS = {
    "snapshot_31_march": (1, *UPPER),
    "yearly_l2_l3": UPPER,
    "returned_to_custody_breach_licence": UPPER,
}
# The target's names for table 4's columns (a SOPO column holds the SHPO once the SOPO
# is gone, as some reports kept the heading).
ORDER_COLUMNS = {
    "NO": CivilOrderKind.NOTIFICATION_ORDER,
    "FTO": CivilOrderKind.FOREIGN_TRAVEL_ORDER,
    "SHPO": CivilOrderKind.SEXUAL_HARM_PREVENTION_ORDER,
    "SRO": CivilOrderKind.SEXUAL_RISK_ORDER,
}


def _order_kind(column: str, year: ReportYear) -> CivilOrderKind:
    return sopo_kind(year) if column == "SOPO" else ORDER_COLUMNS[column]


def _orders(columns: Mapping[str, Any], year: ReportYear) -> dict[CivilOrderKind, int]:
    """Table 4's counts by order; a column this planner does not know is refused."""
    unknown = sorted(set(columns) - {"SOPO", *ORDER_COLUMNS})
    if unknown:
        raise ValueError(f"orders_imposed has columns no order is known by: {unknown}")
    orders = dict.fromkeys(year.orders, 0)
    for column, value in columns.items():
        kind = _order_kind(column, year)
        orders[kind] = orders.get(kind, 0) + _count(value)
    return orders


def _count(value: Any) -> int:
    """A cell's count: null ("-") is none; anything but a whole number >= 0 is refused."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a table cell is a whole number of at least 0, or null")
    if value > MAX_CELL:
        raise ValueError(f"a table cell of more than {MAX_CELL:,} is more than any area holds")
    return value


@dataclass(frozen=True)
class _Target:
    """One area's published tables as counts: (level, category) cells, 0 for "-"."""

    snapshot: dict[Cell, int]
    yearly: dict[Cell, int]
    breaches: int
    orders: dict[CivilOrderKind, int]
    licence: dict[Cell, int]
    sopo: dict[int, int]

    @classmethod
    def read(cls, target: Mapping[str, Any], year: ReportYear) -> _Target:
        """The counts of ``target``; raises ValueError for tables no population yields."""
        try:
            snap = {
                (lv, c): _count(target["snapshot_31_march"][f"L{lv}"][c - 1])
                for lv in (1, *UPPER)
                for c in CATEGORIES
            }
            yearly = {
                (lv, c): _count(target["yearly_l2_l3"][f"L{lv}"][c - 1])
                for lv in UPPER
                for c in CATEGORIES
            }
            licence = {
                (lv, c): _count(target["returned_to_custody_breach_licence"][f"L{lv}"][c - 1])
                for lv in UPPER
                for c in CATEGORIES
            }
            sopo = {lv: _count(target["returned_to_custody_breach_sopo"][f"L{lv}"]) for lv in UPPER}
            orders = _orders(target["orders_imposed"], year)
            beyond = [
                grid[f"L{lv}"][3:]
                for table, levels in GRIDS.items()
                for grid in [target[table]]
                for lv in levels
            ]
            if any(_count(v) for row in beyond for v in row):
                raise ValueError("this planner lays out Categories 1 to 3 only")
            breaches = _count(target["rso_breach_notification"])
        except KeyError as exc:
            raise ValueError(f"the tables have no {exc} (see published-tables.json)") from None
        except IndexError:
            raise ValueError("a table has a level with fewer than 3 categories") from None
        except (TypeError, AttributeError):
            raise ValueError(
                "a table is not laid out as in published-tables.json (levels of category lists)"
            ) from None
        wanted = cls(snap, yearly, breaches, orders, licence, sopo)
        wanted._check(year)
        return wanted

    def returns(self, cell: Cell) -> int:
        level, category = cell
        return self.licence[cell] + (self.sopo[level] if category == 1 else 0)

    def _check(self, year: ReportYear) -> None:
        if self.snapshot[(1, 3)]:
            raise ValueError("Category 3 at Level 1 on 31 March is not applicable")
        for cell, during in self.yearly.items():
            if self.snapshot[cell] > during:
                raise ValueError(
                    f"Level {cell[0]} Category {cell[1]}: more on 31 March than in the year"
                )
            if self.returns(cell) > during:
                raise ValueError(
                    f"Level {cell[0]} Category {cell[1]}: more returned to custody than "
                    "were at that level in the year"
                )
        for kind, n in self.orders.items():
            if n and kind not in year.orders:
                raise ValueError(f"{year.label} had no {kind.value} to impose")


def _upper_population(b: Builder, wanted: _Target, level1: dict[int, int]) -> None:
    """Everyone at Level 2 or 3 in the year, by cell: those counted on 31 March, those
    returned to custody, and the rest leaving by the fates a year has."""
    yearly = dict(wanted.yearly)
    snapshot = {cell: wanted.snapshot[cell] for cell in yearly}

    def room(cell: Cell, *, counted: bool) -> bool:
        left = yearly[cell] - 1
        return left >= wanted.returns(cell) and left >= snapshot[cell] - (1 if counted else 0)

    for c in CATEGORIES:
        stays = snapshot[(2, c)] > 0
        if room((3, c), counted=False) and room((2, c), counted=stays):
            b.upper_and_back(c, stays=stays)
            yearly[(2, c)] -= 1
            yearly[(3, c)] -= 1
            snapshot[(2, c)] -= 1 if stays else 0
            break
    for cell, total in yearly.items():
        level, category = cell
        breaches = ["licence"] * wanted.licence[cell]
        breaches += ["order"] * (wanted.sopo[level] if category == 1 else 0)
        b.rng.shuffle(breaches)
        gone = total - snapshot[cell]
        for i, breach_of in enumerate(breaches):
            b.upper(cell, "custody" if i < gone else "community", breach_of)
        for _ in range(snapshot[cell] - max(0, len(breaches) - gone)):
            b.upper(cell, "community")
        for _ in range(gone - min(gone, len(breaches))):
            fates = ["exited", "moved", "pre-release"]
            if category != OTHER_DANGEROUS and level1[category] > 0:
                fates.append("stepped-down")
            fate = b.rng.choice(fates)
            if fate == "stepped-down":
                level1[category] -= 1
            b.upper(cell, fate)


def _edge_cases(b: Builder, level1: dict[int, int]) -> None:
    """The histories the issue names that are counted at Level 1 on 31 March."""
    for make in (b.moved_in_for_31_march, b.re_registered):
        category = next((c for c in (1, 2) if level1[c] > 0), None)
        if category is not None:
            make(category)
            level1[category] -= 1


def _lawful(kind: CivilOrderKind, start: date, end: date) -> tuple[date, date]:
    """The part of ``start``..``end`` in which the law allowed ``kind`` to be made."""
    if kind in REPLACED_ORDERS:
        return start, min(end, ORDERS_REPLACED_ON - timedelta(days=1))
    if kind in REPLACING_ORDERS:
        return max(start, ORDERS_REPLACED_ON), end
    return start, end


def _acts(b: Builder, wanted: _Target) -> None:
    """Tables 3 and 4 (returns are part of the upper histories): each act dated on a day
    its subject surely counts for the area at Category 1."""
    pool = [(p, p.window) for p in b.people if p.window is not None]
    b.rng.shuffle(pool)
    while len(pool) < max(wanted.breaches, 1 if any(wanted.orders.values()) else 0):
        who = b.leaver(1)
        if who.window is not None:
            pool.append((who, who.window))
    for i, (who, (start, end)) in enumerate(pool[: wanted.breaches]):
        if i == 0:
            # Cautioned, then convicted for a later breach: one subject in table 3.
            b.breach_outcome(who, start, BreachOutcome.CAUTION)
            b.breach_outcome(who, end, BreachOutcome.CONVICTION)
            continue
        outcome = BreachOutcome.CONVICTION if i % 3 == 1 else BreachOutcome.CAUTION
        b.breach_outcome(who, b.day(start, end), outcome)
    made = 0
    for kind, count in wanted.orders.items():
        for _ in range(count):
            # Made on a day its law allowed it (the SHPO and SRO replaced the SOPO and FTO).
            turn = made % len(pool)
            lawful = [
                (person, window)
                for person, (start, end) in pool[turn:] + pool[:turn]
                for window in [_lawful(kind, start, end)]
                if window[0] <= window[1]
            ]
            if not lawful:
                raise ValueError(
                    f"nobody counts in {b.year.label} while a {kind.value} could be made"
                )
            who, (start, end) = lawful[0]
            b.order(who, b.day(start, end), kind)
            made += 1
    moved = {t.pnc_id for t in b.transfers}
    settled = [(p, w) for p, w in pool if w[0] == b.first and p.pnc_id not in moved]
    if settled:
        # A SOPO made before the year and varied in it: neither is counted.
        who, (start, end) = settled[-1]
        b.order(who, shift(b.first, -200), sopo_kind(b.year))
        b.order(who, b.day(start, end), sopo_kind(b.year), change=Change.VARIED)
    for who, (start, end) in pool[: round(len(pool) * ANNUAL_NOTIFICATIONS)]:
        b.annual_notification(who, b.day(start, end))


def _assemble(b: Builder) -> Plan:
    """The people's messages in publication order: by date, each person's in its order."""
    plan = Plan(area=b.area, neighbour=b.neighbour, year=b.year, transfers=b.transfers)
    order = sorted(
        (item.on, p, i) for p, person in enumerate(b.people) for i, item in enumerate(person.items)
    )
    index: dict[tuple[int, int], int] = {}
    subjects = [
        SubjectIdentifiers(pnc_id=p.pnc_id, name=p.name, date_of_birth=p.dob.isoformat())
        for p in b.people
    ]
    for on, p, i in order:
        person, item = b.people[p], b.people[p].items[i]
        fields = dict(item.fields)
        # An eligibility is at Level 1 (it sets the level it names); every other message
        # says the level in force when it is published, a level set the one it sets.
        level = 1 if item.model is EligibilityNotified else fields.pop("level", None)
        body = item.model(
            subject=subjects[p],
            area=b.area,
            category=Category(person.category),
            level=Level(person.level_on(on) if level is None else level),
            **fields,
        )
        corrects = None if item.corrects is None else index[(p, item.corrects)]
        index[(p, i)] = len(plan.messages)
        plan.messages.append(PlannedMessage(sender=item.sender, body=body, corrects=corrects))
    return plan
