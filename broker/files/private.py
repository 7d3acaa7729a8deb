"""Files that hold personal data or secrets: the service user's alone.

Agency stores, the audit ledger and the API's credentials name people or hold secrets;
under a common umask (022) SQLite would create them world-readable (0644). Each is
made 0600 before SQLite opens it, so the write-ahead log and shared-memory files SQLite
creates beside it take the same mode; the data directory and the folders that hold
them are 0700. A file or folder left readable by others by an earlier version is made
private when next opened.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# SQLite's companions of a database file, created with the database file's mode.
_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create the folder ``path`` (and missing parents) readable by its owner only, or
    make an existing one so. Returns nothing."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    path.chmod(PRIVATE_DIR_MODE)


def private_file(path: Path) -> None:
    """Create the file ``path`` empty (its folder too, private, if missing) readable by
    its owner only, or make an existing one and its SQLite companions so. Call it
    before SQLite opens ``path``. Returns nothing."""
    if not path.parent.exists():
        private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    path.chmod(PRIVATE_FILE_MODE)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(PRIVATE_FILE_MODE)
