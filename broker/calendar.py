"""Working days in England and Wales: weekdays that are not bank holidays.

The bank holidays follow the standing rules (Banking and Financial Dealings Act 1971 and
the annual proclamations as published on GOV.UK):

  New Year's Day      1 January, or the next Monday when it falls at a weekend
  Good Friday         two days before Easter Sunday (Gregorian computus)
  Easter Monday       the day after Easter Sunday
  Early May           first Monday in May
  Spring              last Monday in May
  Summer              last Monday in August
  Christmas, Boxing   25 and 26 December; weekend days move to the next free weekdays

Proclamations have moved or added days; those known are listed in ``MOVED`` and ``ADDED``
(source: GOV.UK bank holidays, https://www.gov.uk/bank-holidays). A future proclamation is
one line here.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

# Standing-rule dates replaced by proclamation: rule date -> actual date.
MOVED: dict[date, date] = {
    date(1995, 5, 1): date(1995, 5, 8),  # VE Day 50th anniversary
    date(2002, 5, 27): date(2002, 6, 4),  # Golden Jubilee
    date(2012, 5, 28): date(2012, 6, 4),  # Diamond Jubilee
    date(2020, 5, 4): date(2020, 5, 8),  # VE Day 75th anniversary
    date(2022, 5, 30): date(2022, 6, 2),  # Platinum Jubilee
}
# Extra days by proclamation.
ADDED: frozenset[date] = frozenset(
    {
        date(1999, 12, 31),  # Millennium
        date(2002, 6, 3),  # Golden Jubilee
        date(2011, 4, 29),  # Royal wedding
        date(2012, 6, 5),  # Diamond Jubilee
        date(2022, 6, 3),  # Platinum Jubilee
        date(2022, 9, 19),  # State funeral of Queen Elizabeth II
        date(2023, 5, 8),  # Coronation of King Charles III
    }
)


def easter_sunday(year: int) -> date:
    """Anonymous Gregorian computus (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    day = (h + el - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def _first_monday(year: int, month: int) -> date:
    d = date(year, month, 1)
    return d + timedelta(days=(7 - d.weekday()) % 7)


def _last_monday(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    d = nxt - timedelta(days=1)
    return d - timedelta(days=d.weekday())


def _next_weekday(d: date, taken: set[date]) -> date:
    while d.weekday() >= 5 or d in taken:
        d += timedelta(days=1)
    return d


@cache
def bank_holidays(year: int) -> frozenset[date]:
    easter = easter_sunday(year)
    days = {
        _next_weekday(date(year, 1, 1), set()),
        easter - timedelta(days=2),
        easter + timedelta(days=1),
        _first_monday(year, 5),
        _last_monday(year, 5),
        _last_monday(year, 8),
    }
    christmas = _next_weekday(date(year, 12, 25), set())
    boxing = _next_weekday(date(year, 12, 26), {christmas})
    days |= {christmas, boxing}
    days = {MOVED.get(d, d) for d in days}
    days |= {d for d in ADDED if d.year == year}
    return frozenset(days)


def is_working_day(d: date) -> bool:
    return d.weekday() < 5 and d not in bank_holidays(d.year)


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself not counted)."""
    if days < 0:
        raise ValueError("days must not be negative")
    d = start
    while days:
        d += timedelta(days=1)
        if is_working_day(d):
            days -= 1
    return d


def _weekdays_through(day: date) -> int:
    """Weekdays from 0001-01-01 (ordinal 1, a Monday) up to and including ``day``."""
    weeks, rest = divmod(day.toordinal(), 7)
    return weeks * 5 + min(rest, 5)


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end < start).
    Counted by weeks and by each year's bank holidays, not day by day: a span of
    centuries costs a few hundred set lookups, not a million."""
    if end < start:
        return -working_days_between(end, start)
    holidays = sum(
        1
        for year in range(start.year, end.year + 1)
        for d in bank_holidays(year)
        if start < d <= end and d.weekday() < 5
    )
    return _weekdays_through(end) - _weekdays_through(start) - holidays
