"""The annual report's tables for one area and year (docs/statistics.md §3-§5).

``annual_tables`` takes what the co-ordination unit holds (opened messages and its
transfers) and computes every cell; nothing is copied from anywhere else. A cell that
is not applicable is ``None`` (printed "-").
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from broker.statistics.timeline import Held, State, Timeline, current
from schemas.messages import BreachRecall, CivilOrderMade, NotificationBreachOutcome, type_name
from schemas.messages.orders import CivilOrderKind
from schemas.messages.parts import Change
from schemas.messages.release import CustodyEvent
from schemas.transfer import TransferRecord

LEVELS = (1, 2, 3)
UPPER_LEVELS = (2, 3)
RSO = 1
OTHER_DANGEROUS = 3
# The SHPO and the sexual risk order replaced the SOPO and the foreign travel order
# (Anti-social Behaviour, Crime and Policing Act 2014, in force 8 March 2015).
ORDERS_REPLACED_ON = date(2015, 3, 8)
OLD_ORDERS = (
    CivilOrderKind.SEXUAL_OFFENCES_PREVENTION_ORDER,
    CivilOrderKind.NOTIFICATION_ORDER,
    CivilOrderKind.FOREIGN_TRAVEL_ORDER,
)
NEW_ORDERS = (
    CivilOrderKind.SEXUAL_HARM_PREVENTION_ORDER,
    CivilOrderKind.SEXUAL_RISK_ORDER,
    CivilOrderKind.NOTIFICATION_ORDER,
)
# The orders each regime had: the replaced ones until the day before, the new ones from.
REPLACED_ORDERS = frozenset(
    {CivilOrderKind.SEXUAL_OFFENCES_PREVENTION_ORDER, CivilOrderKind.FOREIGN_TRAVEL_ORDER}
)
REPLACING_ORDERS = frozenset(
    {CivilOrderKind.SEXUAL_HARM_PREVENTION_ORDER, CivilOrderKind.SEXUAL_RISK_ORDER}
)
SOPO_KINDS = frozenset(
    {CivilOrderKind.SEXUAL_OFFENCES_PREVENTION_ORDER, CivilOrderKind.SEXUAL_HARM_PREVENTION_ORDER}
)
# Category 4 (terrorism risk) entered the arrangements in 2022.
CATEGORY_4_FROM = 2022
_YEAR = re.compile(r"^(\d{4})-(\d{2})$")

Grid = dict[int, dict[int, int | None]]


def could_be_made(kind: CivilOrderKind, on: date) -> bool:
    """Whether the law allowed an order of ``kind`` to be made on ``on``."""
    if kind in REPLACED_ORDERS:
        return on < ORDERS_REPLACED_ON
    if kind in REPLACING_ORDERS:
        return on >= ORDERS_REPLACED_ON
    return True


def percent(part: int, whole: int) -> Decimal | None:
    """``part`` of ``whole`` times 100, to one decimal, half up; None for an empty whole."""
    if not whole:
        return None
    return (Decimal(part * 100) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


BREACH_OUTCOME = type_name(NotificationBreachOutcome)


@dataclass(frozen=True)
class ReportYear:
    """A reporting year, 1 April to 31 March (``2013-14``)."""

    start: int

    @classmethod
    def parse(cls, text: str) -> ReportYear:
        """``YYYY-YY`` whose second part is the year after the first. Raises ValueError."""
        match = _YEAR.match(text)
        if not match or (int(match[1]) + 1) % 100 != int(match[2]):
            raise ValueError(f"a reporting year is written like 2013-14, not {text!r}")
        return cls(int(match[1]))

    @property
    def first(self) -> date:
        return date(self.start, 4, 1)

    @property
    def last(self) -> date:
        return date(self.start + 1, 3, 31)

    @property
    def label(self) -> str:
        return f"{self.start}-{(self.start + 1) % 100:02d}"

    @property
    def categories(self) -> tuple[int, ...]:
        return (1, 2, 3, 4) if self.start >= CATEGORY_4_FROM else (1, 2, 3)

    @property
    def orders(self) -> tuple[CivilOrderKind, ...]:
        """The civil orders the law allowed on some day of the year (§4, table 4)."""
        return tuple(
            kind
            for kind in (*OLD_ORDERS, *NEW_ORDERS[:2])
            if could_be_made(kind, self.first) or could_be_made(kind, self.last)
        )

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last


def last_reporting_year(today: date) -> ReportYear:
    """The latest reporting year that has ended by ``today``."""
    return ReportYear(today.year - 1 if today.month >= 4 else today.year - 2)


@dataclass(frozen=True)
class Problem:
    """A subject the definitions cannot place, by reference only (§5)."""

    subject_ref: str
    what: str


@dataclass
class AnnualTables:
    """Every table of one area's annual report (docs/statistics.md §4)."""

    area: str
    year: ReportYear
    # level -> category -> count, None where not applicable.
    snapshot: Grid
    yearly: Grid
    rso_breaches: int
    orders: dict[str, int]
    returned_licence: Grid
    returned_sopo: Grid
    population: int | None = None
    population_source: str | None = None
    # Messages read, by type; left out, by refusal code.
    read: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    subjects: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def categories(self) -> tuple[int, ...]:
        return self.year.categories

    def snapshot_total(self, *, level: int | None = None, category: int | None = None) -> int:
        return sum(
            n or 0
            for lv, row in self.snapshot.items()
            if level in (None, lv)
            for cat, n in row.items()
            if category in (None, cat)
        )

    @property
    def pct_level1(self) -> Decimal | None:
        """Level 1 over all of table 1, times 100, to one decimal (half up)."""
        return percent(self.snapshot_total(level=1), self.snapshot_total())

    @property
    def rso_per_100k(self) -> int | None:
        """Category 1 of table 1 per 100,000 population aged 10 and over (half up)."""
        if not self.population:
            return None
        rate = Decimal(self.snapshot_total(category=RSO) * 100_000) / Decimal(self.population)
        return int(rate.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _grid(levels: Sequence[int], categories: Sequence[int]) -> Grid:
    return {lv: dict.fromkeys(categories, 0) for lv in levels}


def _distinct(cells: dict[tuple[int, int], set[str]], grid: Grid) -> Grid:
    for (level, category), subjects in cells.items():
        if level in grid and category in grid[level] and grid[level][category] is not None:
            grid[level][category] = len(subjects)
    return grid


@dataclass
class _Tally:
    """The counts of one area and year while its subjects are walked."""

    area: str
    year: ReportYear
    snapshot: Grid
    yearly: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    breached: set[str] = field(default_factory=set)
    orders: Counter[str] = field(default_factory=Counter)
    licence: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    sopo: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    problems: list[Problem] = field(default_factory=list)

    def on_31_march(self, timeline: Timeline) -> None:
        """Table 1: the state at the end of the year, in the community."""
        state = timeline.state_on(self.year.last)
        if not state.counts_for(self.area) or state.in_custody:
            return
        if state.category == OTHER_DANGEROUS and state.level == 1:
            self.problems.append(
                Problem(timeline.subject_ref, "a Category 3 offender at level 1 on 31 March")
            )
        elif state.category in self.year.categories:
            cell = self.snapshot[state.level][state.category]
            self.snapshot[state.level][state.category] = (cell or 0) + 1

    def during_year(self, timeline: Timeline) -> None:
        """Table 2: each upper level held in the year, at the category of its last day."""
        last_at: dict[int, int] = {}
        for state in timeline.states_during(self.year.first, self.year.last):
            if state.counts_for(self.area) and state.level in UPPER_LEVELS and state.category:
                last_at[state.level] = state.category
        for level, cat in last_at.items():
            self.yearly[(level, cat)].add(timeline.subject_ref)

    def acts(self, timeline: Timeline) -> None:
        """Tables 3 to 5: the acts of the year counted against the state on their date."""
        sopos = [
            m.body
            for m in timeline.counted
            if isinstance(m.body, CivilOrderMade)
            and m.body.change is Change.MADE
            and m.body.order in SOPO_KINDS
        ]
        for m in timeline.counted:
            body = m.body
            if body.message_type == BREACH_OUTCOME:
                # The unit holds the summary view of a breach outcome (a model derived
                # from the type's, not the type itself); its date is in the summary.
                day = getattr(body, "outcome_date", None)
                if not isinstance(day, str):
                    self.problems.append(Problem(timeline.subject_ref, "a breach outcome undated"))
                    continue
                state = self._counted(timeline, day)
                if state is not None and state.category == RSO:
                    self.breached.add(timeline.subject_ref)
            elif isinstance(body, CivilOrderMade) and body.change is Change.MADE:
                state = self._counted(timeline, body.made_on)
                if state is None or state.category != RSO:
                    continue
                if could_be_made(body.order, date.fromisoformat(body.made_on)):
                    self.orders[body.order.value] += 1
                else:
                    self.problems.append(
                        Problem(
                            timeline.subject_ref,
                            f"a {body.order.value} made on {body.made_on}, when the law had none",
                        )
                    )
            elif isinstance(body, BreachRecall) and body.event is CustodyEvent.RETURNED_TO_CUSTODY:
                self._returned(timeline, body, sopos)

    def _counted(self, timeline: Timeline, day: str) -> State | None:
        """The subject's state on ``day`` if ``day`` is in the year and it counts for
        the area then; else None."""
        on = date.fromisoformat(day)
        state = timeline.state_on(on)
        return state if on in self.year and state.counts_for(self.area) else None

    def _returned(
        self, timeline: Timeline, body: BreachRecall, sopos: Sequence[CivilOrderMade]
    ) -> None:
        state = self._counted(timeline, body.event_date)
        if state is None or state.level not in UPPER_LEVELS or state.category is None:
            return
        ref = timeline.subject_ref
        on = date.fromisoformat(body.event_date)
        if body.breach_of == "licence":
            self.licence[(state.level, state.category)].add(ref)
        elif state.category != RSO:
            self.problems.append(
                Problem(ref, f"returned to custody on {on} for breach of an order: not Category 1")
            )
        elif any(_in_force(o, on) for o in sopos):
            self.sopo[(state.level, RSO)].add(ref)
        else:
            self.problems.append(
                Problem(ref, f"returned to custody on {on} for breach of an order: no SOPO")
            )


def annual_tables(
    messages: Iterable[Held],
    transfers: Iterable[TransferRecord],
    *,
    area: str,
    year: ReportYear,
) -> AnnualTables:
    """The tables of ``area`` for ``year`` from what its co-ordination unit holds."""
    by_subject: dict[str, list[Held]] = defaultdict(list)
    for m in current(messages):
        by_subject[m.subject_ref].append(m)
    moves: dict[str, list[TransferRecord]] = defaultdict(list)
    for t in transfers:
        moves[t.subject_ref].append(t)
    cats = year.categories
    snapshot = _grid(LEVELS, cats)
    snapshot[1][OTHER_DANGEROUS] = None
    tally = _Tally(area, year, snapshot)
    for ref in sorted(set(by_subject) | set(moves)):
        timeline = Timeline.of(ref, by_subject.get(ref, []), moves.get(ref, []))
        if not timeline.has_eligibility():
            if by_subject.get(ref):
                tally.problems.append(Problem(ref, "messages about a subject with no eligibility"))
            continue
        tally.on_31_march(timeline)
        tally.during_year(timeline)
        tally.acts(timeline)
    returned_sopo = _grid(UPPER_LEVELS, cats)
    for level in UPPER_LEVELS:
        for cat in cats:
            if cat != RSO:
                returned_sopo[level][cat] = None
    return AnnualTables(
        area=area,
        year=year,
        snapshot=snapshot,
        yearly=_distinct(tally.yearly, _grid(UPPER_LEVELS, cats)),
        rso_breaches=len(tally.breached),
        orders={kind.value: tally.orders[kind.value] for kind in year.orders},
        returned_licence=_distinct(tally.licence, _grid(UPPER_LEVELS, cats)),
        returned_sopo=_distinct(tally.sopo, returned_sopo),
        subjects=len(by_subject),
        problems=tally.problems,
    )


def _in_force(order: CivilOrderMade, on: date) -> bool:
    made = date.fromisoformat(order.made_on)
    return made <= on and (order.expires_on is None or on < date.fromisoformat(order.expires_on))
