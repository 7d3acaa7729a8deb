"""Canonical bytes: strict JSON parsing, RFC 8785 canonicalisation, DSSE's PAE.

What we sign is always ``pae(payload_type, jcs(document))``: the JSON
Canonicalization Scheme fixes one byte string per document, and the
pre-authentication encoding fixes the document's type so a signature over one
kind of document can never be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

from broker.crypto import json_scan
from broker.errors import SchemaError

# JSON nesting deeper than this is not a document of ours; refusing it early
# keeps a hostile record from costing recursion.
MAX_JSON_DEPTH = 12


# JSON numbers above this lose precision in RFC 8785's (ECMAScript) number formatting,
# and JCS implementations disagree on them (I-JSON, RFC 7493 2.2): every integer we read
# or canonicalise is within +-MAX_SAFE_INTEGER.
MAX_SAFE_INTEGER = 2**53 - 1
# Digits of the longest integer in range: a longer one is refused before Python converts
# it (its int-string limit raises a plain ValueError at 4,300 digits).
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a parsed string (raw
# UTF-8 cannot encode one), so only text holding one needs its strings walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _plain(document: Mapping[str, Any] | list[Any]) -> bool:
    """True if ``document`` has only ASCII keys, no floats and only safe integers: then
    RFC 8785 output is exactly the standard library's sorted, compact, non-ASCII-escaping
    JSON (the two differ only in sorting non-ASCII keys and in formatting numbers).
    Exact type checks: anything unusual (a subclass, a float) takes the reference path."""
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is not int or abs(item) > MAX_SAFE_INTEGER:
            return False
    return True


def jcs(document: Mapping[str, Any] | list[Any]) -> bytes:
    """RFC 8785 canonical JSON bytes. Our documents take the fast path (identical output,
    checked against the ``rfc8785`` reference by tests/test_encoding.py); anything else
    goes through the reference implementation. Raises ``SchemaError``
    (``schema.integer-range``: an integer beyond +-(2^53-1); ``schema.encoding``: a lone
    surrogate; ``schema.not-canonicalisable``: a value JSON has no form for)."""
    try:
        if _plain(document):
            return json.dumps(
                document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        return bytes(rfc8785.dumps(document))
    except rfc8785.IntegerDomainError:
        raise SchemaError(
            f"an integer beyond +-{MAX_SAFE_INTEGER}", code="schema.integer-range"
        ) from None
    except UnicodeEncodeError:
        raise SchemaError("a lone surrogate in a string", code="schema.encoding") from None
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        # rfc8785 says "non-UTF-8 codepoints" for a lone surrogate too; the message names
        # no value of the input either way.
        code = "schema.encoding" if "UTF-8" in str(exc) else "schema.not-canonicalisable"
        raise SchemaError(f"no canonical JSON form ({type(exc).__name__})", code=code) from None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: lengths first, so nothing is ambiguous."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers could each pick a different copy: refuse, never guess.
            raise SchemaError(f"duplicate JSON key {key!r}", code="schema.duplicate-key")
        out[key] = value
    return out


def _no_floats(text: str) -> Any:
    raise SchemaError("JSON numbers must be integers", code="schema.float")


def _no_constants(text: str) -> Any:
    raise SchemaError(f"JSON constant {text} is not allowed", code="schema.constant")


def _safe_integer(text: str) -> int:
    """A JSON integer within +-MAX_SAFE_INTEGER; the length is checked before converting,
    so no digit string costs more than a few characters' work."""
    digits = text.lstrip("-")
    if len(digits) > _MAX_INTEGER_DIGITS or int(digits) > MAX_SAFE_INTEGER:
        raise SchemaError(
            f"JSON integers must be within +-{MAX_SAFE_INTEGER}", code="schema.integer-range"
        )
    return int(text)


def _depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise SchemaError("JSON nested too deeply", code="schema.too-deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _no_lone_surrogates(value: Any) -> None:
    """Every string (key or value) is Unicode text: a lone surrogate, which a JSON escape
    can spell, has no UTF-8 form, so nothing could canonicalise it."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise SchemaError("a lone surrogate in a string", code="schema.encoding") from None


def _parse(text: str) -> Any:
    """``json.loads`` with our hooks, whose first refusal is the first problem in the
    text however deeply it nests: text nested deeper than ``json.loads`` can follow goes
    to ``json_scan.loads``, which reads the same grammar and calls the same hooks in the
    same order without recursing (docs/envelope.md section 2)."""
    hooks: dict[str, Any] = {
        "object_pairs_hook": _no_duplicate_keys,
        "parse_float": _no_floats,
        "parse_int": _safe_integer,
        "parse_constant": _no_constants,
    }
    if not json_scan.deeper_than(text, json_scan.JSON_LOADS_NESTING):
        # A caller already deep in its own stack can still run json.loads out of it.
        with contextlib.suppress(RecursionError):
            return json.loads(text, **hooks)
    return json_scan.loads(text, **hooks)


def strict_json(data: bytes) -> dict[str, Any]:
    """Parse one JSON object: UTF-8 without a byte-order mark, no duplicate keys, no
    floats or constants, integers within +-(2^53-1), no lone surrogate, bounded depth.
    Raises ``SchemaError`` (``schema.encoding``, ``schema.not-json``,
    ``schema.duplicate-key``, ``schema.float``, ``schema.constant``,
    ``schema.integer-range``, ``schema.not-object``, ``schema.too-deep``) and nothing
    else."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise SchemaError("a byte-order mark before the JSON text", code="schema.encoding")
    try:
        text = data.decode("utf-8")
        value = _parse(text)
    except UnicodeDecodeError:
        raise SchemaError("not UTF-8", code="schema.encoding") from None
    except (json.JSONDecodeError, RecursionError, ValueError):
        # ValueError: anything else the parser refuses; never with the input in it.
        raise SchemaError("not a JSON document", code="schema.not-json") from None
    if not isinstance(value, dict):
        raise SchemaError("expected a JSON object", code="schema.not-object")
    _depth(value, MAX_JSON_DEPTH)
    if _SURROGATE_ESCAPE.search(text):
        _no_lone_surrogates(value)
    return value


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, expected_len: int | None = None, max_len: int | None = None) -> bytes:
    """Strict standard base64; length checked against the field's named limit."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SchemaError("invalid base64", code="schema.base64") from exc
    if expected_len is not None and len(data) != expected_len:
        raise SchemaError(
            f"expected {expected_len} bytes, got {len(data)}", code="schema.field-length"
        )
    if max_len is not None and len(data) > max_len:
        raise SchemaError(f"at most {max_len} bytes allowed", code="schema.field-length")
    return data
