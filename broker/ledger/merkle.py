"""RFC 9162 Merkle tree: tree heads, inclusion proofs and consistency proofs.

The ledger stores the hash of every *complete, aligned* subtree as a node
``(level, index)``: the node covers leaves ``[index * 2**level, (index + 1) * 2**level)``;
level 0 holds the leaf hashes. Any subtree the RFC's recursion asks for is then
either one stored node or the right fold of a few (its binary decomposition), so
a proof costs O(log n) node look-ups and never recomputes the tree.

Proofs are built in two steps so a database can answer with one query: first the
node keys a proof needs (pure arithmetic), then the hashes assembled from a mapping
of those keys. Verification lives in ``verify_proofs`` (standalone, by design).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence

from broker.ledger.verify_proofs import NODE_PREFIX, leaf_hash, node_hash

__all__ = [
    "CompactRange",
    "NodeKey",
    "consistency_ranges",
    "fold",
    "inclusion_ranges",
    "leaf_hash",
    "levels",
    "node_hash",
    "nodes_for",
    "perfect_root",
    "range_keys",
    "root_of",
]

NodeKey = tuple[int, int]  # (level, index)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[NodeKey]:
    """The stored nodes whose right fold is the RFC subtree hash of leaves ``[start, end)``.

    Valid for the ranges the RFC recursion produces (``start`` aligned to the
    subtree's largest power-of-two part), which is every range used here.
    """
    keys: list[NodeKey] = []
    while start < end:
        size = end - start
        level = size.bit_length() - 1
        # The largest aligned power of two that fits at ``start``.
        while start % (1 << level):
            level -= 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of subtree hashes: H(a, H(b, H(c, ...))). Raises ``IndexError`` if
    ``hashes`` is empty."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PATH(index, D[size]) (RFC 9162 2.1.3.1), in proof order.
    Raises ``ValueError`` unless ``0 <= index < size``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PROOF(size1, D[size2]) (RFC 9162 2.1.4.1), in order.
    Raises ``ValueError`` unless ``0 <= size1 <= size2``."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            whole = False
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[NodeKey]:
    """Every stored node the hashes of ``ranges`` are folded from (see ``range_keys``)."""
    return {key for start, end in ranges for key in range_keys(start, end)}


def assemble(ranges: Sequence[tuple[int, int]], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """The proof hashes for ``ranges`` from fetched ``nodes`` (KeyError if one is missing)."""
    return [fold([nodes[k] for k in range_keys(s, e)]) for s, e in ranges]


def root_of(size: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """The tree head of the first ``size`` leaves from fetched ``nodes``. Raises
    ``KeyError`` if one is missing."""
    return EMPTY_ROOT if size == 0 else fold([nodes[k] for k in range_keys(0, size)])


class CompactRange:
    """The right edge of a growing tree: one hash per complete subtree of the prefix.

    Appending a leaf yields the new stored nodes (the leaf and every subtree it
    completes), so a store writes them in the same transaction as the entry. Made from a
    size and its edge; raises ``ValueError`` unless the edge has a hash per set bit.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, edge: Sequence[bytes] = ()) -> None:
        if len(edge) != size.bit_count():
            raise ValueError("a compact range has one hash per set bit of its size")
        self.size = size
        self._stack = list(edge)  # largest subtree first

    @classmethod
    def edge_keys(cls, size: int) -> list[NodeKey]:
        """The nodes of a tree of ``size`` leaves that make up its edge, largest first."""
        return range_keys(0, size)

    def copy(self) -> CompactRange:
        """An independent copy (extending it leaves this one as it is)."""
        return CompactRange(self.size, self._stack)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns every new ``(level, index, hash)`` node."""
        return self.extend([leaf])

    def extend(self, leaves: Iterable[bytes], keep_from: int = 0) -> list[tuple[int, int, bytes]]:
        """Add leaf hashes; returns the new ``(level, index, hash)`` nodes at ``keep_from``
        and above. A level at a time: at each, the new nodes (after the edge's node at
        that level, when they start at an odd index) pair into the next level's, and an
        unpaired last one becomes the new edge's node at that level."""
        current = list(leaves)
        if not current:
            return []
        stack = self._stack
        start, level = self.size, 0  # index of current[0] at this level
        self.size += len(current)
        created: list[tuple[int, int, bytes]] = []
        edge: list[bytes] = []  # the new edge's nodes below the old edge's, lowest first
        while current:
            if level >= keep_from:
                created += zip(itertools.repeat(level), itertools.count(start), current)
            if start & 1:  # its left sibling is the old edge's node at this level
                current.insert(0, stack.pop())
                start -= 1
            if len(current) & 1:
                edge.append(current.pop())
            current = _parents(current)
            start >>= 1
            level += 1
        stack += reversed(edge)
        return created

    @property
    def edge(self) -> list[bytes]:
        """One hash per complete subtree of the prefix, largest first."""
        return list(self._stack)

    def root(self) -> bytes:
        """The tree head of the prefix (``EMPTY_ROOT`` for no leaves)."""
        return EMPTY_ROOT if not self._stack else fold(self._stack)


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """The node over each pair of a level's hashes (an odd last one has no parent yet)."""
    # Copying a context that has taken the prefix skips the digest's look-up and set-up,
    # a sixth of the cost of hashing 65 bytes; it is every other hash verify computes.
    copy = hashlib.sha256(NODE_PREFIX).copy
    out: list[bytes] = []
    append = out.append
    for left, right in zip(level[::2], level[1::2], strict=False):
        node = copy()
        node.update(left)
        node.update(right)
        append(node.digest())
    return out


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every complete aligned subtree over ``leaves``, level by level (level 0: the
    leaves; an odd last hash of a level has no parent yet)."""
    out = [list(leaves)]
    while len(out[-1]) > 1:
        out.append(_parents(out[-1]))
    return out


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The hash of a complete subtree over ``hashes`` (a power of two of them)."""
    return levels(hashes)[-1][0]


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The tree head over leaf hashes, in one pass, holding a run of them at a time."""
    tree = CompactRange()
    run = iter(leaves)
    while chunk := list(itertools.islice(run, 1 << 16)):
        tree.extend(chunk, keep_from=64)  # no level reaches 64: only the edge is kept
    return tree.root()
