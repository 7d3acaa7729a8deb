"""What the browser's proof checks (``test_proof_check.py``, ``broker/console/static/proof.js``)
are given, each with the answer of the standalone Python verifier
(``broker.ledger.verify_proofs``), so that the browser must answer the same:

- inclusion proofs: the RFC 6962 vectors and every (index, size) of the vectors' 8-leaf
  tree, each as given and altered (a bit of a proof hash, the root or the leaf flipped, a
  wrong index or tree size, a hash added, dropped or cut short);
- base64 texts on the edges of what Python's strict decoder takes;
- a real ledger (``tests.ledger_world``): its checkpoints, verifier key and every entry's
  proof as the governance API gives them, the checkpoint tampered with in each way a
  verifier must catch, and notes signed with a key of the test's own over bodies and
  signature lines on the edges of the rules (sizes, counts, bounds).

Hashes and bytes are hex or base64 text, so they pass to the page as they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.ledger import merkle
from broker.ledger.verify_proofs import (
    ED25519_ALG,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    MAX_TREE_SIZE,
    ProofError,
    leaf_hash,
    note_key_id,
    verify_checkpoint,
    verify_inclusion,
)
from schemas.audit import AuditAct, Operation
from tests.ledger_world import build_ledger_world
from tests.support import HOUSING, POLICE, PRISON, PROBATION

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc6962-vectors.json"
VECTORS: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaf_inputs"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
OTHER_ORIGIN = "mappa-broker/elsewhere/audit-ledger"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flip(data: bytes, byte: int = 0, bit: int = 0) -> bytes:
    """``data`` with one bit flipped."""
    changed = bytearray(data)
    changed[byte] ^= 1 << bit
    return bytes(changed)


def refusal(check: Callable[[], object]) -> str | None:
    """The Python verifier's refusal of ``check``, or None if it passes."""
    try:
        check()
    except ProofError as exc:
        return str(exc)
    return None


# -- inclusion proofs --------------------------------------------------------------------------


def _number(n: int) -> int | str:
    """``n`` as the page gets it: a Number while exact, else decimal text."""
    return n if abs(n) <= 2**53 - 1 else str(n)


def _tree(size: int) -> dict[merkle.NodeKey, bytes]:
    nodes: dict[merkle.NodeKey, bytes] = {}
    tree = merkle.CompactRange()
    for leaf in LEAVES[:size]:
        for level, index, h in tree.append(leaf_hash(leaf)):
            nodes[(level, index)] = h
    return nodes


def _check(
    label: str, *, index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> dict[str, Any]:
    return {
        "label": label,
        "index": _number(index),
        "size": _number(size),
        "leaf": leaf.hex(),
        "proof": [p.hex() for p in proof],
        "root": root.hex(),
        "refused": refusal(lambda: verify_inclusion(index, size, leaf, proof, root)) is not None,
    }


def _checks_of(index: int, size: int, nodes: dict[merkle.NodeKey, bytes]) -> list[dict[str, Any]]:
    """The proof of leaf ``index`` in the tree of ``size``, as given and altered."""
    proof = merkle.assemble(merkle.inclusion_ranges(index, size), nodes)
    leaf, root = leaf_hash(LEAVES[index]), ROOTS[size]
    given: dict[str, Any] = {
        "index": index,
        "size": size,
        "leaf": leaf,
        "proof": proof,
        "root": root,
    }
    altered: list[tuple[str, dict[str, Any]]] = [("as given", {})]
    for i, p in enumerate(proof):
        for byte, bit in ((0, 0), (31, 7)):
            bad = [*proof[:i], flip(p, byte, bit), *proof[i + 1 :]]
            altered.append((f"proof[{i}] byte {byte} bit {bit} flipped", {"proof": bad}))
    altered += [
        ("root flipped", {"root": flip(root, 5, 3)}),
        ("leaf flipped", {"leaf": flip(leaf, 31, 0)}),
        *((f"index {wrong}", {"index": wrong}) for wrong in (index ^ 1, size, -1)),
        *(
            (f"size {wrong}", {"size": wrong})
            for wrong in sorted({index, size - 1, size + 1, 2 * size, MAX_TREE_SIZE + 1} - {size})
        ),
        ("a hash added", {"proof": [*proof, leaf]}),
        ("129 hashes", {"proof": [leaf] * 129}),
    ]
    if proof:
        altered += [
            ("last hash dropped", {"proof": proof[:-1]}),
            ("a hash of 31 bytes", {"proof": [proof[0][:31], *proof[1:]]}),
        ]
    return [
        _check(f"leaf {index} of {size}: {label}", **(given | change)) for label, change in altered
    ]


def inclusion_checks() -> list[dict[str, Any]]:
    """Every inclusion proof in the 8-leaf tree of the vectors (the RFC 6962 vectors among
    them, checked to be), as given and altered, each with whether Python refuses it."""
    vectors = {(v["leaf_index"], v["tree_size"]): v["proof"] for v in VECTORS["inclusion_proofs"]}
    checks = []
    for size in range(1, len(LEAVES) + 1):
        nodes = _tree(size)
        for index in range(size):
            these = _checks_of(index, size, nodes)
            if (index, size) in vectors:
                assert these[0]["proof"] == vectors.pop((index, size))
            checks += these
    assert not vectors, f"RFC 6962 vectors not in the tree: {list(vectors)}"
    return checks


def must_refuse(label: str) -> bool:
    """Whether an altered proof must be refused whatever its shape: everything but the
    proof as given and a wrong tree size inside the tree (RFC 9162 binds the size by the
    signed checkpoint that carries the root; a path of the same shape verifies)."""
    altered = label.split(": ", 1)[1]
    return altered != "as given" and not altered.startswith("size ")


# -- base64 --------------------------------------------------------------------------------------

BASE64_TEXTS = [
    "", "QQ==", "QR==", "QUI=", "QUJD", "QUJDQQ==", "QUJD=", "QUJD==", "QUJD===", "QUJD====",
    "QUI==", "QQ===", "QUI", "QQ", "QQ=", "Q", "Q=", "Q==", "=", "==", "=QUJD", "QQ=A",
    "QUJD=A", "QU=JD", "QUJ=D", "QUJD\n", " QUJD", "QU JD", "QUJD-_", "QUJD\u00e9", "+/+/",
]  # fmt: skip


def base64_cases() -> list[dict[str, Any]]:
    """Each text with what Python's ``base64.b64decode(text, validate=True)`` makes of it:
    the bytes in hex, or None for a refusal."""
    cases = []
    for text in BASE64_TEXTS:
        try:
            decoded: str | None = base64.b64decode(text, validate=True).hex()
        except ValueError:  # binascii.Error, or a str that is not ASCII
            decoded = None
        cases.append({"text": text, "bytes": decoded})
    return cases


# -- a real ledger -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSample:
    """A ledger's signed answers, as the governance API gives them."""

    verifier_key: str
    origin: str
    public_key: bytes
    # GET /governance/checkpoint?size=N for each checkpoint, by size.
    checkpoints: dict[int, dict[str, Any]]
    # GET /governance/proof/{seq}: every entry against the latest checkpoint, then some
    # against older ones (?size=).
    proofs: list[dict[str, Any]]
    # Python's leaf hash of each stored entry's signed bytes, hex, by sequence number.
    leaf_hashes: list[str]

    @property
    def latest(self) -> dict[str, Any]:
        return self.checkpoints[max(self.checkpoints)]


def ledger_sample(data_dir: Path) -> LedgerSample:
    """A provisioned ledger fed three batches (checkpoints of 4, 7 and 13 entries)."""
    world = build_ledger_world(data_dir, None)
    try:
        world.feed(
            world.event(POLICE, AuditAct.COLLECTION, user="ppu.officer.1"),
            world.event(POLICE, AuditAct.DISCLOSURE, recipient=PROBATION),
            world.event(POLICE, AuditAct.DISCLOSURE, recipient=HOUSING),
            world.event(POLICE, AuditAct.COLLECTION),
        )
        world.feed(
            *(world.event(agency, AuditAct.COLLECTION) for agency in (PROBATION, HOUSING, PRISON))
        )
        world.feed(
            *(
                world.event(PRISON, AuditAct.COLLECTION, operation=Operation.DELIVER)
                for _ in range(6)
            )
        )
        reader = world.reader
        sizes = [size for size, _, _ in world.service.store.checkpoints()]
        assert sizes == [4, 7, 13]
        proofs = [reader.proof(seq) for seq in range(13)]
        proofs += [reader.proof(1, size=4), reader.proof(6, size=7), reader.proof(3, size=7)]
        leaves = []
        for seq in range(13):
            entry = reader.store.entry(seq)
            assert entry is not None
            leaves.append(leaf_hash(entry["signed"]).hex())
        vkey = reader.verifier_key
        return LedgerSample(
            verifier_key=vkey,
            origin=reader.origin,
            public_key=base64.b64decode(vkey.split("+", 2)[2])[1:],
            checkpoints={size: reader.checkpoint_json(size) for size in sizes},
            proofs=proofs,
            leaf_hashes=leaves,
        )
    finally:
        world.close()


# -- checkpoints ---------------------------------------------------------------------------------


class NoteKey:
    """An Ed25519 key of the test's own, signing notes as the ledger does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = Ed25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = note_key_id(name, self.public)

    @property
    def verifier_key(self) -> str:
        return vkey(self.name, self.public)

    def signature_line(self, text: str, *, name: str | None = None) -> str:
        blob = self.key_id + self._key.sign(text.encode())
        return f"\u2014 {self.name if name is None else name} {b64(blob)}\n"

    def sign(self, text: str) -> str:
        return f"{text}\n{self.signature_line(text)}"


def vkey(name: str, public: bytes, *, key_id: bytes | None = None) -> str:
    """The signed-note verifier key ``<name>+<hex key id>+<base64(0x01 || key)>``."""
    kid = note_key_id(name, public) if key_id is None else key_id
    return f"{name}+{kid.hex()}+{b64(bytes([ED25519_ALG]) + public)}"


def _case(label: str, note: str, key: str, origin: str | None) -> dict[str, Any]:
    """A note to verify with ``key`` (and ``origin``), with what Python makes of it: the
    checkpoint it verifies as, or None and its refusal."""
    case: dict[str, Any] = {"label": label, "note": note, "key": key, "origin": origin}
    try:
        cp = verify_checkpoint(note, key, origin=origin)
    except ProofError as exc:
        return case | {"checkpoint": None, "refusal": str(exc)}
    body = {"origin": cp.origin, "size": str(cp.size), "root": cp.root.hex()}
    return case | {"checkpoint": body | {"extensions": list(cp.extensions)}, "refusal": None}


def tampered_checkpoints(sample: LedgerSample) -> list[dict[str, Any]]:
    """The latest checkpoint as signed, then tampered with: each with its verifier key, the
    origin it must name, and Python's refusal (None for the one that verifies)."""
    note, key, origin = sample.latest["note"], sample.verifier_key, sample.origin
    lines = note.split("\n")
    text = "\n".join(lines[:5]) + "\n"
    name, sig = lines[6][2:].rsplit(" ", 1)
    blob = base64.b64decode(sig)
    older = sample.checkpoints[min(sample.checkpoints)]
    stranger = NoteKey(origin)
    other_log = NoteKey(OTHER_ORIGIN)
    wrong_id = flip(note_key_id(origin, sample.public_key))

    def edited(at: int, line: str) -> str:
        return "\n".join([*lines[:at], line, *lines[at + 1 :]])

    def signature(data: bytes, signer: str = name) -> str:
        return edited(6, f"\u2014 {signer} {b64(data)}")

    cases = [
        ("as signed", note),
        ("root changed", edited(2, older["root_hash"])),
        ("root bit flipped", edited(2, b64(flip(base64.b64decode(lines[2]), 7)))),
        ("size changed", edited(1, "12")),
        ("time line changed", edited(3, "time 2026-11-03T09:00:00.001Z")),
        ("origin line changed", edited(0, OTHER_ORIGIN)),
        ("signature byte flipped", signature(flip(blob, 40, 2))),
        ("signature cut short", signature(blob[:-1])),
        ("key id byte flipped", signature(flip(blob, 0, 0))),
        ("signer renamed", signature(blob, OTHER_ORIGIN)),
        ("re-signed by another key", stranger.sign(text)),
        ("no final newline", note[:-1]),
        ("no blank line", note.replace("\n\n", "\n")),
        ("hyphen for the em dash", edited(6, f"- {name} {sig}")),
    ]
    return [_case(label, changed, key, origin) for label, changed in cases] + [
        _case("wrong key, same name", note, stranger.verifier_key, origin),
        _case("key named for another log", note, vkey(OTHER_ORIGIN, sample.public_key), None),
        _case("expecting another log", note, key, OTHER_ORIGIN),
        _case(
            "another log's own checkpoint",
            other_log.sign(f"{OTHER_ORIGIN}\n1\n{lines[2]}\n"),
            other_log.verifier_key,
            origin,
        ),
        _case(
            "verifier key id wrong", note, vkey(origin, sample.public_key, key_id=wrong_id), origin
        ),
    ]


def signed_notes() -> list[dict[str, Any]]:
    """Notes signed with a key of the test's own over bodies, signature lines and verifier
    keys on the edges of the rules, each with Python's answer (``_case``)."""
    key = NoteKey("example.org/log")
    other = NoteKey("example.org/other")
    root = b64(bytes(range(32)))
    text = f"o\n1\n{root}\n"
    bodies = [
        ("size 0", f"o\n0\n{root}\n"),
        ("largest size", f"o\n{MAX_TREE_SIZE}\n{root}\n"),
        ("size past the largest", f"o\n{MAX_TREE_SIZE + 1}\n{root}\n"),
        ("size with a leading zero", f"o\n01\n{root}\n"),
        ("size 00", f"o\n00\n{root}\n"),
        ("negative size", f"o\n-1\n{root}\n"),
        ("size with a sign", f"o\n+1\n{root}\n"),
        ("empty size", f"o\n\n{root}\n"),
        ("size with a space", f"o\n 1\n{root}\n"),
        ("empty origin", f"\n1\n{root}\n"),
        ("origin not ASCII", f"mappa-br\u00f6ker/\u65e5\u672c/audit-ledger\n1\n{root}\n"),
        ("extension lines", f"o\n1\n{root}\ntime x\nindex y\nanother\n"),
        ("root of 31 bytes", f"o\n1\n{b64(bytes(31))}\n"),
        ("root of 33 bytes", f"o\n1\n{b64(bytes(33))}\n"),
        ("root not base64", f"o\n1\n{root[:-1]}*\n"),
        ("root without padding", f"o\n1\n{root.rstrip('=')}\n"),
        ("no root line", "o\n1\n"),
        ("a space after the root", f"o\n1\n{root} \n"),
    ]
    sig = key.signature_line(text)
    forged = f"\u2014 {key.name} {b64(key.key_id + bytes(64))}\n"
    fifteen = "".join(other.signature_line(text) for _ in range(MAX_SIGNATURES - 1))
    # The size limit, to the byte: an extension line fills the note to it, then one more.
    fill = len(key.sign(f"{text}x\n").encode())
    padded = f"{text}{'x' * (MAX_NOTE_BYTES - fill + 1)}\n"
    notes = [
        ("signed by another key too, first", f"{text}\n{other.signature_line(text)}{sig}"),
        ("another key only", other.sign(text)),
        ("16 signatures", f"{text}\n{fifteen}{sig}"),
        ("17 signatures", f"{text}\n{fifteen}{other.signature_line(text)}{sig}"),
        ("the key's, then a forged line", f"{text}\n{sig}{forged}"),
        ("a forged line, then the key's", f"{text}\n{forged}{sig}"),
        ("an empty signature line", f"{text}\n{sig}\n"),
        ("signature line with no name", f"{text}\n\u2014 {sig.rsplit(' ', 1)[1]}"),
        ("signature of the key id only", f"{text}\n\u2014 {key.name} {b64(key.key_id)}\n"),
        ("signature not base64", f"{text}\n{sig[:-2]}!\n"),
        ("8192 bytes", key.sign(padded)),
        ("8193 bytes", key.sign(padded.replace("\nx", "\nxx"))),
    ]
    vk = key.verifier_key
    name, hex_id, encoded = vk.split("+", 2)
    wrong_id = flip(key.key_id)
    wrong_line = f"\u2014 {key.name} {b64(wrong_id + base64.b64decode(sig.split()[-1])[4:])}\n"
    keys = [
        ("verifier key with spaces round it", f" \t{vk}\n"),
        ("verifier key id spaced", f"{name}+{hex_id[:4]} {hex_id[4:]}+{encoded}"),
        ("verifier key id in capitals", f"{name}+{hex_id.upper()}+{encoded}"),
        ("verifier key of two parts", f"{name}+{hex_id}"),
        ("verifier key not Ed25519", f"{name}+{hex_id}+{b64(bytes([2]) + key.public)}"),
        ("verifier key of 31 bytes", vkey(name, key.public[:31])),
    ]
    # Signed over U+FFFD, which the page turns into a lone surrogate (one cannot cross to
    # the page as JSON): not text, refused (Python's str.encode() raises on it too).
    lone = _case("a lone surrogate", key.sign(f"{text}\ufffd\n"), vk, None)
    return [
        *(_case(label, key.sign(body), vk, None) for label, body in bodies),
        *(_case(label, note, vk, None) for label, note in notes),
        *(_case(label, key.sign(text), other_key, None) for label, other_key in keys),
        # A wrong key id on both the verifier key and the signature line: refused with the key.
        _case(
            "one wrong key id",
            f"{text}\n{wrong_line}",
            vkey(name, key.public, key_id=wrong_id),
            None,
        ),
        lone | {"surrogate": True, "checkpoint": None, "refusal": "not text"},
    ]
