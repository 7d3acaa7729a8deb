"""``strict_json`` on text nested deeper than ``json.loads`` can follow (docs/envelope.md
section 2): the first problem in the text decides, however deep, exactly as it would were
``json.loads`` without a recursion limit; and ``json_scan.loads``, which parses such text,
is ``json.loads`` wherever ``json.loads`` works (the properties below).

``MAPPA_FUZZ_EXAMPLES`` examples per property (``make fuzz`` runs thousands).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.crypto import json_scan
from broker.crypto.encoding import MAX_JSON_DEPTH, strict_json
from broker.errors import SchemaError

EXAMPLES = int(os.environ.get("MAPPA_FUZZ_EXAMPLES", "60"))
# The properties are cheap (a few hundred characters each): three times the usual count.
PROPERTY = settings(
    max_examples=EXAMPLES * 3,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def outcome(data: bytes) -> str:
    """strict_json's refusal code, or "ok"."""
    try:
        strict_json(data)
    except SchemaError as exc:
        return exc.code or "no code"
    return "ok"


@contextmanager
def scanner_only() -> Iterator[None]:
    """strict_json with every text taken for deep: json_scan.loads parses it all."""
    with mock.patch.object(json_scan, "deeper_than", return_value=True):
        yield


def arrays(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def objects(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


def mixed(depth: int, inner: str = "1") -> str:
    """``depth`` containers, alternately objects and arrays, the top one an object."""
    opening = "".join('{"a":' if level % 2 == 0 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))
    return opening + inner + closing


DEPTHS = [13, 300, 2_000, 200_000]
# At 200,000 deep (up to a second a text), a few of the outcomes only: of arrays (read a
# run at a time), these; of objects and mixed nesting, the float.
VERY_DEEP_OUTCOMES = {"1", "1.5", "99999999999999999", '{"k":1,"k":2}', "extra", "top"}
NESTINGS = {"arrays": arrays, "objects": objects, "mixed": mixed}


def deep_cases() -> Iterator[Any]:
    """(text, code): each first problem, at each depth, in each kind of nesting. An object
    nesting ``d`` deep holding a scalar is ``d + 1`` deep (a scalar counts a level), so
    every text here is too deep if nothing comes first; a text wrapped in ``{"w":...}``
    has an object on top (so not-object does not come first)."""
    for depth in DEPTHS:
        for name, nest in NESTINGS.items():
            wrap = nest is arrays
            for inner, code in [
                ("1", "schema.too-deep"),
                ("1.5", "schema.float"),
                ("1e5", "schema.float"),
                ("9007199254740992", "schema.integer-range"),
                ("99999999999999999", "schema.integer-range"),
                ("-" + "9" * 5000, "schema.integer-range"),
                ("9007199254740991", "schema.too-deep"),
                ("NaN", "schema.constant"),
                ("-Infinity", "schema.constant"),
                ('{"k":1,"k":2}', "schema.duplicate-key"),
                ('{"k":1,"\\u006b":2}', "schema.duplicate-key"),
                ('"\\ud800"', "schema.too-deep"),  # too deep comes before a lone surrogate
                ("tru", "schema.not-json"),
                ('"\x01"', "schema.not-json"),
                ("1.", "schema.not-json"),
                ("01", "schema.not-json"),
            ]:
                if not wanted(depth, name, inner):
                    continue
                text = nest(depth, inner)
                if wrap:
                    text = '{"w":' + text + "}"
                yield pytest.param(text, code, id=f"{name}-{depth}-{inner[:12]}")
            # A syntax error at the very end, after everything else is well formed.
            if wanted(depth, name, "extra"):
                yield pytest.param(nest(depth) + "]", "schema.not-json", id=f"{name}-{depth}-extra")
            if wanted(depth, name, "unclosed"):
                yield pytest.param(
                    nest(depth)[:-1], "schema.not-json", id=f"{name}-{depth}-unclosed"
                )
            # A float at the start comes before a syntax error at the end.
            if wanted(depth, name, "float-first"):
                yield pytest.param(
                    "[1.5," + nest(depth), "schema.float", id=f"{name}-{depth}-float-first"
                )
            # Not an object comes before too deep.
            if nest is arrays and wanted(depth, name, "top"):
                yield pytest.param(nest(depth), "schema.not-object", id=f"arrays-{depth}-top")


def wanted(depth: int, nesting: str, case: str) -> bool:
    if depth <= 2_000:
        return True
    return case in VERY_DEEP_OUTCOMES if nesting == "arrays" else case == "1.5"


@pytest.mark.parametrize(("text", "code"), list(deep_cases()))
def test_the_first_problem_decides_at_any_depth(text: str, code: str) -> None:
    assert outcome(text.encode()) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # In an object, the pairs hook runs when it closes: a float later inside it first...
        ('{"a":1,"a":' + arrays(2_000, "1.5") + "}", "schema.float"),
        # ... but a duplicate in an object that closed earlier comes before a deep float.
        ('{"d":{"a":1,"a":2},"b":' + arrays(2_000, "1.5") + "}", "schema.duplicate-key"),
        # The inner object closes first: its duplicate before the outer one's.
        ('{"a":1,"a":' + objects(2_000, '{"k":1,"k":1.5}') + "}", "schema.float"),
        # An integer is refused as it is read, before a syntax error after it.
        ("[" * 2_000 + "99999999999999999.", "schema.integer-range"),
        ("[" * 2_000 + "1.", "schema.not-json"),
        # A constant is read whole before what follows it ("NaNx").
        ("[" * 2_000 + "NaNx", "schema.constant"),
        ("[" * 2_000 + "-NaN", "schema.not-json"),
        # Whitespace is only space, tab, line feed, carriage return.
        ('{"a":' + "[ \t\n\r" * 2_000 + "1" + "]" * 2_000 + "}", "schema.too-deep"),
        ('{"a":' + "[\x0c" * 2_000 + "1" + "]" * 2_000 + "}", "schema.not-json"),
        ('{"a":' + "[\u00a0" * 2_000 + "1" + "]" * 2_000 + "}", "schema.not-json"),
        # Only ASCII digits.
        ('{"a":' + arrays(2_000, "\u0661") + "}", "schema.not-json"),
        # Brackets inside strings do not nest; escaped quotes do not end a string.
        ('{"a":"' + "[" * 2_000 + '"}', "ok"),
        ('{"a":"\\"' + "[" * 2_000 + '"}', "ok"),
        ('{"a":["\\\\",' + "[" * 2_000 + "]" * 2_000 + "]}", "schema.too-deep"),
        # Exactly MAX_JSON_DEPTH deep is fine, one more is not, however the text looks.
        (objects(MAX_JSON_DEPTH - 1) + " " * 1_000 + "[]" * 300, "schema.not-json"),
        (objects(MAX_JSON_DEPTH - 1), "ok"),
        ('{"l":[' + "[]," * 300 + "[]]}", "ok"),
        # Colons, commas, trailing commas, keys.
        ('{"a"' + arrays(2_000), "schema.not-json"),
        ('{"a":' + arrays(2_000) + ",}", "schema.not-json"),
        ('{"a":[' + arrays(2_000) + ",]}", "schema.not-json"),
        ("{1:" + arrays(2_000) + "}", "schema.not-json"),
        ('{"a":' + arrays(2_000) + "} ", "schema.too-deep"),
        ('{"a":' + arrays(2_000) + "}\x00", "schema.not-json"),
        ("", "schema.not-json"),
        ("   ", "schema.not-json"),
        # A lone surrogate: refused last, after the depth.
        ('{"\\udc00":' + "[]" * 300 + "}", "schema.not-json"),
        ('{"\\udc00":[' + "[]," * 300 + "[]]}", "schema.encoding"),
        ('{"\\ud83d\\ude00":[' + "[]," * 300 + "[]]}", "ok"),
    ],
)
def test_grammar_and_hook_order_in_deep_text(text: str, code: str) -> None:
    assert outcome(text.encode()) == code
    with scanner_only():
        assert outcome(text.encode()) == code


def test_a_mebibyte_of_brackets_is_refused() -> None:
    assert outcome(b"[" * 2**20) == "schema.not-json"


def test_deeper_than_never_says_shallower() -> None:
    assert not json_scan.deeper_than(arrays(256), 256)
    assert json_scan.deeper_than(arrays(257), 256)
    # After json.loads's first syntax error, anything: here, an unterminated string.
    assert not json_scan.deeper_than('["\x01' + "[" * 300, 256)
    assert outcome(('{"a":["\x01' + "[" * 300).encode()) == "schema.not-json"
    assert not json_scan.deeper_than('["' + "[" * 300 + '"]', 256)
    assert not json_scan.deeper_than('["\\"' + "[" * 300 + '"]', 256)
    assert json_scan.deeper_than('["\\\\"' + ",[" * 300, 256)


def test_text_json_loads_can_follow_goes_to_json_loads() -> None:
    """The common path is unchanged: only nesting beyond JSON_LOADS_NESTING is scanned."""
    limit = json_scan.JSON_LOADS_NESTING
    with mock.patch.object(json_scan, "loads", side_effect=AssertionError("scanned")):
        assert outcome(('{"l":[' + "[1]," * 5_000 + "[]]}").encode()) == "ok"
        assert outcome(('{"s":"' + "[" * 5_000 + '"}').encode()) == "ok"
        assert outcome(('{"a":' + arrays(limit - 1) + "}").encode()) == "schema.too-deep"
    assert outcome(('{"a":' + arrays(limit) + "}").encode()) == "schema.too-deep"


def test_a_caller_deep_in_its_own_stack_still_gets_the_first_problem() -> None:
    """json.loads raising RecursionError on shallow text sends it to the scanner."""
    text = '{"a":1,"a":[1.5]}'
    with mock.patch.object(json, "loads", side_effect=RecursionError):
        assert outcome(text.encode()) == "schema.float"
        assert strict_json(b'{"a":[1,{"b":null}]}') == {"a": [1, {"b": None}]}


# The properties: on text json.loads can follow, json_scan.loads is json.loads.

# Tokens that reach every branch of the grammar and every hook.
SCALARS = [
    "0", "-0", "1", "-1", "12", "9007199254740991", "-9007199254740991", "9007199254740992",
    "1" * 17, "1.5", "-0.0", "1e5", "1E+2", "1e-2", "2.5e3", "NaN", "Infinity", "-Infinity",
    "null", "true", "false", '""', '"a"', '"\\u0061"', '"\\n\\t\\"\\\\\\/"', '"\\ud800"',
    '"\\udc00"', '"\\ud83d\\ude00"', '"\\ud800\\u0041"', '"\u00e9\U0001f600"',
]  # fmt: skip
KEYS = ['"a"', '"b"', '"\\u0061"', '""', '"\\ud800"']
SPACES = ["", "", "", " ", "\n\t\r "]
# What a mutation inserts: every character the grammar gives a meaning to, and some not.
NOISE = '[]{}:,"\\ 0123456789.eE+-ntfulrsaNIy\x00\x1f\x0c\u00a0\u0661'

nodes = st.recursive(
    st.sampled_from(SCALARS),
    lambda inner: st.one_of(
        st.tuples(st.just("["), st.lists(inner, max_size=4)),
        st.tuples(st.just("{"), st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=4)),
    ),
    max_leaves=20,
)


def render(node: Any, space: Callable[[], str]) -> str:
    if isinstance(node, str):
        return node
    kind, items = node
    if kind == "[":
        inside = ("," + space()).join(render(item, space) for item in items)
        return "[" + space() + inside + space() + "]"
    pairs = (key + space() + ":" + space() + render(value, space) for key, value in items)
    return "{" + space() + ("," + space()).join(pairs) + space() + "}"


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Generated JSON (floats, constants, duplicate keys, surrogates and all), wrapped in
    up to 20 containers, then up to three characters inserted, deleted or replaced."""
    spaces = draw(st.lists(st.sampled_from(SPACES), min_size=1, max_size=8))
    turn = iter(range(10**6))
    text = render(draw(nodes), lambda: spaces[next(turn) % len(spaces)])
    for wrapper in draw(st.lists(st.sampled_from(["[", "{", "{k"]), max_size=20)):
        if wrapper == "[":
            text = "[" + text + "]"
        elif wrapper == "{":
            text = '{"a":' + text + "}"
        else:
            text = '{"a":0,"b":' + text + ',"c":0}'
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        change = draw(st.sampled_from(["insert", "delete", "replace"]))
        noise = draw(st.sampled_from(NOISE))
        if change == "insert":
            text = text[:at] + noise + text[at:]
        elif change == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + noise + text[at + 1 :]
    return text


def recording_hooks(log: list[Any]) -> dict[str, Any]:
    """Hooks that refuse nothing and note each call: the calls and their order compared."""

    def pairs(items: list[tuple[str, Any]]) -> Any:
        log.append(("object", [key for key, _ in items]))
        return ("object", items)

    def tagged(kind: str) -> Callable[[str], Any]:
        def hook(text: str) -> Any:
            log.append((kind, text))
            return (kind, text)

        return hook

    return {
        "object_pairs_hook": pairs,
        "parse_float": tagged("float"),
        "parse_int": tagged("int"),
        "parse_constant": tagged("constant"),
    }


def parsed(loads: Callable[..., Any], text: str) -> tuple[list[Any], str]:
    """The hook calls ``loads`` made, and its value or that it found a syntax error."""
    log: list[Any] = []
    try:
        result = repr(loads(text, **recording_hooks(log)))
    except json.JSONDecodeError:
        result = "syntax error"
    return log, result


@pytest.mark.fuzz
@PROPERTY
@given(text=texts())
def test_the_scanner_is_json_loads(text: str) -> None:
    """Same hook calls in the same order, then the same value or a syntax error."""
    assert parsed(json_scan.loads, text) == parsed(json.loads, text)


@pytest.mark.fuzz
@PROPERTY
@given(text=texts())
def test_strict_json_decides_alike_on_both_paths(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    expected = outcome(data)
    with scanner_only():
        assert outcome(data) == expected
    if expected == "ok":
        with scanner_only():
            scanned = strict_json(data)
        assert repr(scanned) == repr(strict_json(data))


@pytest.mark.fuzz
@PROPERTY
@given(text=texts(), depth=st.integers(257, 600))
def test_deep_wrapping_keeps_the_first_problem(text: str, depth: int) -> None:
    """Wrapped in deep nesting (the scanner's path), a text json.loads follows keeps its
    first problem; a text with none but its top value, its depth or a lone surrogate
    (which all come after the parse) is then too deep. (A syntax error may turn into
    anything: "1, 1.5" is not JSON, "[1, 1.5]" has a float.)"""
    inner = outcome(text.encode("utf-8", "surrogatepass"))
    if inner == "schema.not-json":
        return
    wrapped = ('{"a":' + "[" * depth + text + "]" * depth + "}").encode("utf-8", "surrogatepass")
    after_the_parse = ("ok", "schema.not-object", "schema.too-deep", "schema.encoding")
    assert outcome(wrapped) == ("schema.too-deep" if inner in after_the_parse else inner)


def nesting(value: Any) -> int:
    """How many containers deep ``value`` nests (a scalar: 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple)):
            deepest = max(deepest, depth + 1)
            stack.extend((inner, depth + 1) for inner in item)
    return deepest


@pytest.mark.fuzz
@PROPERTY
@given(text=texts())
def test_deeper_than_is_exact_on_json(text: str) -> None:
    """On text json.loads reads whole, deeper_than measures its nesting exactly."""
    try:
        value = json.loads(text, object_pairs_hook=lambda pairs: tuple(v for _, v in pairs))
    except ValueError:
        return
    depth = nesting(value)
    assert not json_scan.deeper_than(text, depth)
    assert depth == 0 or json_scan.deeper_than(text, depth - 1)
