"""A fixture's value computed once per test run, by whichever xdist worker asks first.

A session fixture runs once per worker, and the workers share no memory: an expensive
run (the bench, the API guide's session) would run in each worker that takes one of its
tests. (pytest-xdist's ``loadgroup`` would send those tests to one worker, but with
pytest 9 it does not group them.) The first worker to ask computes the value under a
file lock and leaves it, pickled, in the run's shared temporary directory; the others
wait on the lock and read it. A value that failed to compute is not left: the next
worker to ask tries again, and fails the same way for itself.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def run_directory(factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of this run that every worker shares."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(factory: pytest.TempPathFactory, name: str, compute: Callable[[], T]) -> T:
    """``compute()``'s value, computed once in this run under ``name``."""
    root = run_directory(factory)
    kept = root / f"once-{name}.pickle"
    with (root / f"once-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if kept.exists():
                # Written by this run's own workers, from this checkout's own code.
                value: T = pickle.loads(kept.read_bytes())  # noqa: S301
                return value
            value = compute()
            kept.write_bytes(pickle.dumps(value))
            return value
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
