"""What a justification for opening a record is, in one place for every way in (the
HTTP API, an adapter's ``open``, the demo): the gateway's ``consult`` holds every
justification to it.

A justification is read after Unicode NFC normalisation, without the blanks around it
(``BLANK``). It is:

* visible: no character that prints nothing or turns text around (Unicode categories
  Cc, Cf, Cs, Co and Cn: NUL, other controls, tabs and line breaks, zero-width
  characters, bidirectional overrides, lone surrogates, private-use and unassigned code
  points), else ``consult.justification-invalid``;
* present and bounded: at least ``MIN_JUSTIFICATION_CHARS`` characters, else
  ``consult.justification-missing``, and at most ``MAX_JUSTIFICATION_CHARS``, else
  ``consult.justification-invalid``;
* words: at least ``MIN_JUSTIFICATION_WORDS`` words of two letters or more, else
  ``consult.justification-invalid``. An inquiry reads the reason later; ten dots, a
  number or one repeated letter tells it nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# A consultation must say why; "x" is not a reason an inquiry would accept.
MIN_JUSTIFICATION_CHARS = 10
# The audit event's limit for a justification.
MAX_JUSTIFICATION_CHARS = 4000
MIN_JUSTIFICATION_WORDS = 2
JUSTIFICATION_MISSING = "consult.justification-missing"
JUSTIFICATION_INVALID = "consult.justification-invalid"
# "Blank" as JSON Schema's regex (ECMA-262 \s) has it, which is how the API documents the
# rule; Python's str.strip() would also strip control characters such as U+001F.
BLANK = "".join(
    (
        " \t\n\v\f\r\u00a0\u1680",
        *map(chr, range(0x2000, 0x200B)),
        "\u2028\u2029\u202f\u205f\u3000\ufeff",
    )
)
# Categories of characters that print nothing, or reorder what is printed.
INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass(frozen=True)
class Problem:
    """Why a text is not a justification: the reason code and what to fix."""

    code: str
    reason: str


def normalised(text: str) -> str:
    """``text`` as a justification is judged and audited: NFC, blanks around it removed."""
    return unicodedata.normalize("NFC", text).strip(BLANK)


def _words(text: str) -> int:
    """Runs of two or more letters (combining marks count with their letter)."""
    words = run = 0
    for c in text:
        if unicodedata.category(c)[0] in "LM":
            run += 1
            continue
        words += run >= 2
        run = 0
    return words + (run >= 2)


def justification_problem(text: str) -> Problem | None:
    """None if ``text`` is a justification (module docstring), else why it is not."""
    given = normalised(text)
    # Invisible text first, however short: a refusal for want of length keeps what was
    # given in the audit log, and this must not be kept there.
    if any(unicodedata.category(c) in INVISIBLE for c in given):
        return Problem(
            JUSTIFICATION_INVALID,
            "a justification must be visible text: no control, format (zero-width, "
            "bidirectional), private-use or unassigned characters, tabs or line breaks",
        )
    if len(given) < MIN_JUSTIFICATION_CHARS:
        return Problem(
            JUSTIFICATION_MISSING,
            f"a justification of at least {MIN_JUSTIFICATION_CHARS} characters is "
            "required to open a record",
        )
    if len(given) > MAX_JUSTIFICATION_CHARS:
        return Problem(
            JUSTIFICATION_INVALID,
            f"a justification has at most {MAX_JUSTIFICATION_CHARS} characters",
        )
    if _words(given) < MIN_JUSTIFICATION_WORDS:
        return Problem(
            JUSTIFICATION_INVALID,
            f"a justification must say why in words: at least {MIN_JUSTIFICATION_WORDS} "
            "words of two letters or more",
        )
    return None
