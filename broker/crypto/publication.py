"""One signature per publication: the Merkle tree over a publication's envelopes.

The byte layout is specified in ``docs/envelope.md`` §3.6. In short, with RFC 9162's
(Certificate Transparency v2) tree shape and SHA-256, domain-separated:

* leaf  = SHA-256(0x00 || signed_bytes(envelope)), for each envelope in order;
* node  = SHA-256(0x01 || left || right);
* root  = RFC 9162's MTH over the leaves (any size from 2 to ``MAX_PUBLICATION_ENVELOPES``);
* the suite's keys sign ``PAE(PUBLICATION_PAYLOAD_TYPE, JCS({"root": hex(root), "size": n}))``
  once, and each envelope carries its index, the size and its inclusion path.

The payload type differs from the single envelope's, so a signature over one envelope can
never pass for a signature over a root, nor the reverse; ``size`` is signed because one
root verifies under more than one size (index 0 of a tree of 3 and of 4 take the same
steps), and a receiver must know which tree it is in.

A receiver may meet one publication's root signature several times (one per envelope it
reads). ``RootSignatureMemo`` remembers successful verifications of exact inputs, so the
expensive one (ML-DSA-65) runs once; it never remembers a failure.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

from broker.crypto.encoding import jcs, pae
from broker.crypto.keys import PublicKey, verify_signature
from schemas.envelope import MAX_INCLUSION_PATH, MAX_PUBLICATION_ENVELOPES

PUBLICATION_PAYLOAD_TYPE = "application/vnd.mappa.publication+json; version=1"
HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
# Root signatures remembered per process: a receiver reads a publication's envelopes
# within moments of each other, so a few thousand publications is ample; each entry is a
# 32-byte key, well under a megabyte in all.
MEMO_ENTRIES = 4096


def leaf_hash(signed: bytes) -> bytes:
    """The leaf of one envelope: SHA-256(0x00 || signed_bytes)."""
    return hashlib.sha256(LEAF_PREFIX + signed).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """RFC 9162's k: the largest power of two smaller than ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1's MTH over leaf hashes (at least one)."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1's PATH(index, D[n]): sibling hashes from the leaf up."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), tree_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), tree_root(leaves[:k])]


def path_length(index: int, size: int) -> int:
    """How many hashes PATH(index, D[size]) holds: exactly what a proof must carry."""
    length = 0
    while size > 1:
        k = _split(size)
        if index < k:
            size = k
        else:
            index, size = index - k, size - k
        length += 1
    return length


def check_proof_shape(index: int, size: int, path: Sequence[bytes]) -> None:
    """Raise ``ValueError`` unless ``(index, size, path)`` is within bounds: 2 <= size <=
    ``MAX_PUBLICATION_ENVELOPES``, index < size, ``path_length(index, size)`` hashes of
    32 bytes each."""
    if not 2 <= size <= MAX_PUBLICATION_ENVELOPES:
        raise ValueError(f"publication size must be 2 to {MAX_PUBLICATION_ENVELOPES}")
    if not 0 <= index < size:
        raise ValueError("publication index must be below its size")
    expected = path_length(index, size)
    if len(path) != expected or expected > MAX_INCLUSION_PATH:
        raise ValueError(f"inclusion path for index {index} of {size} holds {expected} hashes")
    if any(len(h) != HASH_BYTES for h in path):
        raise ValueError(f"inclusion path hashes are {HASH_BYTES} bytes")


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` leads to from ``leaf`` at ``index`` of ``size``: RFC 9162
    §2.1.3.2, steps 2-4. Raises ``ValueError`` if the proof is out of shape
    (``check_proof_shape``); whether the root is the signed one is the signature's say."""
    check_proof_shape(index, size, path)
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # RFC 9162 step 5 also asks sn == 0: with the path's length exact it always is
    # (tests/test_publication.py walks every index of every size up to the cap).
    return r


def root_signed_bytes(root: bytes, size: int) -> bytes:
    """What the suite's keys sign for a publication:
    PAE(PUBLICATION_PAYLOAD_TYPE, JCS({"root": hex(root), "size": size}))."""
    return pae(PUBLICATION_PAYLOAD_TYPE, jcs({"root": root.hex(), "size": size}))


class RootSignatureMemo:
    """Successful signature verifications, keyed by SHA-256 of (alg, public key, message,
    signature), each length-prefixed. Bounded (least recently used goes first) and
    thread-safe. Safe to share in a process: verification of Ed25519 and ML-DSA-65 is a
    deterministic function of exactly these inputs, a failure is never remembered, and
    nothing else is (the directory's checks on the key, at step 3, run every time)."""

    def __init__(self, entries: int = MEMO_ENTRIES) -> None:
        if entries < 1:
            raise ValueError("a memo holds at least one entry")
        self._entries = entries
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def verify(self, public: PublicKey, signature: bytes, message: bytes) -> None:
        """As ``verify_signature``: raise ``VerificationError`` unless valid."""
        key = verification_digest(public, signature, message)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return
        verify_signature(public, signature, message)
        with self._lock:
            self._seen[key] = None
            self._seen.move_to_end(key)
            while len(self._seen) > self._entries:
                self._seen.popitem(last=False)


def verification_digest(public: PublicKey, signature: bytes, message: bytes) -> bytes:
    """SHA-256 of exactly what decides a signature verification: the key's algorithm and
    bytes, the message and the signature, each length-prefixed. Equal digests mean the
    same verification, with the same outcome."""
    digest = hashlib.sha256()
    for part in (public.alg.value.encode(), public.raw, message, signature):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


# One per process, on purpose (the brief of issue 19, item 3): a cache of pure results,
# holding no key, policy or secret. Worker processes each get their own.
ROOT_SIGNATURES = RootSignatureMemo()
