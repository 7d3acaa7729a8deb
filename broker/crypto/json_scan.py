"""JSON parsing that does not recurse, for text nested deeper than ``json.loads`` follows.

``json.loads``'s C scanner recurses once per array or object, so nesting of about a
thousand raises ``RecursionError`` wherever in the text it is, and a syntax error, a
float or a duplicate key before or inside that nesting goes unreported. ``loads`` here
parses the same grammar, calling the same hooks at the same moments, with an explicit
stack, so its first problem is the one ``json.loads`` would meet with no recursion limit:

- whitespace is only space, tab, line feed and carriage return; an empty text, a value
  followed by anything but whitespace, a trailing comma and a text starting with U+FEFF
  are syntax errors;
- strings are read by ``json.decoder.scanstring``, the very function ``json.loads`` uses
  (control characters below U+0020 and bad escapes refused; a surrogate pair joined);
- a number ``-?(0|[1-9][0-9]*)`` (ASCII digits only) goes to ``parse_int`` as soon as it
  is read, or, with a fraction ``.[0-9]+`` or an exponent ``[eE][-+]?[0-9]+``, to
  ``parse_float``; a ``.`` or ``e`` that does not continue it is left for the next read
  (so ``1.`` is the integer 1, then a syntax error);
- ``NaN``, ``Infinity`` and ``-Infinity`` go to ``parse_constant`` as soon as they are
  read (``NaNx`` reads the constant first); ``null``, ``true`` and ``false``;
- in an object: the key, then ``:``, then the value; ``object_pairs_hook`` gets the pairs
  when the object closes (so a problem inside an object comes before a duplicate among
  its keys, and a duplicate in an object that closed before a problem comes first).

This follows CPython's C scanner (``_json``), which ``json.loads`` uses wherever it exists.

Syntax errors raise ``json.JSONDecodeError``, as ``json.loads`` does; hooks' errors pass.
``deeper_than`` is the cheap check for when ``json.loads`` can be left to do the work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate, repeat
from typing import Any

# Nesting up to this is left to json.loads: a quarter of CPython's default recursion limit
# (1,000), the rest left for the caller's own frames. Deeper text is parsed here.
JSON_LOADS_NESTING = 256

# Whitespace in Python's JSON grammar (and RFC 8259's): nothing else.
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_BLANKS = frozenset(" \t\n\r")
# The common cases read in one step (each read in full by the general code otherwise):
# a key with no escape, quote or control character in it (so it is its own value),
# with its colon; and a run of opening brackets.
_PLAIN_KEY = re.compile(r'"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*')
_OPEN_ARRAYS = re.compile(r"(?:\[[ \t\n\r]*)+")
# json.loads's number, as its C scanner reads it: ASCII digits only (``\d`` would take any
# Unicode digit, as the pure-Python scanner does).
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# For deeper_than: a string (to the end of the text if unterminated, so the scan never
# backtracks), or a run of anything but brackets and quotes; both removed, brackets left.
_STRING_OR_NOT_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^\[\]{}"]+', re.DOTALL)
_NESTING_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# The words json.loads reads by their first character, with their values...
_LITERALS: dict[str, tuple[str, Any]] = {
    "n": ("null", None),
    "t": ("true", True),
    "f": ("false", False),
}
# ... and the constants it hands to parse_constant (a "-" not starting one starts a number).
_CONSTANTS = {"N": "NaN", "I": "Infinity", "-": "-Infinity"}
# The very string reader json.loads uses (the C one, or Python's where there is none);
# typeshed does not declare it.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def deeper_than(text: str, limit: int) -> bool:
    """True if ``text``'s brackets outside strings nest deeper than ``limit``. Exact up
    to the first syntax error, which is as far as ``json.loads`` reads (so the most it
    can recurse); beyond it, it may say anything (an unterminated string runs to the
    end). A text with at most ``limit`` opening brackets (every document of ours) costs
    two ``str.count``."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _STRING_OR_NOT_BRACKET.sub("", text)
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0) > limit


class _Object:
    """An object being read: its pairs so far, and the key whose value comes next."""

    __slots__ = ("key", "pairs")

    def __init__(self, key: str) -> None:
        self.key = key
        self.pairs: list[tuple[str, Any]] = []


def _skip(text: str, at: int) -> int:
    """Where the whitespace from ``at`` ends (most often at ``at``: checked first)."""
    if text[at : at + 1] not in _BLANKS:
        return at
    blank = _WHITESPACE.match(text, at)
    return blank.end() if blank else at


def _syntax_error(message: str, text: str, at: int) -> json.JSONDecodeError:
    return json.JSONDecodeError(message, text, at)


def _key(text: str, at: int) -> tuple[str, int]:
    """An object's key at ``at``, then ``:``; returns the key and where its value starts."""
    plain = _PLAIN_KEY.match(text, at)
    if plain is not None:
        return plain.group(1), plain.end()
    if not text.startswith('"', at):
        raise _syntax_error("Expecting property name enclosed in double quotes", text, at)
    key, at = _scanstring(text, at + 1, True)
    at = _skip(text, at)
    if not text.startswith(":", at):
        raise _syntax_error("Expecting ':' delimiter", text, at)
    return key, _skip(text, at + 1)


def _scalar(
    text: str,
    at: int,
    parse_float: Callable[[str], Any],
    parse_int: Callable[[str], Any],
    parse_constant: Callable[[str], Any],
) -> tuple[Any, int]:
    """The string, literal, constant or number at ``at``, and where it ends."""
    char = text[at : at + 1]
    if char == '"':
        return _scanstring(text, at + 1, True)
    literal = _LITERALS.get(char)
    if literal is not None and text.startswith(literal[0], at):
        return literal[1], at + len(literal[0])
    constant = _CONSTANTS.get(char)
    if constant is not None and text.startswith(constant, at):
        return parse_constant(constant), at + len(constant)
    number = _NUMBER.match(text, at)
    if number is None:
        raise _syntax_error("Expecting value", text, at)
    fraction, exponent = number.groups()
    return (parse_float if fraction or exponent else parse_int)(number.group()), number.end()


def _settle(
    text: str,
    at: int,
    stack: list[list[Any] | _Object | str | None],
    value: Any,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any],
) -> tuple[int, Any]:
    """Puts ``value``, which ended at ``at``, into the innermost open container, and each
    container that then closes into the next one out. Returns where the next value
    starts, or, when the stack empties, where the top value ends and that value."""
    while stack:
        container = stack[-1]
        if container is None:
            container = stack[-1] = [value]
            closer = "]"
        elif isinstance(container, list):
            container.append(value)
            closer = "]"
        else:
            if isinstance(container, str):
                container = stack[-1] = _Object(container)
            container.pairs.append((container.key, value))
            closer = "}"
        at = _skip(text, at)
        if not text.startswith(closer, at):
            if not text.startswith(",", at):
                raise _syntax_error("Expecting ',' delimiter", text, at)
            at = _skip(text, at + 1)
            if isinstance(container, _Object):
                container.key, at = _key(text, at)
            return at, None
        stack.pop()
        at += 1
        value = container if isinstance(container, list) else object_pairs_hook(container.pairs)
    return at, value


def loads(
    text: str,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any],
    parse_float: Callable[[str], Any],
    parse_int: Callable[[str], Any],
    parse_constant: Callable[[str], Any],
) -> Any:
    """``json.loads(text, **hooks)`` with no recursion, hence no depth limit."""
    if text.startswith("\ufeff"):
        raise _syntax_error("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    # The open containers, innermost last: an array (its items so far; None before the
    # first) or an object (its pairs so far; only the key of the first before its value),
    # so that nesting, until a value is in it, costs no object the collector tracks.
    stack: list[list[Any] | _Object | str | None] = []
    at = _skip(text, 0)
    while True:
        # A value starts at ``at``.
        value: Any
        char = text[at : at + 1]
        if char == "{":
            at = _skip(text, at + 1)
            if text.startswith("}", at):
                value, at = object_pairs_hook([]), at + 1
            else:
                key, at = _key(text, at)
                stack.append(key)
                continue
        elif char == "[":
            run = _OPEN_ARRAYS.match(text, at)
            opened = text.count("[", at, run.end()) if run else 1
            # All but the last of a run are arrays whose first item is an array.
            stack.extend(repeat(None, opened - 1))
            at = run.end() if run else at + 1
            if text.startswith("]", at):
                value, at = [], at + 1
            else:
                stack.append(None)
                continue
        else:
            value, at = _scalar(text, at, parse_float, parse_int, parse_constant)
        at, value = _settle(text, at, stack, value, object_pairs_hook)
        if not stack:
            at = _skip(text, at)
            if at != len(text):
                raise _syntax_error("Extra data", text, at)
            return value
