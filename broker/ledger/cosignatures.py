"""The witnesses' cosignatures the ledger gathered, kept for good in table
``cosignatures`` (ledger schema step 4): one row per (checkpoint size, witness), the
cosignature line as the witness returned it, checked against the witness policy before
it is kept. A checkpoint is served with its lines appended (``witnessing``).

A ledger whose step 4 is pending (a read-only reader of an older ledger) has no
cosignatures: reading gives none.
"""

from __future__ import annotations

from broker.ledger.database import Database


def cosignatures_ddl(dialect: str) -> str:
    """``cosignatures``: a witness's cosignature line on the checkpoint of ``size``."""
    big = "BIGINT" if dialect == "postgresql" else "INTEGER"
    return f"""CREATE TABLE IF NOT EXISTS cosignatures (
    size {big} NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (size, witness)
)"""


def create_cosignatures(db: Database) -> None:
    """Step 4: the ``cosignatures`` table, where missing."""
    db.execute(cosignatures_ddl(db.dialect))


class CosignatureLog:
    """The ``cosignatures`` table on the ledger's connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _exists(self) -> bool:
        if self._db.dialect == "postgresql":
            rows = self._db.execute("SELECT to_regclass('cosignatures') IS NOT NULL")
            return rows[0][0] is True
        return bool(
            self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
            )
        )

    def add(self, size: int, lines: dict[str, str], *, time: str) -> None:
        """Keep each witness's cosignature line (``lines``, by witness name) on the
        checkpoint of ``size``, in one transaction (a second line for the same pair is
        ignored: the first stands). Returns nothing."""
        if not lines:
            return
        with self._db.transaction():
            self._db.executemany(
                "INSERT INTO cosignatures (size, witness, line, time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (size, witness) DO NOTHING",
                [(size, witness, line, time) for witness, line in lines.items()],
            )

    def at(self, size: int) -> dict[str, str]:
        """The lines kept for the checkpoint of ``size``, by witness name (sorted)."""
        if not self._exists():
            return {}
        rows = self._db.execute(
            "SELECT witness, line FROM cosignatures WHERE size = ? ORDER BY witness", (size,)
        )
        return {str(w): str(line) for w, line in rows}

    def latest_size(self, witness: str) -> int:
        """The largest checkpoint size ``witness`` cosigned for this ledger (0: none): the
        size the ledger believes the witness holds."""
        if not self._exists():
            return 0
        rows = self._db.execute(
            "SELECT coalesce(max(size), 0) FROM cosignatures WHERE witness = ?", (witness,)
        )
        return int(rows[0][0])
