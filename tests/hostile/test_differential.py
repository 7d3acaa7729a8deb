"""The two implementations of docs/envelope.md and docs/receipts.md agree on hostile input.

The vectors (``tests/vectors/``) bind the Python product and the Java library
(``sdk/java``) on chosen inputs. Here many more are generated: deterministic, seeded
mutations of the vectors' valid envelopes and receipts (byte flips, truncation, duplicated
keys, numbers as floats, huge integers and constants, strings with escapes, surrogates and
control characters, members removed, added, renamed and reordered, nested arrays,
whitespace and a byte order mark, type changes, base64 with padding bits set or its length
changed, header and receipt fields given other values), many of them signed again after the
change (the vector generators' own helpers) so that they get past the signature and reach
the later steps. Each case is evaluated in Python with the functions the vector checks use
(``tests.vectors.generate.evaluate``, ``tests.vectors.receipts.evaluate``) and in Java by
one run of ``org.mappabroker.envelope.differential.Outcomes`` (the JUnit vector harnesses'
receivers), and the outcomes must be identical: a view kind, ``not-addressed``,
``duplicate``, ``accepted``, or the refusal code. A Java exception other than a refusal is
printed as ``crash:<class>``, a disagreement like any other.

Every run tries a fixed sweep first (each listed field of a classic, a pq-hybrid and a
publication envelope and of a delivery and a ledger receipt given each listed value, with
and without a new signature; about 2,400 cases) and the size limits, then
``MAPPA_DIFFERENTIAL_CASES`` random cases (default 16 per ``MAPPA_FUZZ_EXAMPLES``: 960 in
``make test``, 80,000 with ``MAPPA_FUZZ_EXAMPLES=5000``); ``MAPPA_DIFFERENTIAL_SEED`` picks
another deterministic set. The generated cases must reach at least ``MIN_OUTCOMES``
distinct outcomes, so that the test cannot pass on junk every parser refuses alike.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import copy
import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker.crypto.encoding import jcs
from broker.errors import MappaError
from broker.gateway.receipts import DELIVERY_KIND, MAX_RECEIPT_BYTES
from schemas.directory import KeyAlg
from schemas.envelope import MAX_ENVELOPE_BYTES
from tests import java_sdk
from tests.vectors import generate, receipts

pytestmark = pytest.mark.fuzz

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
OUTCOMES_MAIN = "org.mappabroker.envelope.differential.Outcomes"
EXAMPLES = int(os.environ.get("MAPPA_FUZZ_EXAMPLES", "60"))
CASES = int(os.environ.get("MAPPA_DIFFERENTIAL_CASES", str(16 * EXAMPLES)))
SEED = int(os.environ.get("MAPPA_DIFFERENTIAL_SEED", "21"))
# Fewer distinct outcomes means the mutations stopped reaching past the parser.
MIN_OUTCOMES = 10
# One JVM over every case: start-up, the vectors' keys and directories, then ~1 ms a case.
JAVA_SECONDS = 60 + CASES / 50
# Disagreements listed in a failure, first first.
SHOWN = 25

# -- a JSON text with what a dict cannot hold: repeated keys, raw tokens --------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as given: a float, a constant, an escape, a broken string."""

    text: str


@dataclass
class Obj:
    """An object as its members in order, a key possibly repeated or written raw."""

    pairs: list[tuple[str | Raw, Any]] = field(default_factory=list)


def tree(value: Any) -> Any:
    """A parsed document as a mutable tree of ``Obj``, lists and scalars."""
    if isinstance(value, dict):
        return Obj([(k, tree(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [tree(v) for v in value]
    return value


def plain(node: Any) -> Any:
    """The tree as a document again, or ``None`` where it holds a raw token or a key twice
    (nothing the product's JCS can sign)."""
    if isinstance(node, Raw):
        return None
    if isinstance(node, Obj):
        keys = [k for k, _ in node.pairs]
        signable = not any(isinstance(k, Raw) for k in keys) and len(set(keys)) == len(keys)
        out = {k: plain(v) for k, v in node.pairs} if signable else None
        lost = out is None or any(out[k] is None and v is not None for k, v in node.pairs)
        return None if lost else out
    if isinstance(node, list):
        items = [plain(v) for v in node]
        lost = any(p is None and v is not None for p, v in zip(items, node, strict=True))
        return None if lost else items
    return node


Space = Callable[[], str]


def emit(node: Any, space: Space, *, ascii_only: bool) -> str:
    """The tree as JSON text, ``space()`` between every two tokens."""

    def text(s: str | Raw) -> str:
        return s.text if isinstance(s, Raw) else json.dumps(s, ensure_ascii=ascii_only)

    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Obj):
        members = [
            f"{space()}{text(k)}{space()}:{space()}{emit(v, space, ascii_only=ascii_only)}{space()}"
            for k, v in node.pairs
        ]
        return "{" + ",".join(members) + space() + "}"
    if isinstance(node, list):
        items = [f"{space()}{emit(v, space, ascii_only=ascii_only)}{space()}" for v in node]
        return "[" + ",".join(items) + "]"
    if isinstance(node, str):
        return text(node)
    return json.dumps(node)


def compact(node: Any) -> bytes:
    return emit(node, str, ascii_only=False).encode("utf-8", "surrogatepass")


@dataclass
class Spot:
    """A place in the tree: the container, where in it, and the value there."""

    parent: Obj | list[Any]
    index: int
    key: str
    value: Any

    def put(self, value: Any) -> None:
        if isinstance(self.parent, Obj):
            k, _ = self.parent.pairs[self.index]
            self.parent.pairs[self.index] = (k, value)
        else:
            self.parent[self.index] = value


def spots(node: Any, key: str = "") -> Iterator[Spot]:
    """Every value below ``node``, with the key it is under (an array item: its array's)."""
    if isinstance(node, Obj):
        for i, (k, v) in enumerate(node.pairs):
            name = k.text if isinstance(k, Raw) else k
            yield Spot(node, i, name, v)
            yield from spots(v, name)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield Spot(node, i, key, v)
            yield from spots(v, key)


def objects(node: Any) -> list[Obj]:
    found = [node] if isinstance(node, Obj) else []
    return found + [s.value for s in spots(node) if isinstance(s.value, Obj)]


# -- mutations -------------------------------------------------------------------------------------

NUMBERS = (
    "1.0", "1e0", "1E2", "-0", "0.5", "-1", "01", "1e400", "-1e-400", "NaN", "Infinity",
    "-Infinity", "9007199254740991", "9007199254740992", "-9007199254740991",
    "-9007199254740992", "18446744073709551616", "9" * 400, "2", "0", "-", "+1", "0x10",
)  # fmt: skip
CONSTANTS = ("null", "true", "false", "NaN", "nan", "None", "True", "undefined", "[]", "{}")
KEYS = (
    "extra", "note", "header", "signatures", "views", "recipients", "publication", "kind",
    "suite", "receipt", "signature", "key_id", "__proto__", "", "x" * 300,
)  # fmt: skip
BASE64_KEYS = frozenset(
    {"ciphertext", "nonce", "key_commitment", "wrapped_key", "signature", "path", "public_key"}
)
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Whitespace JSON allows, and some it does not.
SPACES = (" ", "\t", "\n", "\r", "\r\n", "  ")
NOT_SPACES = ("\x0b", "\x0c", "\u00a0", "\u2028", "\ufeff", "\x00")
# Bytes that are not UTF-8: a lone continuation, an overlong '/', a surrogate, a cut-off
# sequence, bytes never valid.
NOT_UTF8 = (b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xff", b"\xf8\x88\x80\x80\x80")


def _escaped(s: str, rng: random.Random) -> Raw:
    """``s`` with one character written as a ``\\u`` escape: the same string."""
    if not s:
        return Raw('""')
    i = rng.randrange(len(s))
    body = json.dumps(s[:i], ensure_ascii=False)[1:-1]
    rest = json.dumps(s[i + 1 :], ensure_ascii=False)[1:-1]
    ch = s[i]
    esc = "".join(f"\\u{u:04x}" for u in _utf16(ch))
    if rng.random() < 0.5:
        esc = esc.upper().replace("\\U", "\\u")
    return Raw(f'"{body}{esc}{rest}"')


def _utf16(ch: str) -> list[int]:
    raw = ch.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _string_variant(s: str, rng: random.Random) -> Any:
    """``s`` changed one way: an escape for the same text, a surrogate (lone, reversed or a
    pair), NUL, a raw control character, an escape JSON does not have, case, a look-alike,
    cut, doubled, an unterminated string."""
    inner = json.dumps(s, ensure_ascii=False)[1:-1]
    cut = rng.randrange(len(inner) + 1)
    a, b = inner[:cut], inner[cut:]
    control = rng.choice(["\x01", "\t", "\n", "\x1f", "\x7f"])
    escape = rng.choice("qxU0a/ '")
    variants: list[Callable[[], Any]] = [
        lambda: _escaped(s, rng),
        lambda: Raw(f'"{a}\\ud800{b}"'),
        lambda: Raw(f'"{a}\\udc00\\ud800{b}"'),
        lambda: Raw(f'"{a}\\ud83d\\ude00{b}"'),
        lambda: s[:cut] + "\x00" + s[cut:],
        lambda: Raw(f'"{a}{control}{b}"'),
        lambda: Raw(f'"{a}\\{escape}{b}"'),
        lambda: Raw(f'"{a}\\/{b}"'),
        lambda: s.upper() if rng.random() < 0.5 else s.lower(),
        lambda: s + rng.choice([" ", "\n", "\u00e9", "\u0130", "\ufffd", "x"]),
        lambda: "",
        lambda: s[:cut],
        lambda: Raw(f'"{a}'),
        lambda: s + s,
        lambda: s[:cut] + "\u212a" + s[cut:],  # a Kelvin sign: lower() of it is 'k'
        lambda: s.replace("-", "\u2010", 1),
    ]
    return rng.choice(variants)()


def _base64_variant(s: str, rng: random.Random) -> Any:
    """Base64 ``s`` changed one way: padding bits set (decodes alike, not canonical),
    padding dropped or added, the URL-safe alphabet, a character inserted, a byte flipped or
    added, shortened, lengthened, emptied."""
    cut = rng.randrange(len(s) + 1)
    variants: list[Callable[[], Any]] = [
        lambda: _padding_bits_set(s),
        lambda: s.rstrip("="),
        lambda: s + "=",
        lambda: s.replace("+", "-").replace("/", "_") if "+" in s or "/" in s else s[:-1] + "-",
        lambda: s[:cut] + rng.choice(["\n", " ", "\r\n", "=", "*"]) + s[cut:],
        lambda: s[: max(0, len(s) - 4 * rng.randint(1, 3))],
        lambda: s + "AAAA" * rng.randint(1, 2),
        lambda: _bit_flipped(s, rng),
        lambda: s[:-1],
        lambda: base64.b64encode(base64.b64decode(s) + b"\x00").decode(),
        lambda: "",
    ]
    return rng.choice(variants)()


def _padding_bits_set(s: str) -> str:
    body = s.rstrip("=")
    if body == s or not body:
        return s + "="
    last = BASE64_ALPHABET.index(body[-1])
    return body[:-1] + BASE64_ALPHABET[last | 1] + s[len(body) :]


def _bit_flipped(s: str, rng: random.Random) -> str:
    raw = bytearray(base64.b64decode(s))
    if raw:
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return base64.b64encode(bytes(raw)).decode()


def _value_pool(original: Any, rng: random.Random) -> Any:
    pool: list[Any] = [
        None, True, False, 0, -1, 1, 2, "", "0", [], Obj(), [original], Obj([("x", original)]),
        Raw(rng.choice(NUMBERS)), Raw(rng.choice(CONSTANTS)), 2**53 - 1, -(2**53) + 1,
    ]  # fmt: skip
    return rng.choice(pool)


def _nested(node: Any, depth: int) -> Any:
    for _ in range(depth):
        node = [node]
    return node


TreeMutation = Callable[[Any, random.Random], str]


def m_dup_key(doc: Any, rng: random.Random) -> str:
    obj = rng.choice([o for o in objects(doc) if o.pairs])
    k, v = rng.choice(obj.pairs)
    again = v if rng.random() < 0.5 else _value_pool(v, rng)
    obj.pairs.insert(rng.randrange(len(obj.pairs) + 1), (k, again))
    return f"dup-key {k}"


def m_drop(doc: Any, rng: random.Random) -> str:
    obj = rng.choice([o for o in objects(doc) if o.pairs])
    k, _ = obj.pairs.pop(rng.randrange(len(obj.pairs)))
    return f"drop {k}"


def m_add(doc: Any, rng: random.Random) -> str:
    obj = rng.choice(objects(doc))
    k = rng.choice(KEYS)
    obj.pairs.insert(rng.randrange(len(obj.pairs) + 1), (k, _value_pool("x", rng)))
    return f"add {k[:20]}"


def m_rename(doc: Any, rng: random.Random) -> str:
    obj = rng.choice([o for o in objects(doc) if o.pairs])
    i = rng.randrange(len(obj.pairs))
    k, v = obj.pairs[i]
    if isinstance(k, Raw):
        return "rename (raw)"
    how = rng.randrange(5)
    new: str | Raw = (
        _escaped(k, rng)
        if how == 0
        else k.upper()
        if how == 1
        else k + " "
        if how == 2
        else k[:-1]
        if how == 3
        else k.replace("_", "-")
    )
    obj.pairs[i] = (new, v)
    return f"rename {k} {'escaped' if how == 0 else how}"


def m_reorder(doc: Any, rng: random.Random) -> str:
    obj = rng.choice(objects(doc))
    rng.shuffle(obj.pairs)
    return "reorder"


def m_number(doc: Any, rng: random.Random) -> str:
    places = [s for s in spots(doc) if isinstance(s.value, int) and not isinstance(s.value, bool)]
    if not places:
        return m_type(doc, rng)
    spot = rng.choice(places)
    n = rng.choice(NUMBERS)
    spot.put(Raw(n))
    return f"number {spot.key}={n[:24]}"


def m_string(doc: Any, rng: random.Random) -> str:
    spot = rng.choice([s for s in spots(doc) if isinstance(s.value, str)])
    spot.put(_string_variant(spot.value, rng))
    return f"string {spot.key}"


def m_type(doc: Any, rng: random.Random) -> str:
    spot = rng.choice(list(spots(doc)))
    spot.put(_value_pool(spot.value, rng))
    return f"type {spot.key}"


def m_nest(doc: Any, rng: random.Random) -> str:
    spot = rng.choice(list(spots(doc)))
    depth = rng.randint(1, 14)
    spot.put(_nested(spot.value if rng.random() < 0.5 else [], depth))
    return f"nest {spot.key} {depth}"


def m_base64(doc: Any, rng: random.Random) -> str:
    places = [s for s in spots(doc) if isinstance(s.value, str) and s.key in BASE64_KEYS]
    if not places:
        return m_string(doc, rng)
    spot = rng.choice(places)
    spot.put(_base64_variant(spot.value, rng))
    return f"base64 {spot.key}"


TREE_MUTATIONS: tuple[tuple[TreeMutation, int], ...] = (
    (m_dup_key, 2), (m_drop, 3), (m_add, 2), (m_rename, 2), (m_reorder, 2), (m_number, 3),
    (m_string, 4), (m_type, 3), (m_nest, 2), (m_base64, 4),
)  # fmt: skip


# -- field values that reach the later steps (signed again after the change) ------------------


def _zeros(size: int) -> str:
    return base64.b64encode(bytes(size)).decode()


TIMES = (
    "2026-11-23T11:59:00Z", "2026-11-23T11:59:00.000+00:00", "2026-11-23t11:59:00.000z",
    "2026-11-23T11:59:00.0000Z", "2026-11-23T11:59:60.000Z", "2026-11-23T12:04:59.000Z",
    "2026-11-23T12:05:01.000Z", "2026-11-23T12:06:00.000Z", "2026-11-09T11:59:00.000Z",
    "2026-11-01T00:00:00.000Z", "2026-11-23T11:59:01.001Z", "0000-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z", "2026-02-30T11:59:00.000Z", "2026-11-23T11:59:00.000Z ",
    "2026-11-23 11:59:00.000Z", "2026-11-23T24:00:00.000Z",
)  # fmt: skip
IDS = (
    "00000000-0000-4000-8000-0000000000ff", "00000000-0000-4000-8000-0000000000FF",
    "000000000000400080000000000000ff", "{00000000-0000-4000-8000-0000000000ff}",
    "00000000-0000-0000-0000-000000000000", "not-a-uuid", "019ab1c0-0000-7000-8000-000000000001",
)  # fmt: skip
AGENCIES = (
    generate.SENDER, generate.FULL_TO, generate.REDACTED_TO, generate.OUTSIDER,
    "police.nowhere", "Police.Staffordshire", "ledger", "",
)  # fmt: skip
TOPICS = (
    generate.TOPIC, "mappa.staffordshire.dtc.housing", "mappa.derbyshire.ra",
    "mappa.staffordshire", "mappa.staffordshire.coord", "other.staffordshire.ra",
    "mappa..ra", "mappa.staffordshire.ra.x", "mappa.Staffordshire.ra",
)  # fmt: skip
TEXTS = (
    "x" * 200, "x" * 201, "\U0001f600" * 200, "\U0001f600" * 101, "\u00e9" * 200,
    "\u00e9" * 201, "a\x00b", "\x1f", "\x7f", "\u2028\u2029", "\ufeff", '"\\/', " ",
    "\ud7ff\ue000\uffff", "\U0010ffff", "".join(chr(c) for c in range(32)), "e\u0301",
)  # fmt: skip
FIELD_VALUES: dict[str, tuple[Any, ...]] = {
    "envelope_version": (0, 2, -1, "1"),
    "suite": ("classic", "pq-hybrid", "rot13", "Classic", ""),
    "message_id": IDS,
    "created_at": TIMES,
    "sender": AGENCIES,
    "area": ("staffordshire", "derbyshire", "Staffordshire", ""),
    "topic": TOPICS,
    "message_type": ("risk-assessment", "release-scheduled", "unknown-type", ""),
    "schema_version": (0, 2, 9007199254740991),
    "subject_ref": ("0" * 64, "A" * 64, "0" * 63, "g" * 64),
    "isa_id": ("mappa-default.staffordshire", "mappa-default.derbyshire", ""),
    "isa_version": (0, 1, 2, -1),
    "classification": ("OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "official-sensitive"),
    "supersedes": (None, "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "x", *IDS[:2]),
    "agency": AGENCIES,
    "view_id": (0, 1, 2, -1, 9007199254740991),
    "kind": ("full", "redacted", "summary", "FULL", DELIVERY_KIND, "mappa.ledger-receipt"),
    "alg": ("ed25519", "ml-dsa-65", "x25519", "rsa"),
    "key_id": ("", "ed25519:" + "0" * 64),
    "outcome": ("delivered", "refused", "lost", ""),
    "reason_code": (None, "policy.breach-view-too-rich", "x", "decryption.failed"),
    "time": TIMES,
    "recipient": AGENCIES,
    "tree_size": (0, 1, 364, 366, 9007199254740991),
    "receipt_version": (0, 2),
    "held": ([], ["019ab1c0-0000-7000-8000-000000000001"] * 2),
    "refused": ([],),
    "event_id": IDS,
    # "string 1-200 chars": counted in code points or UTF-16 units? And how JCS writes each
    # control character, a line separator, a character beyond the BMP.
    "purpose": TEXTS,
    "lawful_basis": TEXTS,
    "index": (0, 1, 2, 3, -1),
    "size": (0, 1, 2, 3, 4),
    # Sizes either side of each base64 field's exact or greatest length (docs/envelope.md
    # §2.2): 80 and 1168 bytes are the suites' wrapped keys, 1168 the bound.
    "wrapped_key": tuple(_zeros(n) for n in (0, 79, 80, 81, 1167, 1168, 1169, 1170)),
    "nonce": tuple(_zeros(n) for n in (11, 12, 13)),
    "key_commitment": tuple(_zeros(n) for n in (31, 32, 33)),
    "ciphertext": tuple(_zeros(n) for n in (0, 15, 16, 17)),
}


def shown(key: str, value: Any) -> str:
    """``key=value`` in a case's description: a long string by its length (a base64 one by
    its decoded size)."""
    if not isinstance(value, str) or len(value) <= 40:
        return f"{key}={value!r}"
    if key in BASE64_KEYS:
        with contextlib.suppress(ValueError):
            return f"{key}=<base64 of {len(base64.b64decode(value, validate=True))} bytes>"
    return f"{key}={value[:20]!r}... ({len(value)} characters)"


def m_field(doc: Any, rng: random.Random) -> str:
    """A field the spec checks after the signature, given another (well-typed or not)
    value: the caller signs the document again where it can."""
    places = [s for s in spots(doc) if s.key in FIELD_VALUES and not isinstance(s.value, Obj)]
    spot = rng.choice(places)
    options = FIELD_VALUES[spot.key]
    value = rng.choice(options) if rng.random() < 0.85 else _value_pool(spot.value, rng)
    spot.put(copy.deepcopy(value))
    return f"field {shown(spot.key, value)}"


def m_sender_keys(doc: Any, rng: random.Random) -> str:
    header = next(v for k, v in doc.pairs if k == "header")
    i = next(i for i, (k, _) in enumerate(header.pairs) if k == "sender_keys")
    keys = list(header.pairs[i][1])
    choice = rng.randrange(5)
    if choice == 0:
        keys = []
    elif choice == 1:
        keys = keys + keys
    elif choice == 2:
        keys = [generate.key(generate.OUTSIDER, KeyAlg.ED25519).key_id]
    elif choice == 3:
        keys = [generate.key(generate.SENDER, KeyAlg.ML_DSA_65).key_id, *keys]
    else:
        keys = [*reversed(keys), generate.key(generate.SENDER, KeyAlg.X25519).key_id]
    header.pairs[i] = ("sender_keys", keys)
    return f"sender_keys {choice}"


def m_list(doc: Any, rng: random.Random) -> str:
    """An array of the envelope (recipients, views, signatures, path) reordered, cut short,
    emptied or given an item twice."""
    places = [s for s in spots(doc) if isinstance(s.value, list) and s.key != "sender_keys"]
    spot = rng.choice(places)
    items = list(spot.value)
    choice = rng.randrange(4)
    if choice == 0:
        rng.shuffle(items)
    elif choice == 1:
        items = items[:-1]
    elif choice == 2:
        items = []
    elif items:
        items = [*items, copy.deepcopy(rng.choice(items))]
    spot.put(items)
    return f"list {spot.key} {choice}"


# -- the cases ------------------------------------------------------------------------------------


class RecordValue(str):
    """A vector's text whose ``encode()`` is the case's record value, byte for byte.

    The vector evaluators read the record value as ``vector["envelope"].encode()`` and
    ``str(vector["value"]).encode()``: text cannot hold bytes that are not UTF-8, and
    those are inputs the two implementations must judge alike too."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RecordValue:
        made = super().__new__(cls, raw.decode("utf-8", "replace"))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw

    def __str__(self) -> str:
        return self


@dataclass
class Case:
    """One generated input: what it was made from and how, and the settings it is read
    with (the vector files' overrides)."""

    name: str
    kind: str
    mutation: str
    value: bytes
    settings: dict[str, Any]

    def line(self) -> str:
        return json.dumps(
            {"kind": self.kind, "value_b64": base64.b64encode(self.value).decode(), **self.settings}
        )


ENVELOPE_SETTINGS: dict[str, tuple[Any, ...]] = {
    "topic": TOPICS,
    "record_time": TIMES[5:11],
    "now": ("2026-11-23T12:00:00.000Z", "2026-11-23T11:50:00.000Z", "2026-12-08T12:00:00.000Z"),
    "directory": (
        "default", "revoked", "superseded", "pq-hybrid-only", "expired", "sender-suspended",
        "key-not-yet-valid",
    ),
    "agreement_version": (1, 2, 3),
    "allowed_suites": (["classic"], ["pq-hybrid"], []),
    "seen": ("same", "other-sender"),
}  # fmt: skip
RECEIPT_SETTINGS: dict[str, tuple[Any, ...]] = {
    "record_time": ("2026-11-23T12:00:01.000Z", "2026-11-23T10:30:01.000Z", *TIMES[5:9]),
    "directory": ("default", "recipient-key-revoked"),
    "ledger_key": (False,),
}


def _resign_envelope(doc: dict[str, Any]) -> bytes | None:
    header = doc.get("header")
    if not isinstance(header, dict) or header.get("suite") != "classic":
        return None
    # A re-signed envelope signs itself, not a publication's root.
    doc.pop("publication", None)
    try:
        return generate.resign_classic(doc)
    except (MappaError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def _resign_receipt(doc: dict[str, Any]) -> bytes | None:
    try:
        receipt = doc["receipt"]
        if receipt.get("kind") == DELIVERY_KIND:
            who = receipt.get("recipient")
            name = who if who in AGENCIES[:4] else "rogue"
            return receipts.sign(doc, generate.key(name, KeyAlg.ED25519))
        return receipts.sign(doc, receipts.ledger_key())
    except (MappaError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def _text_mutation(value: bytes, rng: random.Random) -> tuple[bytes, str]:
    """The record's bytes changed: a bit or byte flipped, cut short, a byte order mark, a
    tail, bytes that are not UTF-8 inside a string, a byte JSON does not allow between
    tokens."""
    i = rng.randrange(len(value))
    mask = 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
    tail = rng.choice([b"x", b"{}", b"]", b",", b"\x00", b" " * rng.randint(1, 50), b"\n"])
    quote = rng.choice([q for q, b in enumerate(value) if b == ord('"')] or [0]) + 1
    bad = rng.choice(NOT_UTF8)
    odd = rng.choice([b"\x0b", b"\xc2\xa0", b"\x00", b"\t"])
    variants: list[Callable[[], tuple[bytes, str]]] = [
        lambda: (value[:i] + bytes([value[i] ^ mask]) + value[i + 1 :], f"flip byte {i}"),
        lambda: (value[:i], f"truncate {i}"),
        lambda: (codecs.BOM_UTF8 + value, "byte order mark"),
        lambda: (value + tail, f"trailing {tail[:4]!r}"),
        lambda: (value[:quote] + bad + value[quote:], f"not utf-8 {bad!r}"),
        lambda: (value[:i] + odd + value[i:], f"byte {odd!r} in"),
    ]
    return rng.choice(variants)()


def _spaced(rng: random.Random) -> Space:
    allowed = rng.random() < 0.8

    def space() -> str:
        if rng.random() < 0.85:
            return ""
        return rng.choice(SPACES) if allowed or rng.random() < 0.9 else rng.choice(NOT_SPACES)

    return space


def mutate(
    start: dict[str, Any], rng: random.Random, resign: Callable[[dict[str, Any]], bytes | None]
) -> tuple[bytes, str]:
    """One case's record value from the parsed document ``start``, and how it was made."""
    doc = tree(copy.deepcopy(start))
    steps = []
    semantic = rng.random() < 0.45
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if semantic:
            pick = rng.choice([m_field, m_field, m_field, m_list, m_sender_keys])
            if pick is m_sender_keys and "header" not in [k for k, _ in doc.pairs]:
                pick = m_field
        else:
            mutations, weights = zip(*TREE_MUTATIONS, strict=True)
            pick = rng.choices(mutations, weights)[0]
        try:
            steps.append(pick(doc, rng))
        except (IndexError, StopIteration, ValueError):
            steps.append(f"{pick.__name__} (nothing to change)")
    document = plain(doc)
    value: bytes | None = None
    if isinstance(document, dict) and rng.random() < (0.9 if semantic else 0.4):
        value = resign(document)
        if value is not None:
            steps.append("signed again")
    if value is None:
        if rng.random() < 0.25:
            value = emit(doc, _spaced(rng), ascii_only=rng.random() < 0.3).encode(
                "utf-8", "surrogatepass"
            )
            steps.append("spaced")
        else:
            value = compact(doc)
    if rng.random() < 0.15:
        value, how = _text_mutation(value, rng)
        steps.append(how)
    return value, "; ".join(steps)


def envelope_cases(data: dict[str, Any], rng: random.Random, count: int) -> list[Case]:
    cases = []
    valid = data["valid"]
    for n in range(count):
        base = rng.choice(valid)
        start = json.loads(base["envelope"])
        if rng.random() < 0.15:
            value, how = _text_mutation(jcs(start), rng)
        else:
            value, how = mutate(start, rng, _resign_envelope)
        receiver = rng.choices(
            [generate.FULL_TO, generate.REDACTED_TO, generate.OUTSIDER, generate.SENDER],
            [6, 2, 1, 1],
        )[0]
        settings: dict[str, Any] = {"receiver": receiver}
        for name in ("topic", "record_time", "now"):
            if name in base and base[name] != data["receiver"][name]:
                settings[name] = base[name]
        if rng.random() < 0.2:
            name = rng.choice(list(ENVELOPE_SETTINGS))
            settings[name] = rng.choice(ENVELOPE_SETTINGS[name])
            how += f"; setting {name}"
            if name == "seen":
                settings["base"] = base["name"]
        cases.append(Case(f"envelope-{n}-{base['name']}", "envelope", how, value, settings))
    return cases


def receipt_cases(data: dict[str, Any], rng: random.Random, count: int) -> list[Case]:
    cases = []
    for n in range(count):
        base = rng.choice(data["valid"])
        start = json.loads(base["value"])
        if rng.random() < 0.15:
            value, how = _text_mutation(base["value"].encode(), rng)
        else:
            value, how = mutate(start, rng, _resign_receipt)
        settings = {k: base[k] for k in ("directory", "record_time") if k in base}
        if rng.random() < 0.2:
            name = rng.choice(list(RECEIPT_SETTINGS))
            settings[name] = rng.choice(RECEIPT_SETTINGS[name])
            how += f"; setting {name}"
        cases.append(Case(f"receipt-{n}-{base['name']}", "receipt", how, value, settings))
    return cases


def python_outcome(case: Case, envelopes: dict[str, Any], receipt_file: dict[str, Any]) -> str:
    """The product's outcome, by the vector checks' own evaluators; an exception other than
    a refusal is ``crash:<class>``, as the Java side prints one."""
    vector = dict(case.settings)
    try:
        if case.kind == "receipt":
            vector["value"] = RecordValue(case.value)
            return receipts.evaluate(receipt_file, vector)
        vector["envelope"] = RecordValue(case.value)
        receiver = vector.pop("receiver")
        # evaluate verifies every directory it is given: give it only the one it reads.
        chosen = vector.get("directory", envelopes["receiver"]["directory"])
        only = {**envelopes, "directories": {chosen: envelopes["directories"][chosen]}}
        return generate.evaluate(only, vector, receiver)
    except Exception as exc:  # any other exception: the finding itself
        return f"crash:{type(exc).__name__}"


# Every value in FIELD_VALUES and these, in turn, in every field it fits, signed again.
SWEPT: tuple[Any, ...] = (True, False, None, 1, "1", [], Obj())
# The envelope and receipts the sweep changes: one valid vector of each kind of document.
SWEEP_BASES = {
    "envelope": ("classic-two-views", "pq-hybrid-two-views", "classic-publication-1"),
    "receipt": ("delivered", "ledger"),
}


def swept_cases(envelopes: dict[str, Any], receipt_file: dict[str, Any]) -> list[Case]:
    """One field of a valid document given one other value, signed again: every field the
    sweep's documents have and ``FIELD_VALUES`` lists, every value. The random cases then
    combine changes; this part makes sure each single one is tried in every run."""
    cases: list[Case] = []
    for kind, names in SWEEP_BASES.items():
        data = envelopes if kind == "envelope" else receipt_file
        for name in names:
            base = next(v for v in data["valid"] if v["name"] == name)
            text = base["envelope"] if kind == "envelope" else base["value"]
            for number, spot in enumerate(spots(tree(json.loads(text)))):
                if spot.key not in FIELD_VALUES or isinstance(spot.value, (Obj, list)):
                    continue
                for value in (*FIELD_VALUES[spot.key], *SWEPT):
                    doc = tree(json.loads(text))
                    place = list(spots(doc))[number]
                    place.put(copy.deepcopy(value))
                    document = plain(doc)
                    resign = _resign_envelope if kind == "envelope" else _resign_receipt
                    signed = resign(document) if isinstance(document, dict) else None
                    how = f"sweep {shown(spot.key, value)}"
                    settings: dict[str, Any] = {}
                    if kind == "envelope":
                        settings = {k: base[k] for k in ("topic", "record_time", "now")}
                        settings["receiver"] = generate.FULL_TO
                    else:
                        settings = {k: base[k] for k in ("directory", "record_time") if k in base}
                    # Unsigned too: a signer's key id or algorithm is outside what is signed.
                    made = [(compact(doc), how)]
                    if signed is not None:
                        made.append((signed, how + "; signed again"))
                    cases += [
                        Case(f"{kind}-sweep-{name}-{len(cases) + i}", kind, h, v, settings)
                        for i, (v, h) in enumerate(made)
                    ]
    return cases


def size_cases(envelopes: dict[str, Any], receipt_file: dict[str, Any]) -> list[Case]:
    """A valid envelope and receipt padded with spaces to the size limit and one byte past
    it, after the document or inside it (docs/envelope.md §2, docs/receipts.md §1)."""
    cases = []
    for kind, data, limit in (
        ("envelope", envelopes, MAX_ENVELOPE_BYTES),
        ("receipt", receipt_file, MAX_RECEIPT_BYTES),
    ):
        base = data["valid"][0]
        value = (base["envelope"] if kind == "envelope" else base["value"]).encode()
        settings = {"receiver": generate.FULL_TO} if kind == "envelope" else {}
        for size in (limit, limit + 1):
            spaces = b" " * (size - len(value))
            for how, padded in (("after", value + spaces), ("inside", b"{" + spaces + value[1:])):
                cases.append(
                    Case(
                        f"{kind}-size-{size}-{how}",
                        kind,
                        f"{size} bytes, spaces {how}",
                        padded,
                        settings,
                    )
                )
    return cases


def generated_cases(count: int, seed: int) -> list[Case]:
    """The sweep, the size limits, then ``count`` random cases: two thirds envelopes, a
    third receipts."""
    rng = random.Random(seed)
    envelopes = json.loads((VECTORS / "envelope-vectors.json").read_text())
    receipt_file = json.loads((VECTORS / "receipt-vectors.json").read_text())
    share = count * 2 // 3
    return [
        *swept_cases(envelopes, receipt_file),
        *size_cases(envelopes, receipt_file),
        *envelope_cases(envelopes, rng, share),
        *receipt_cases(receipt_file, rng, count - share),
    ]


# -- the test -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def java_build(tmp_path_factory: pytest.TempPathFactory) -> java_sdk.Build:
    """The library built and tested once in this run (``java_sdk.built``)."""
    return java_sdk.built(tmp_path_factory)


def test_python_and_java_reach_the_same_outcome(java_build: java_sdk.Build, tmp_path: Path) -> None:
    envelopes = json.loads((VECTORS / "envelope-vectors.json").read_text())
    receipt_file = json.loads((VECTORS / "receipt-vectors.json").read_text())
    cases = generated_cases(CASES, SEED)
    expected = [python_outcome(c, envelopes, receipt_file) for c in cases]
    listed = tmp_path / "cases.jsonl"
    listed.write_text("".join(c.line() + "\n" for c in cases))
    run = java_sdk.run_java(
        java_build.classpath,
        OUTCOMES_MAIN,
        [str(VECTORS), str(listed)],
        env={},
        timeout=JAVA_SECONDS,
    )
    assert run.status == 0, f"Outcomes exited {run.status}:\n{run.errors[-4000:]}"
    assert len(run.lines) == len(cases), (len(run.lines), len(cases), run.errors[-2000:])
    differ = [(c, p, j) for c, p, j in zip(cases, expected, run.lines, strict=True) if p != j]
    # Every disagreement whole (its record value in base64, as the Java side read it), for
    # a person to replay: the failure names the file and shows the first few.
    found = tmp_path / "disagreements.jsonl"
    found.write_text(
        "".join(
            json.dumps({"name": c.name, "mutation": c.mutation, "python": p, "java": j})[:-1]
            + ", "
            + c.line()[1:]
            + "\n"
            for c, p, j in differ
        )
    )
    assert not differ, (
        f"{len(differ)} of {len(cases)} cases differ (seed {SEED}; all in {found}):\n"
        + "\n".join(
            f"{c.name} [{c.mutation}] {c.settings}: python {p}, java {j}"
            for c, p, j in differ[:SHOWN]
        )
    )
    reached = set(expected)
    assert len(reached) >= MIN_OUTCOMES, sorted(reached)
