"""Argument types for `mappa`'s parsers: each refuses a bad value with a message that
says what is expected, without quoting what was given (argparse would echo it, a
5,000-digit number included).

Python's ``int`` and ``date.fromisoformat`` take more than an operator means: digits of
other scripts (Arabic-Indic, fullwidth), underscores ("1_000"), numbers of any length (and a
``ValueError`` past 4,300 digits). These take ASCII digits only, within stated bounds.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import date

from broker.crypto.encoding import MAX_SAFE_INTEGER

_WHOLE = re.compile(r"-?[0-9]{1,20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def whole_number(low: int = 0, high: int = MAX_SAFE_INTEGER) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high``, in ASCII digits."""

    def parse(text: str) -> int:
        if _WHOLE.fullmatch(text) is None or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}")
        return int(text)

    parse.__name__ = "whole number"
    return parse


def calendar_date(text: str) -> date:
    """An argparse ``type``: a day of the calendar as YYYY-MM-DD, in ASCII digits."""
    expected = argparse.ArgumentTypeError("expected a real date as YYYY-MM-DD, such as 2026-11-23")
    if _DATE.fullmatch(text) is None:
        raise expected
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise expected from None
