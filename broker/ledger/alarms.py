"""The ledger's alarms: what its own watch or its scheduled verify found wrong, kept for
good in table ``alarms``, and its state while it runs (``WatchStatus``).

An alarm is a row: when, who raised it (``watch``: the check before each checkpoint;
``verify``: the scheduled whole-ledger verify; ``cleared``: a full verify at start found
the ledger intact again), the first entry it cannot vouch for (None: it cannot say
which, so none) and what is wrong, in words that name entries and sizes only, never a
value of an entry. Rows are only ever added: the latest decides whether the ledger is
halted (any kind but ``cleared``).

This module imports nothing heavy: ``log`` (and so ``verify``'s workers) imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from broker.ledger.database import Database

AlarmKind = Literal["watch", "verify", "cleared"]
# An alarm's problem is our own text (entry numbers and sizes); this bounds a row all
# the same, should a future message grow.
MAX_PROBLEM = 1000


@dataclass(frozen=True)
class Alarm:
    """One row of ``alarms`` (see the module)."""

    id: int
    time: str
    kind: str
    first_bad_entry: int | None
    problem: str

    def to_json(self) -> dict[str, Any]:
        """The alarm as a JSON-ready dict, one key per field."""
        return asdict(self)

    def vouches_for(self, seq: int) -> bool:
        """Whether entry ``seq`` is still vouched for under this open alarm: before its
        first bad entry (none when it names none)."""
        return self.first_bad_entry is not None and seq < self.first_bad_entry


class AlarmLog:
    """The ``alarms`` table on the ledger's connection. A ledger whose schema step 3 is
    pending (a read-only reader of an older ledger) has no alarms: reading gives none."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._found = False  # the table is there (it is never dropped once made)

    def _exists(self) -> bool:
        if not self._found:
            self._found = self._look()
        return self._found

    def _look(self) -> bool:
        if self._db.dialect == "postgresql":
            rows = self._db.execute("SELECT to_regclass('alarms') IS NOT NULL")
            return rows[0][0] is True
        return bool(
            self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alarms'")
        )

    def add(self, *, time: str, kind: AlarmKind, first_bad_entry: int | None, problem: str) -> None:
        """Record an alarm, in a transaction of its own. Returns nothing; lets the
        database's errors pass."""
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO alarms (time, kind, first_bad_entry, problem) VALUES (?, ?, ?, ?)",
                (time, kind, first_bad_entry, problem[:MAX_PROBLEM]),
            )

    def all(self) -> list[Alarm]:
        """Every alarm, oldest first (none where the table does not exist yet)."""
        if not self._exists():
            return []
        rows = self._db.execute(
            "SELECT id, time, kind, first_bad_entry, problem FROM alarms ORDER BY id"
        )
        return [_alarm(row) for row in rows]

    def open(self) -> Alarm | None:
        """The latest alarm unless it is ``cleared`` (the ledger is halted while there is
        one); None if there is none."""
        if not self._exists():
            return None
        rows = self._db.execute(
            "SELECT id, time, kind, first_bad_entry, problem FROM alarms ORDER BY id DESC LIMIT 1"
        )
        if not rows or rows[0][2] == "cleared":
            return None
        return _alarm(rows[0])


def _alarm(row: Any) -> Alarm:
    i, time, kind, entry, problem = row
    return Alarm(int(i), str(time), str(kind), None if entry is None else int(entry), str(problem))


@dataclass
class VerifyProgress:
    """The scheduled verify's figures, for the metrics: whether one runs, entries hashed
    of the entries to hash in the current (or last) run, runs completed, the Unix time
    the last one completed, and how many found the ledger tampered."""

    running: bool = False
    hashed: int = 0
    total: int = 0
    completed: int = 0
    last_completed: float | None = None
    tampered: int = 0


@dataclass
class WatchStatus:
    """The running ledger's own state, in memory, shared by its service (which writes it)
    and its reader and metrics (which read it): the open alarm that halts it, if any,
    and the scheduled verify's progress."""

    halted: Alarm | None = None
    verify: VerifyProgress = field(default_factory=VerifyProgress)
