"""One subject's history as dated events, and its state on any date (docs/statistics.md §2).

A history is built from the messages the co-ordination unit holds (``Held``) and the
transfers its case registry knows; ``Timeline.state_on`` replays it up to a date.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date

from schemas.messages import (
    AreaTransfer,
    BreachRecall,
    CivilOrderMade,
    EligibilityNotified,
    ExitFromMappa,
    LevelSet,
    MessageBody,
    NotificationBreachOutcome,
    ReleaseScheduled,
    type_name,
)
from schemas.messages.base import Level
from schemas.messages.release import CustodyEvent
from schemas.messages.transfer import TransferStage
from schemas.transfer import TransferRecord, TransferState

# Messages counted against the state rather than changing it (§2).
COUNTED = frozenset(type_name(t) for t in (NotificationBreachOutcome, CivilOrderMade, BreachRecall))


@dataclass(frozen=True)
class Held:
    """One message the unit holds, opened: its body and what its header says of it."""

    sender: str
    message_id: str
    subject_ref: str
    created_at: str
    body: MessageBody
    supersedes: str | None = None


class Step(enum.IntEnum):
    """What an event does, in the order events of one date apply (§2's table)."""

    ELIGIBILITY = 1
    TRANSFER = 2
    LEVEL = 3
    RELEASE = 4
    CUSTODY = 5
    EXIT = 6


@dataclass(frozen=True)
class Event:
    on: date
    step: Step
    # Ties within a step and date: the envelope's created_at, then its message id.
    created_at: str
    message_id: str
    area: str | None = None
    category: int | None = None
    level: int | None = None
    from_area: str | None = None

    @property
    def order(self) -> tuple[date, int, str, str]:
        return (self.on, int(self.step), self.created_at, self.message_id)


@dataclass(frozen=True)
class State:
    """A subject on one date, after every event dated on or before it."""

    eligible: bool = False
    category: int | None = None
    level: int = int(Level.ORDINARY)
    area: str | None = None
    in_custody: bool = False

    def counts_for(self, area: str) -> bool:
        return self.eligible and self.area == area


def current(messages: Iterable[Held]) -> list[Held]:
    """``messages`` without those another message supersedes (§1): a correction takes the
    place of what it corrects."""
    held = list(messages)
    superseded = {(m.sender, m.supersedes) for m in held if m.supersedes}
    return [m for m in held if (m.sender, m.message_id) not in superseded]


def _date(text: str) -> date:
    return date.fromisoformat(text)


def events_of(message: Held) -> list[Event]:
    """The state-changing events one message makes (none for the counted-only types)."""
    body = message.body
    tie = (message.created_at, message.message_id)
    if isinstance(body, EligibilityNotified):
        return _eligibility_events(body, tie)
    if isinstance(body, AreaTransfer) and body.stage is TransferStage.COMPLETED:
        on = _date(body.move_date)
        return [Event(on, Step.TRANSFER, *tie, area=body.to_area, from_area=body.area)]
    dated: tuple[str, Step] | None = None
    if isinstance(body, LevelSet):
        return [Event(_date(body.effective_date), Step.LEVEL, *tie, level=int(body.level))]
    if isinstance(body, ReleaseScheduled):
        dated = (body.release_date, Step.RELEASE)
    elif isinstance(body, BreachRecall) and body.event is CustodyEvent.RETURNED_TO_CUSTODY:
        dated = (body.event_date, Step.CUSTODY)
    elif isinstance(body, ExitFromMappa):
        dated = (body.exit_date, Step.EXIT)
    return [] if dated is None else [Event(_date(dated[0]), dated[1], *tie)]


def _eligibility_events(body: EligibilityNotified, tie: tuple[str, str]) -> list[Event]:
    sentenced = _date(body.sentence_date)
    out = [
        Event(
            sentenced,
            Step.ELIGIBILITY,
            *tie,
            area=body.area,
            category=int(body.category),
            level=int(body.level),
        )
    ]
    if body.earliest_release_date and _date(body.earliest_release_date) > sentenced:
        out.append(Event(sentenced, Step.CUSTODY, *tie))
        out.append(Event(_date(body.earliest_release_date), Step.RELEASE, *tie))
    return out


def transfer_event(record: TransferRecord) -> Event | None:
    """A completed transfer in the registry moves the case on its completion date."""
    if record.state is not TransferState.COMPLETED or record.completed_on is None:
        return None
    return Event(
        _date(record.completed_on),
        Step.TRANSFER,
        record.updated_at,
        record.transfer_id,
        area=record.to_area,
        from_area=record.from_area,
    )


def apply(state: State, event: Event, *, transferred: bool) -> State:
    """``state`` after ``event``; ``transferred``: the case has a transfer, so its area
    is the transfers' and not an eligibility's."""
    if event.step is Step.ELIGIBILITY:
        area = state.area if transferred else event.area
        return replace(
            state,
            eligible=True,
            category=event.category,
            level=event.level or int(Level.ORDINARY),
            area=area,
        )
    if event.step is Step.TRANSFER:
        return replace(state, area=event.area)
    if event.step is Step.LEVEL:
        return replace(state, level=event.level or state.level)
    if event.step is Step.RELEASE:
        return replace(state, in_custody=False)
    if event.step is Step.CUSTODY:
        return replace(state, in_custody=True)
    return replace(state, eligible=False)


@dataclass(frozen=True)
class Timeline:
    """One subject's events in order, and what the report counts against them."""

    subject_ref: str
    events: tuple[Event, ...]
    # The counted-only messages (breach outcomes, civil orders, returns to custody).
    counted: tuple[Held, ...]

    @classmethod
    def of(
        cls, subject_ref: str, messages: Sequence[Held], transfers: Sequence[TransferRecord]
    ) -> Timeline:
        moves = [e for t in transfers if (e := transfer_event(t)) is not None]
        events = [e for m in messages for e in events_of(m)]
        if moves:
            # The registry's record of a move is the unit's own; a message about the
            # same move is not read again (it could date it otherwise).
            events = [e for e in events if e.step is not Step.TRANSFER]
        counted = tuple(m for m in messages if m.body.message_type in COUNTED)
        return cls(subject_ref, tuple(sorted(events + moves, key=lambda e: e.order)), counted)

    @property
    def first_transfer(self) -> Event | None:
        return next((e for e in self.events if e.step is Step.TRANSFER), None)

    def initial(self) -> State:
        """The state before any event: a transferred case starts in its first transfer's
        ``from_area`` (§2, area)."""
        first = self.first_transfer
        return State(area=first.from_area if first else None)

    def state_on(self, day: date) -> State:
        transferred = self.first_transfer is not None
        state = self.initial()
        for event in self.events:
            if event.on > day:
                break
            state = apply(state, event, transferred=transferred)
        return state

    def states_during(self, first: date, last: date) -> Iterator[State]:
        """Each state in force on some day of ``first``..``last`` (both included): the
        state after each date's events, not one between two events of the same date."""
        transferred = self.first_transfer is not None
        state = self.state_on(first)
        since = first
        for event in self.events:
            if event.on <= first:
                continue
            if event.on > last:
                break
            if event.on != since:
                yield state
                since = event.on
            state = apply(state, event, transferred=transferred)
        yield state

    def has_eligibility(self) -> bool:
        return any(e.step is Step.ELIGIBILITY for e in self.events)
