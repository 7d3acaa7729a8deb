"""Canonical bytes: strict JSON parsing, RFC 8785 canonicalisation, DSSE's PAE.

What we sign is always ``pae(payload_type, jcs(document))``: the JSON
Canonicalization Scheme fixes one byte string per document, and the
pre-authentication encoding fixes the document's type so a signature over one
kind of document can never be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import rfc8785

from broker.errors import SchemaError

# JSON nesting deeper than this is not a document of ours; refusing it early
# keeps a hostile record from costing recursion.
MAX_JSON_DEPTH = 12


# JSON numbers above this lose precision in RFC 8785's (ECMAScript) number formatting.
MAX_SAFE_INTEGER = 2**53 - 1


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
    goes through the reference implementation."""
    if _plain(document):
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    return bytes(rfc8785.dumps(document))


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


def strict_json(data: bytes) -> dict[str, Any]:
    """Parse one JSON object: UTF-8, no duplicate keys, no floats, bounded depth."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_floats,
            parse_constant=_no_constants,
        )
    except UnicodeDecodeError as exc:
        raise SchemaError("not UTF-8", code="schema.encoding") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SchemaError("not a JSON document", code="schema.not-json") from exc
    if not isinstance(value, dict):
        raise SchemaError("expected a JSON object", code="schema.not-object")
    _depth(value, MAX_JSON_DEPTH)
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
