"""The people of a generated population and their histories (``broker.statistics.plan``).

``Builder`` makes fictional people and adds to each the messages of its history, dated,
from the sender the agreement's template gives each type; ``plan_population`` decides who
is needed. No real person: names are drawn from invented lists, and every PNC id is a
made-up number the builder keeps unique.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from broker.statistics.annual import ReportYear
from broker.statistics.plan import PlannedTransfer
from schemas.common import Role
from schemas.messages import (
    BreachRecall,
    CivilOrderMade,
    EligibilityNotified,
    ExitFromMappa,
    LevelSet,
    MessageBody,
    NotificationBreachOutcome,
    ReleaseScheduled,
    RsoNotificationRecorded,
)
from schemas.messages.base import Level
from schemas.messages.eligibility import EligibilityBasis
from schemas.messages.levels import ExitReason
from schemas.messages.orders import CivilOrderKind
from schemas.messages.parts import Address, Change
from schemas.messages.registration import BreachOutcome, NotificationKind
from schemas.messages.release import CustodyEvent, RecallType

Cell = tuple[int, int]


def sopo_kind(year: ReportYear) -> CivilOrderKind:
    """The order a SOPO column counts in ``year``."""
    sopo = CivilOrderKind.SEXUAL_OFFENCES_PREVENTION_ORDER
    return sopo if sopo in year.orders else CivilOrderKind.SEXUAL_HARM_PREVENTION_ORDER


# --- invented people ---------------------------------------------------------------------

FIRST_NAMES = (
    "Arlen", "Bram", "Caddo", "Dariel", "Edrin", "Fennick", "Garrow", "Halden", "Ivo",
    "Jory", "Kestrel", "Lorcan", "Marek", "Nevin", "Orrin", "Perrin", "Quill", "Rowan",
    "Soren", "Tamsin", "Ulric", "Varro", "Wendel", "Yorick", "Zane", "Alaric", "Brenna",
    "Corvin", "Delphine", "Emrys",
)  # fmt: skip
LAST_NAMES = (
    "Ashwick", "Brackley", "Colbrook", "Dunmere", "Elsworth", "Farrowby", "Gadsden",
    "Hollowell", "Inchbold", "Jessup", "Kilbride", "Larkmoor", "Middlecott", "Northam",
    "Oakridge", "Pellow", "Quarrington", "Redfern", "Stallard", "Thornbury", "Underhay",
    "Vellacott", "Whitlock", "Yarwood", "Zellman", "Amberley", "Birchall", "Cresswell",
    "Drayford", "Eastleigh",
)  # fmt: skip
PNC_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
OFFENCES = {
    1: (
        ("Sexual assault (Sexual Offences Act 2003 s3)", 24),
        ("Rape (Sexual Offences Act 2003 s1)", 96),
        ("Making indecent photographs of children (Protection of Children Act 1978 s1)", 10),
        ("Sexual activity with a child (Sexual Offences Act 2003 s9)", 36),
        ("Voyeurism (Sexual Offences Act 2003 s67)", 4),
    ),
    2: (
        ("Wounding with intent (Offences Against the Person Act 1861 s18)", 72),
        ("Robbery (Theft Act 1968 s8)", 36),
        ("Inflicting grievous bodily harm (Offences Against the Person Act 1861 s20)", 18),
        ("Manslaughter", 84),
        ("Arson endangering life (Criminal Damage Act 1971 s1(2))", 48),
    ),
    3: (
        ("Threats to kill (Offences Against the Person Act 1861 s16)", 8),
        ("Harassment (Protection from Harassment Act 1997 s4)", 6),
        ("Assault occasioning actual bodily harm (Offences Against the Person Act 1861 s47)", 9),
        ("Affray (Public Order Act 1986 s3)", 10),
    ),
}
BASIS = {
    1: EligibilityBasis.NOTIFICATION_REQUIREMENTS,
    2: EligibilityBasis.VIOLENT_SENTENCE_12_MONTHS,
    3: EligibilityBasis.OTHER_DANGEROUS,
}
EXIT_REASONS = {
    1: ExitReason.REGISTRATION_ENDED,
    2: ExitReason.LICENCE_EXPIRED,
    3: ExitReason.RISK_REDUCED,
}
PRISONS = ("HMP Stafford", "HMP Winchester", "HMP Birmingham", "HMP Dovegate", "HMP Isle of Wight")
COURTS = ("Stafford Crown Court", "Winchester Crown Court", "Portsmouth Crown Court")
MAGISTRATES = ("North Staffordshire Magistrates' Court", "Southampton Magistrates' Court")
MONTH = 30
# A plain Level 1 population is mostly people in the community all year; these are the
# shares of the other histories it is given, for realism (a share of what is counted).
RELEASED_IN_YEAR = 0.05
SENTENCED_IN_YEAR = 0.03
TRANSFERRED_IN = 0.01
# Histories that are not counted on 31 March, as shares of the Level 1 population.
IN_CUSTODY_ON_31_MARCH = 0.03
EXITED_IN_YEAR = 0.02
TRANSFERRED_OUT = 0.01
ANNUAL_NOTIFICATIONS = 0.04


def _share(count: int, part: float) -> int:
    return round(count * part)


def shift(day: date, days: int) -> date:
    return day + timedelta(days=days)


@dataclass
class Item:
    """One message of a person's history before its level is known: the date it is
    published on (its order in the history), who sends it and how to build it."""

    on: date
    sender: Role
    model: type[MessageBody]
    fields: dict[str, Any]
    # The position in the person's items of the message this one corrects.
    corrects: int | None = None


@dataclass
class Person:
    pnc_id: str
    name: str
    dob: date
    category: int
    # (effective date, level), in date order; level 1 from the first eligibility.
    levels: list[tuple[date, int]] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    # Days of the year on which the person surely counts for the area at Category 1.
    window: tuple[date, date] | None = None

    def level_on(self, day: date) -> int:
        level = 1
        for on, lv in self.levels:
            if on <= day:
                level = lv
        return level

    def add(self, on: date, sender: Role, model: type[MessageBody], **fields: Any) -> int:
        self.items.append(Item(on, sender, model, fields))
        return len(self.items) - 1


class Builder:
    """Lays out people one history at a time, each from its own few dated choices."""

    def __init__(self, area: str, neighbour: str, year: ReportYear, rng: random.Random) -> None:
        self.area = area
        self.neighbour = neighbour
        self.year = year
        self.rng = rng
        self.people: list[Person] = []
        self.transfers: list[PlannedTransfer] = []
        self.names: set[tuple[str, date]] = set()
        self.serial = rng.randrange(10_000, 900_000)
        # One level set is published wrong and then corrected (docs/statistics.md §1).
        self.correction_due = True

    def wrong_level(self, level: int) -> int | None:
        """The wrong level to publish first, once per plan; else None."""
        if not self.correction_due:
            return None
        self.correction_due = False
        return 3 if level == 2 else 2

    # Dates.
    def day(self, lo: date, hi: date) -> date:
        """A day from ``lo`` to ``hi``, both included."""
        return shift(lo, self.rng.randint(0, max(0, (hi - lo).days)))

    @property
    def first(self) -> date:
        return self.year.first

    @property
    def last(self) -> date:
        return self.year.last

    # People.
    def person(self, category: int, first_sentenced: date) -> Person:
        rng = self.rng
        while True:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            dob = shift(first_sentenced, -rng.randint(18 * 365, 60 * 365))
            if (name, dob) not in self.names:
                break
        self.names.add((name, dob))
        self.serial += 1
        pnc = f"{first_sentenced.year}/{self.serial:07d}{PNC_LETTERS[self.serial % 24]}"
        person = Person(pnc, name, dob, category)
        self.people.append(person)
        return person

    def eligible(
        self,
        category: int,
        *,
        released: date | None,
        person: Person | None = None,
        sentenced: date | None = None,
        published: date | None = None,
    ) -> Person:
        """A person (new unless given) made eligible by a sentence: custodial, released
        on ``released`` (None: a community sentence, Category 1 only)."""
        offence, months = self.rng.choice(OFFENCES[category])
        if released is None:
            sentence = "Community order, 3 years"
            sentenced = sentenced or self.day(shift(self.first, -3000), shift(self.first, -200))
            release_on, expiry = None, shift(sentenced, 3 * 365)
            period = "5 years"
        else:
            if sentenced is None:
                sentenced = shift(released, -months * MONTH // 2)
            else:
                # Released halfway through the sentence (licence for the rest).
                months = max(12 if category == 2 else 1, (released - sentenced).days * 2 // MONTH)
            release_on = released
            expiry = shift(sentenced, months * MONTH)
            sentence = f"{months} months imprisonment"
            period = "indefinite" if months >= 30 else "10 years" if months > 6 else "7 years"
        who = person or self.person(category, sentenced)
        who.levels.append((sentenced, 1))
        who.levels.sort(key=lambda x: x[0])
        who.add(
            published or sentenced,
            Role.POLICE if category == 1 else Role.PROBATION,
            EligibilityNotified,
            basis=BASIS[category],
            index_offence=offence,
            conviction_date=shift(sentenced, -self.rng.randint(0, 60)).isoformat(),
            sentence=sentence,
            sentence_date=sentenced.isoformat(),
            earliest_release_date=None if release_on is None else release_on.isoformat(),
            sentence_expiry_date=expiry.isoformat(),
            notification_period=period if category == 1 else None,
        )
        return who

    def set_level(self, person: Person, on: date, level: int, *, wrong: int | None = None) -> None:
        """A level set by the co-ordinator; ``wrong``: first published with that level,
        then corrected."""
        previous = person.level_on(on)
        person.levels.append((on, level))
        person.levels.sort(key=lambda x: x[0])
        fields: dict[str, Any] = {
            "previous_level": Level(previous),
            "effective_date": on.isoformat(),
            "next_review": shift(on, 3 * MONTH).isoformat(),
            "decided_at": f"MAPP level {max(level, 2)} meeting {on.isoformat()}",
        }
        if wrong is not None:
            first = person.add(on, Role.COORDINATOR, LevelSet, level=wrong, **fields)
            corrected = dict(fields, rationale="Corrects the level recorded in error.")
            person.add(on, Role.COORDINATOR, LevelSet, level=level, **corrected)
            person.items[-1].corrects = first
            return
        person.add(on, Role.COORDINATOR, LevelSet, level=level, **fields)

    def exit(self, person: Person, on: date) -> None:
        registered = person.category == 1
        person.add(
            on,
            Role.POLICE if registered else Role.PROBATION,
            ExitFromMappa,
            reason=EXIT_REASONS[person.category],
            exit_date=on.isoformat(),
            lead_agency=f"{'police' if registered else 'probation'}.{self.area}",
        )

    def release(self, person: Person, on: date) -> None:
        person.add(
            on,
            Role.PRISON,
            ReleaseScheduled,
            release_date=on.isoformat(),
            establishment=self.rng.choice(PRISONS),
            address_approved=True,
            licence_end=shift(on, 12 * MONTH).isoformat(),
        )

    def returned(self, person: Person, on: date, breach_of: str) -> None:
        prison = self.rng.choice(PRISONS)
        if breach_of == "licence":
            person.add(
                on,
                Role.PROBATION,
                BreachRecall,
                event=CustodyEvent.RECALL,
                event_date=on.isoformat(),
                breach_of="licence",
                recall_type=RecallType.STANDARD,
                reason="Breached the curfew and the exclusion zone of the licence.",
            )
        person.add(
            on,
            Role.PROBATION,
            BreachRecall,
            event=CustodyEvent.RETURNED_TO_CUSTODY,
            event_date=on.isoformat(),
            breach_of=breach_of,
            recall_type=RecallType.STANDARD if breach_of == "licence" else RecallType.FIXED_TERM,
            reason="Arrested and returned to custody.",
            establishment=prison,
        )

    def order(
        self,
        person: Person,
        on: date,
        kind: CivilOrderKind,
        *,
        change: Change = Change.MADE,
        expires: bool = True,
    ) -> None:
        years = 0.5 if kind is CivilOrderKind.FOREIGN_TRAVEL_ORDER else 5
        person.add(
            on,
            Role.POLICE,
            CivilOrderMade,
            order=kind,
            change=change,
            court=self.rng.choice(COURTS),
            made_on=on.isoformat(),
            expires_on=shift(on, int(years * 365)).isoformat() if expires else None,
            prohibitions=("Not to have unsupervised contact with a child under 16",),
        )

    def breach_outcome(self, person: Person, on: date, outcome: BreachOutcome) -> None:
        convicted = outcome is BreachOutcome.CONVICTION
        person.add(
            on,
            Role.POLICE,
            NotificationBreachOutcome,
            requirement_breached=NotificationKind.CHANGE,
            outcome=outcome,
            outcome_date=on.isoformat(),
            court=self.rng.choice(MAGISTRATES) if convicted else None,
            sentence="12 weeks imprisonment" if convicted else None,
            circumstances="Failed to notify a change of address within 3 days.",
        )

    def annual_notification(self, person: Person, on: date) -> None:
        person.add(
            on,
            Role.POLICE,
            RsoNotificationRecorded,
            notification=NotificationKind.ANNUAL,
            notified_on=on.isoformat(),
            police_station="Central Police Station",
            home_address=Address(line1="1 Invented Row", town="Sampleton", postcode="ST1 1AA"),
            child_in_household=False,
        )

    def move(self, person: Person, on: date, *, into: bool) -> None:
        self.transfers.append(
            PlannedTransfer(
                pnc_id=person.pnc_id,
                from_area=self.neighbour if into else self.area,
                to_area=self.area if into else self.neighbour,
                move_date=on,
                completed_on=on,
                registered_sex_offender=person.category == 1,
            )
        )

    # Histories.
    def in_community(self, category: int) -> Person:
        """Eligible and in the community the whole year, at Level 1."""
        if category == 1 and self.rng.random() < 0.3:
            who = self.eligible(1, released=None)
        else:
            who = self.eligible(
                category, released=self.day(shift(self.first, -2500), shift(self.first, -30))
            )
        if category == 1:
            who.window = (self.first, self.last)
        return who

    def upper(self, cell: Cell, fate: str, breach_of: str | None = None) -> Person:
        """Someone at ``cell``'s level in the year, whose year ends as ``fate`` says:
        ``community`` (counted on 31 March), ``stepped-down`` (to Level 1), ``exited``,
        ``custody`` (returned and not released), ``moved`` (to the neighbour) or
        ``pre-release`` (in custody all year, its level set for its release);
        ``breach_of``: returned to custody for breach of it (released again unless the
        fate is custody)."""
        level, category = cell
        first, last = self.first, self.last
        if fate == "pre-release":
            raised = self.day(first, shift(last, -10))
            who = self.eligible(
                category,
                released=self.day(shift(last, 30), shift(last, 300)),
                sentenced=self.day(shift(first, -900), shift(first, -60)),
            )
            self.set_level(who, raised, level, wrong=self.wrong_level(level))
            return who
        raised = (
            self.day(shift(first, -400), shift(first, -20))
            if self.rng.random() < 0.6
            else self.day(first, shift(first, 180))
        )
        who = self.eligible(category, released=self.day(shift(raised, -700), shift(raised, -1)))
        self.set_level(who, raised, level, wrong=self.wrong_level(level))
        # The first day it can leave on and still have been counted in the year.
        after = shift(max(raised, first), 1)
        if breach_of == "order":
            # Made at sentencing (or before the year, so table 4 does not count it), until
            # further order: in force on the return.
            made = min(who.levels[0][0], shift(first, -30))
            self.order(who, made, sopo_kind(self.year), expires=False)
        if breach_of is not None:
            back = self.day(after, shift(last, -60) if fate != "custody" else last)
            self.returned(who, back, breach_of)
            if fate != "custody":
                self.release(who, self.day(shift(back, 14), shift(back, 50)))
            return who
        if fate == "stepped-down":
            self.set_level(who, self.day(after, shift(last, -1)), 1)
        elif fate == "exited":
            self.exit(who, self.day(after, last))
        elif fate == "moved":
            self.move(who, self.day(after, last), into=False)
        return who

    def upper_and_back(self, category: int, *, stays: bool) -> Person:
        """Level 2 on 1 April, Level 3 for a while, then Level 2 again: counted once at
        each level; ``stays``: still in the community at Level 2 on 31 March, else exits."""
        first, last = self.first, self.last
        raised = self.day(shift(first, -300), shift(first, -30))
        who = self.eligible(category, released=self.day(shift(raised, -500), shift(raised, -1)))
        self.set_level(who, raised, 2)
        up = self.day(shift(first, 30), shift(first, 150))
        self.set_level(who, up, 3)
        down = self.day(shift(up, 30), shift(up, 120))
        self.set_level(who, down, 2)
        if not stays:
            self.exit(who, self.day(shift(down, 1), last))
        return who

    def level1(self, category: int, count: int) -> None:
        """``count`` people counted at Level 1 on 31 March, and a few who are not
        (in custody then, exited, moved out), with a realistic mix of histories."""
        first, last = self.first, self.last
        moved_in = _share(count, TRANSFERRED_IN)
        released = _share(count, RELEASED_IN_YEAR)
        sentenced = _share(count, SENTENCED_IN_YEAR) if category == 1 else 0
        for _ in range(moved_in):
            on = self.day(shift(first, 10), shift(last, -10))
            who = self.eligible(
                category, released=self.day(shift(on, -900), shift(on, -30)), published=on
            )
            self.move(who, on, into=True)
            if category == 1:
                who.window = (on, last)
        for i in range(released):
            out = self.day(shift(first, 1), last)
            who = self.eligible(category, released=out)
            if i % 2 == 0:
                self.release(who, out)
            if category == 1:
                # A short sentence may have been passed in the year itself.
                who.window = (max(first, who.levels[0][0]), last)
        for _ in range(sentenced):
            on = self.day(shift(first, 1), shift(last, -1))
            who = self.eligible(1, released=None, sentenced=on)
            who.window = (on, last)
        for _ in range(count - moved_in - released - sentenced):
            self.in_community(category)
        self.not_counted(category, count)

    def not_counted(self, category: int, count: int) -> None:
        """Level 1 people not counted on 31 March, in proportion to ``count`` who are:
        in custody then, exited during the year, moved out during it."""
        first, last = self.first, self.last
        for _ in range(_share(count, IN_CUSTODY_ON_31_MARCH)):
            self.eligible(
                category,
                released=self.day(shift(last, 30), shift(last, 900)),
                sentenced=self.day(shift(first, -900), shift(last, -30)),
            )
        for _ in range(_share(count, EXITED_IN_YEAR)):
            self.leaver(category)
        for _ in range(_share(count, TRANSFERRED_OUT)):
            who = self.in_community(category)
            on = self.day(shift(first, 10), last)
            self.move(who, on, into=False)
            who.window = (first, shift(on, -1)) if category == 1 else None

    def leaver(self, category: int) -> Person:
        """At Level 1 in the community until an exit in the year."""
        who = self.in_community(category)
        on = self.day(shift(self.first, 30), self.last)
        self.exit(who, on)
        who.window = (self.first, shift(on, -1)) if category == 1 else None
        return who

    def re_registered(self, category: int) -> Person:
        """Exits in the year, then is eligible again on a new sentence: counted on
        31 March at Level 1."""
        first = self.first
        who = self.eligible(category, released=self.day(shift(first, -2500), shift(first, -60)))
        out = self.day(shift(first, 20), shift(first, 120))
        self.exit(who, out)
        again = self.day(shift(out, 30), shift(out, 150))
        self.eligible(category, released=None, person=who, sentenced=again)
        return who

    def moved_in_for_31_march(self, category: int) -> Person:
        """Transferred in on 30 March and out again on 2 April: the area's on 31 March."""
        came = shift(self.last, -1)
        who = self.eligible(
            category, released=self.day(shift(came, -900), shift(came, -60)), published=came
        )
        self.move(who, came, into=True)
        self.move(who, shift(self.last, 2), into=False)
        return who
