"""Bank holidays in England and Wales and working-day arithmetic, against published dates."""

from __future__ import annotations

from datetime import date

import pytest

from broker.calendar import (
    add_working_days,
    bank_holidays,
    easter_sunday,
    is_working_day,
    working_days_between,
)

# As published on GOV.UK (https://www.gov.uk/bank-holidays), England and Wales.
PUBLISHED = {
    2019: ["01-01", "04-19", "04-22", "05-06", "05-27", "08-26", "12-25", "12-26"],
    2020: ["01-01", "04-10", "04-13", "05-08", "05-25", "08-31", "12-25", "12-28"],
    2021: ["01-01", "04-02", "04-05", "05-03", "05-31", "08-30", "12-27", "12-28"],
    2022: [
        "01-03",
        "04-15",
        "04-18",
        "05-02",
        "06-02",
        "06-03",
        "08-29",
        "09-19",
        "12-26",
        "12-27",
    ],
    2023: ["01-02", "04-07", "04-10", "05-01", "05-08", "05-29", "08-28", "12-25", "12-26"],
    2024: ["01-01", "03-29", "04-01", "05-06", "05-27", "08-26", "12-25", "12-26"],
    2025: ["01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26"],
    2026: ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"],
    2027: ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"],
}


@pytest.mark.parametrize("year", sorted(PUBLISHED))
def test_bank_holidays_match_the_published_list(year: int) -> None:
    expected = {date.fromisoformat(f"{year}-{md}") for md in PUBLISHED[year]}
    assert bank_holidays(year) == expected


def test_easter() -> None:
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2038)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2038, 4, 25),
    ]


def test_working_days_skip_weekends_and_holidays() -> None:
    assert not is_working_day(date(2026, 12, 28))  # Boxing Day substitute
    assert not is_working_day(date(2026, 11, 28))  # Saturday
    assert is_working_day(date(2026, 11, 23))
    # 20 working days from Friday 4 December 2026: 7-11, 14-18, 21-24 (25th and 28th
    # off), 29-31, (1 January off), 4, 5, 6 January.
    assert add_working_days(date(2026, 12, 4), 20) == date(2027, 1, 6)
    assert working_days_between(date(2026, 12, 4), date(2027, 1, 6)) == 20
    assert working_days_between(date(2027, 1, 6), date(2026, 12, 4)) == -20
    assert add_working_days(date(2026, 11, 23), 0) == date(2026, 11, 23)
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2026, 11, 23), -1)
