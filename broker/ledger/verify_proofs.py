"""Standalone verifier for the audit ledger's proofs and checkpoints.

Deliberately self-contained: it imports only the standard library (``hashlib``,
``base64``, ``json``, ``re``) and ``cryptography``, so an information-governance officer, an
auditor or the Information Commissioner's office can copy this one file and check what
the ledger hands them without trusting (or installing) the rest of the product.

Hashing is RFC 9162 section 2.1 (as RFC 6962): SHA-256, leaf hash
``H(0x00 || entry)``, interior node hash ``H(0x01 || left || right)``.
Inclusion and consistency proofs are checked with the algorithms of RFC 9162
sections 2.1.3.2 and 2.1.4.2. Checkpoints are C2SP signed notes
(https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note) signed with Ed25519.
Witnesses' cosignatures are C2SP cosignature/v1 lines (https://c2sp.org/tlog-cosignature);
``verify_witnessed`` checks a checkpoint against a witness policy (the log's key and
at least a threshold of named witnesses), and ``verify_policy_signature`` checks the
governance signature on the policy file itself.

Every check raises ``ProofError`` on failure and returns nothing useful to
misread on success (STYLE 9: checks raise, never return a bare bool).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
# A proof for a tree of at most 2**63 leaves has at most 63 (inclusion) or 126
# (consistency) hashes; anything longer is garbage and is refused before hashing.
MAX_TREE_SIZE = 2**63 - 1
MAX_PROOF_HASHES = 128
# A checkpoint is a few hundred bytes; a megabyte of "checkpoint" is an attack.
MAX_NOTE_BYTES = 8192
MAX_SIGNATURES = 16
ED25519_ALG = 0x01  # signed-note signature type for Ed25519
KEY_ID_BYTES = 4
# A tree size: ASCII decimal digits, at most as many as 2**63 - 1 has.
_DECIMAL = re.compile(r"[0-9]{1,19}")


class ProofError(Exception):
    """A proof, a tree head or a checkpoint did not check out."""


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash of ``entry``: SHA-256(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _check_hashes(proof: list[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(proof)} hashes; at most {MAX_PROOF_HASHES} are possible")
    for h in proof:
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash of {len(h)} bytes; SHA-256 hashes are {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """The root implied by ``leaf`` (a leaf *hash*) at ``index`` in a tree of ``size``.
    Raises ``ProofError`` if the index, leaf or proof cannot be for such a tree."""
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ProofError(f"leaf index {index} is not inside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError("leaf hash must be 32 bytes")
    _check_hashes(proof)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Raise unless ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the tree head")


def _trivial_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> bool:
    """Check the cases with no proof hashes; True when one of them settled it."""
    if not 0 <= size1 <= size2 <= MAX_TREE_SIZE:
        raise ProofError(f"cannot prove size {size1} consistent with smaller size {size2}")
    _check_hashes(proof)
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError("same tree size, different roots: the log forked")
        return True
    if size1 == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return True
    if not proof:
        raise ProofError("consistency proof is empty")
    return False


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> None:
    """Raise unless ``proof`` shows tree ``(size1, root1)`` is a prefix of ``(size2, root2)``."""
    if _trivial_consistency(size1, size2, root1, root2, proof):
        return
    # If size1 is an exact power of two, the first tree's root is the first node.
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the old tree head (size {size1})")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to the new tree head (size {size2})")


# -- checkpoints (C2SP signed notes) -------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint body. ``extensions`` are the lines after the root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]


def note_key_id(name: str, public_key: bytes) -> bytes:
    """Signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key)."""
    return _key_id(name, ED25519_ALG, public_key)


def _key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """A signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || alg || key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:KEY_ID_BYTES]


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    """``<name>+<hex key id>+<base64(0x01 || public key)>`` -> (name, raw public key).
    Raises ``ProofError`` if it is malformed, not Ed25519, or its key id does not match."""
    return _parse_note_key(vkey, ED25519_ALG, "verifier", "an Ed25519 signed-note key")


def _parse_note_key(vkey: str, alg: int, what: str, kind: str) -> tuple[str, bytes]:
    """A signed-note key ``<name>+<hex key id>+<base64(alg || Ed25519 key)>`` -> (name,
    raw public key); ``what`` and ``kind`` name it in the ``ProofError`` it raises."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise ProofError(f"a {what} key is <name>+<key id>+<key>")
    name, hex_id, b64 = parts
    try:
        blob = base64.b64decode(b64, validate=True)
        key_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise ProofError(f"{what} key is not well formed: {exc}") from None
    if len(blob) != 33 or blob[0] != alg:
        raise ProofError(f"{what} key is not {kind}")
    if _key_id(name, alg, blob[1:]) != key_id:
        raise ProofError(f"{what} key id does not match its name and key")
    return name, blob[1:]


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(text, [(signer name, key id || signature)]) of a signed note; nothing verified yet.
    Raises ``ProofError`` if it is too large or not shaped as a signed note."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise ProofError(f"a checkpoint is at most {MAX_NOTE_BYTES} bytes")
    text, sep, sigs = note.partition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise ProofError("not a signed note: text, a blank line, then signature lines")
    text += "\n"
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise ProofError(f"signature line must start with an em dash: {line[:40]!r}")
        name, _, b64 = line[2:].rpartition(" ")
        try:
            # A non-ASCII character is a ValueError, not a binascii.Error.
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ProofError("signature is not base64") from None
        if not name or len(blob) <= KEY_ID_BYTES:
            raise ProofError("signature line needs a key name and key id + signature")
        signatures.append((name, blob))
    if len(signatures) > MAX_SIGNATURES:
        raise ProofError(f"more than {MAX_SIGNATURES} signatures on one note")
    return text, signatures


def parse_checkpoint_text(text: str) -> Checkpoint:
    """The body of a checkpoint's (already verified) text. Raises ``ProofError`` unless
    it is an origin, a decimal size, a 32-byte base64 root and non-empty extension lines."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise ProofError("checkpoint body is origin, size and root hash lines, newline-terminated")
    origin, size_text, root_text, *extensions = lines[:-1]
    # ASCII digits only, and no more than 2**63 - 1 has: ``str.isdigit`` takes "²" and
    # "٣", and ``int`` refuses numbers past 4,300 digits with a ValueError.
    if (
        not origin
        or _DECIMAL.fullmatch(size_text) is None
        or (size_text != "0" and size_text[0] == "0")
    ):
        raise ProofError("checkpoint origin must be non-empty and size a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError("checkpoint root hash is not base64") from None
    if len(root) != HASH_SIZE or int(size_text) > MAX_TREE_SIZE:
        raise ProofError("checkpoint root hash must be 32 bytes and size in range")
    if any(not line for line in extensions):
        raise ProofError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(note: str, verifier_key: str, *, origin: str | None = None) -> Checkpoint:
    """Verify a checkpoint's Ed25519 signature by ``verifier_key`` and parse its body;
    returns the body. Raises ``ProofError`` if the key or note is malformed, no valid
    signature by the key is on it, or (given ``origin``) it is for another log."""
    name, public = parse_verifier_key(verifier_key)
    text, signatures = split_note(note)
    key_id = note_key_id(name, public)
    key = Ed25519PublicKey.from_public_bytes(public)
    for signer, blob in signatures:
        if signer == name and blob[:KEY_ID_BYTES] == key_id:
            try:
                key.verify(blob[KEY_ID_BYTES:], text.encode())
            except InvalidSignature:
                raise ProofError(f"checkpoint signature by {name} is invalid") from None
            checkpoint = parse_checkpoint_text(text)
            if origin is not None and checkpoint.origin != origin:
                raise ProofError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
            return checkpoint
    raise ProofError(f"checkpoint carries no signature by {name}")


# -- cosignatures (C2SP tlog-cosignature, cosignature/v1) and witness policies ------------
# https://c2sp.org/tlog-cosignature: a witness's note signature over a checkpoint,
#     -- <witness name> base64(key id (4) || timestamp (uint64 BE, 8) || Ed25519 sig (64))
# key id = SHA-256(name || 0x0A || 0x04 || public key)[:4]; the signed message is
#     "cosignature/v1\ntime <POSIX seconds, decimal>\n" || the checkpoint's note text.
COSIGNATURE_ALG = 0x04  # signed-note signature type of an Ed25519 cosignature/v1
COSIGNATURE_HEADER = "cosignature/v1\n"
TIMESTAMP_BYTES = 8
ED25519_SIGNATURE_BYTES = 64
COSIGNATURE_BYTES = KEY_ID_BYTES + TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES
# The spec's bound on a cosignature's timestamp.
MAX_TIMESTAMP = 2**63 - 1
# A policy names a handful of witnesses (the area's agencies); more than fit on one note
# beside the log's own signature is not a policy anyone can satisfy.
MAX_WITNESSES = MAX_SIGNATURES - 1


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """A cosigner's key id: the first 4 bytes of SHA-256(name || 0x0A || 0x04 || key)."""
    return _key_id(name, COSIGNATURE_ALG, public_key)


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, ``time <timestamp>`` and the
    checkpoint's note text (its lines up to, not including, the blank line)."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def parse_cosigner_key(vkey: str) -> tuple[str, bytes]:
    """``<name>+<hex key id>+<base64(0x04 || public key)>`` -> (name, raw public key).
    Raises ``ProofError`` if it is malformed, not an Ed25519 cosigner key, or its key id
    does not match."""
    return _parse_note_key(vkey, COSIGNATURE_ALG, "cosigner", "an Ed25519 cosignature/v1 key")


def verify_cosignature(note: str, cosigner_key: str) -> int:
    """Verify the cosignature by ``cosigner_key`` on the checkpoint ``note``; returns its
    timestamp. Checks, in order: the key is well formed; the note is a signed note; a
    signature line carries the key's name and key id; it is 76 bytes (key id, timestamp,
    signature); its timestamp is at most 2**63 - 1; the Ed25519 signature verifies over
    ``cosigned_message``. Raises ``ProofError`` at the first that fails."""
    name, public = parse_cosigner_key(cosigner_key)
    text, signatures = split_note(note)
    key_id = cosignature_key_id(name, public)
    key = Ed25519PublicKey.from_public_bytes(public)
    for signer, blob in signatures:
        if signer != name or blob[:KEY_ID_BYTES] != key_id:
            continue
        if len(blob) != COSIGNATURE_BYTES:
            raise ProofError(f"cosignature by {name} is not {COSIGNATURE_BYTES} bytes")
        timestamp = int.from_bytes(blob[KEY_ID_BYTES : KEY_ID_BYTES + TIMESTAMP_BYTES], "big")
        if timestamp > MAX_TIMESTAMP:
            raise ProofError(f"cosignature by {name} has a timestamp past 2**63 - 1")
        try:
            key.verify(blob[KEY_ID_BYTES + TIMESTAMP_BYTES :], cosigned_message(text, timestamp))
        except InvalidSignature:
            raise ProofError(f"cosignature by {name} is invalid") from None
        return timestamp
    raise ProofError(f"checkpoint carries no cosignature by {name}")


@dataclass(frozen=True)
class WitnessPolicy:
    """Which checkpoints to trust: those of ``origin`` signed by ``log_key`` (a signed-note
    verifier key) and cosigned by at least ``threshold`` of ``witnesses`` (cosigner
    keys). Build it with ``witness_policy``, which checks it."""

    origin: str
    log_key: str
    witnesses: tuple[str, ...]
    threshold: int


def witness_policy(
    origin: str, log_key: str, witnesses: list[str] | tuple[str, ...], threshold: int
) -> WitnessPolicy:
    """A checked ``WitnessPolicy``. Raises ``ProofError`` if a key is malformed, two
    witnesses share a name or a key, there are more than ``MAX_WITNESSES``, or the
    threshold is not between 1 and the number of witnesses."""
    parse_verifier_key(log_key)
    if len(witnesses) > MAX_WITNESSES:
        raise ProofError(f"a witness policy names at most {MAX_WITNESSES} witnesses")
    names, keys = set(), set()
    for vkey in witnesses:
        name, public = parse_cosigner_key(vkey)
        if name in names or public in keys:
            raise ProofError(f"witness {name} is named twice (or shares a key) in the policy")
        names.add(name)
        keys.add(public)
    if not 1 <= threshold <= len(witnesses):
        raise ProofError(f"threshold {threshold} is not between 1 and {len(witnesses)}")
    return WitnessPolicy(origin, log_key, tuple(witnesses), threshold)


def policy_from_json(document: Mapping[str, object]) -> WitnessPolicy:
    """The ``WitnessPolicy`` of a ``mappa.witness-policy`` document (the ``document``
    member of the signed file, as parsed JSON: origin, log_verifier_key, witnesses
    [{name, verifier_key, ...}], threshold). Its governance signature is checked by
    ``verify_policy_signature``. Raises ``ProofError`` for anything else."""
    witnesses, threshold = document.get("witnesses"), document.get("threshold")
    entries = witnesses if isinstance(witnesses, list) else []
    origin, log_key = document.get("origin"), document.get("log_verifier_key")
    if (
        document.get("kind") != "mappa.witness-policy"
        or not isinstance(witnesses, list)
        or not all(isinstance(w, dict) and isinstance(w.get("verifier_key"), str) for w in entries)
        or not isinstance(origin, str)
        or not isinstance(log_key, str)
        or not isinstance(threshold, int)
        or isinstance(threshold, bool)
    ):
        raise ProofError("not a mappa.witness-policy document")
    keys = [str(w["verifier_key"]) for w in entries]
    return witness_policy(origin, log_key, keys, threshold)


def verify_policy_signature(signed: dict[str, object], governance_key: bytes) -> WitnessPolicy:
    """Check a signed ``mappa.witness-policy`` file (``{"document", "signature"}``, as
    parsed JSON) against the 32-byte Ed25519 governance public key; returns its policy.
    The signature is Ed25519 over DSSE's PAE of the policy payload type and the
    document's RFC 8785 canonical JSON (which, for a document of strings, integers,
    lists and objects, is ``json.dumps`` with sorted keys and no spaces). Raises
    ``ProofError`` if it is malformed or the signature does not verify."""
    document, signature = signed.get("document"), signed.get("signature")
    if not isinstance(document, dict) or not isinstance(signature, dict):
        raise ProofError("a signed witness policy is {document, signature}")
    try:
        sig = base64.b64decode(str(signature["signature"]), validate=True)
        canonical = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (KeyError, binascii.Error, ValueError):
        raise ProofError("the witness policy's signature is not well formed") from None
    kind = WITNESS_POLICY_PAYLOAD.encode()
    signed_bytes = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(canonical), canonical)
    try:
        Ed25519PublicKey.from_public_bytes(governance_key).verify(sig, signed_bytes)
    except (InvalidSignature, ValueError):
        raise ProofError("the witness policy is not signed by the governance key") from None
    return policy_from_json(document)


WITNESS_POLICY_PAYLOAD = "application/vnd.mappa.witness-policy+json; version=1"


def verify_witnessed(note: str, policy: WitnessPolicy) -> tuple[Checkpoint, tuple[str, ...]]:
    """Verify a checkpoint against a witness policy: the log's signature and origin
    (``verify_checkpoint``), then each witness's cosignature (``verify_cosignature``);
    returns the body and the names of the witnesses whose cosignature verified, in the
    policy's order. A witness counts once however many lines it has; a line by a key
    the policy does not name is ignored. Raises ``ProofError`` if the log's signature
    fails, or fewer than ``threshold`` witnesses cosigned validly."""
    checkpoint = verify_checkpoint(note, policy.log_key, origin=policy.origin)
    signed: list[str] = []
    for vkey in policy.witnesses:
        name = parse_cosigner_key(vkey)[0]
        try:
            verify_cosignature(note, vkey)
        except ProofError:
            continue
        signed.append(name)
    if len(signed) < policy.threshold:
        raise ProofError(
            f"checkpoint is cosigned by {len(signed)} of {len(policy.witnesses)} witnesses; "
            f"the policy needs {policy.threshold}"
        )
    return checkpoint, tuple(signed)
