"""Transfer deadlines, and the overdue report for the co-ordinators of both areas.

* Probation transfer: the case must be transferred (the transfer completed) within
  20 working days of the request, counting England and Wales working days
  (``broker.calendar``: weekends and bank holidays do not count).
* Registered sexual offender: the new address must be notified to the police within
  3 days of the move (calendar days: the notification requirement counts every day).
  A completion records the notification date; until one is recorded the deadline runs.

A refused or cancelled transfer has no deadlines left. A transfer known only from its
completion notice (no request date) has no probation deadline here. Nor is a deadline
shown whose dates are not on the calendar: a stored date that does not exist
(2026-02-31, from a peer that only checked its shape), or a due date past 9999-12-31.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from broker.calendar import add_working_days, working_days_between
from schemas.transfer import TransferRecord, TransferState

PROBATION_TRANSFER_WORKING_DAYS = 20
RSO_NOTIFICATION_DAYS = 3


@dataclass(frozen=True)
class Deadline:
    transfer_id: str
    kind: str  # "probation-transfer" | "rso-address-notification"
    due: date
    met_on: date | None

    def overdue(self, today: date) -> bool:
        return self.met_on is None and today > self.due

    def late(self) -> bool:
        """Met, but after the due date."""
        return self.met_on is not None and self.met_on > self.due


class _OffCalendar(Exception):
    """A date of the record, or a deadline from it, is not a day of the calendar."""


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _OffCalendar(text) from None


def _deadline(
    record: TransferRecord, kind: str, due: Callable[[], date], met_on: str | None
) -> list[Deadline]:
    """The one deadline, or none if its dates are off the calendar (module docstring)."""
    try:
        return [Deadline(record.transfer_id, kind, due(), _day(met_on))]
    except (_OffCalendar, OverflowError):
        return []


def deadlines(record: TransferRecord) -> list[Deadline]:
    """The deadlines of ``record`` (module docstring), probation first. Raises nothing."""
    if record.state in (TransferState.REFUSED, TransferState.CANCELLED):
        return []
    out = []
    requested, moved = record.requested_on, record.move_date
    if requested is not None:
        out += _deadline(
            record,
            "probation-transfer",
            lambda: add_working_days(
                date.fromisoformat(requested), PROBATION_TRANSFER_WORKING_DAYS
            ),
            record.completed_on,
        )
    if record.registered_sex_offender:
        out += _deadline(
            record,
            "rso-address-notification",
            lambda: date.fromisoformat(moved) + timedelta(days=RSO_NOTIFICATION_DAYS),
            record.address_notified_on,
        )
    return out


@dataclass(frozen=True)
class Overdue:
    record: TransferRecord
    deadline: Deadline
    # Working days past due for the probation deadline, calendar days for the RSO one.
    days_over: int

    def line(self) -> str:
        r, d = self.record, self.deadline
        unit = "working days" if d.kind == "probation-transfer" else "days"
        return (
            f"{r.transfer_id} {r.from_area} -> {r.to_area} ({r.state.value}): {d.kind} due "
            f"{d.due.isoformat()}, {self.days_over} {unit} overdue"
        )


def overdue(records: Iterable[TransferRecord], today: date) -> list[Overdue]:
    out = []
    for record in records:
        for d in deadlines(record):
            if not d.overdue(today):
                continue
            over = (
                working_days_between(d.due, today)
                if d.kind == "probation-transfer"
                else (today - d.due).days
            )
            out.append(Overdue(record, d, over))
    return sorted(out, key=lambda o: (o.deadline.due, o.record.transfer_id, o.deadline.kind))
