"""Canonical encoding: our RFC 8785 fast path is byte-identical to the reference library."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto.encoding import MAX_SAFE_INTEGER, jcs, pae, strict_json
from broker.errors import SchemaError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.text(),  # every code point, controls, quotes, backslashes, U+2028, astral planes
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150)
@given(doc=st.dictionaries(st.text(max_size=8), documents, max_size=6))
def test_jcs_matches_the_rfc8785_reference(doc: dict[str, Any]) -> None:
    try:
        expected = rfc8785.dumps(doc)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises((rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError)):
            jcs(doc)
        return
    assert jcs(doc) == expected


def test_non_ascii_keys_and_big_numbers_take_the_reference_path() -> None:
    # Sorting by UTF-16 code units differs from code points for astral characters.
    doc = {"\U0001f600": 1, "\uff61": 2, "a": 2**60}
    # Beyond +-(2^53-1) JCS implementations disagree: refused with our code (issue 16).
    with pytest.raises(SchemaError) as out_of_range:
        jcs(doc)
    assert out_of_range.value.code == "schema.integer-range"
    doc = {"\U0001f600": 1, "\uff61": 2}
    assert jcs(doc) == rfc8785.dumps(doc)
    assert list(strict_json(jcs(doc))) == ["\U0001f600", "\uff61"]


def test_pae_is_length_prefixed() -> None:
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert pae("type/x", b"") == b"DSSEv1 6 type/x 0 "


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"a":1,"a":2}', "schema.duplicate-key"),
        (b'{"a":1.5}', "schema.float"),
        (b'{"a":1e3}', "schema.float"),
        (b'{"a":NaN}', "schema.constant"),
        (b"[1]", "schema.not-object"),
        (b"\xff", "schema.encoding"),
        (b"{", "schema.not-json"),
        (b'{"a":' * 13 + b"1" + b"}" * 13, "schema.too-deep"),
        # Issue 16: integers past +-(2^53-1), however long; a BOM; a lone surrogate.
        (b'{"a":' + b"1" * 5000 + b"}", "schema.integer-range"),
        (b'{"a":9007199254740992}', "schema.integer-range"),
        (b'{"a":-9007199254740992}', "schema.integer-range"),
        (b"\xef\xbb\xbf{}", "schema.encoding"),
        (b'{"a":"\\ud800"}', "schema.encoding"),
        (b'{"\\udfff":1}', "schema.encoding"),
    ],
)
def test_strict_json_refusals(raw: bytes, code: str) -> None:
    with pytest.raises(SchemaError) as err:
        strict_json(raw)
    assert err.value.code == code


def test_strict_json_takes_the_integer_bounds_and_a_surrogate_pair() -> None:
    assert strict_json(b'{"a":9007199254740991,"b":-9007199254740991}') == {
        "a": MAX_SAFE_INTEGER,
        "b": -MAX_SAFE_INTEGER,
    }
    assert strict_json(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}
