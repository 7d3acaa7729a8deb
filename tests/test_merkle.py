"""RFC 6962 / 9162 vectors against the prover (merkle.py) and the standalone verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.ledger import merkle
from broker.ledger.verify_proofs import (
    ProofError,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "rfc6962-vectors.json").read_text()
)
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaf_inputs"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]


def memory_tree(leaves: list[bytes]) -> dict[merkle.NodeKey, bytes]:
    nodes: dict[merkle.NodeKey, bytes] = {}
    tree = merkle.CompactRange()
    for leaf in leaves:
        for level, index, h in tree.append(leaf_hash(leaf)):
            nodes[(level, index)] = h
    return nodes


def test_leaf_hashes() -> None:
    assert [leaf_hash(x).hex() for x in LEAVES] == VECTORS["leaf_hashes"]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_of_every_prefix(size: int) -> None:
    nodes = memory_tree(LEAVES[:size])
    assert merkle.root_of(size, nodes) == ROOTS[size]
    assert merkle.root_from_leaves(leaf_hash(x) for x in LEAVES[:size]) == ROOTS[size]
    tree = merkle.CompactRange()
    for x in LEAVES[:size]:
        tree.append(leaf_hash(x))
    assert tree.root() == ROOTS[size]


@pytest.mark.parametrize("vector", VECTORS["inclusion_proofs"], ids=str)
def test_inclusion_vectors(vector: dict[str, Any]) -> None:
    index, size = vector["leaf_index"], vector["tree_size"]
    expected = [bytes.fromhex(p) for p in vector["proof"]]
    nodes = memory_tree(LEAVES[:size])
    ranges = merkle.inclusion_ranges(index, size)
    assert merkle.assemble(ranges, nodes) == expected
    leaf = leaf_hash(LEAVES[index])
    verify_inclusion(index, size, leaf, expected, ROOTS[size])
    # Any single altered bit, index, size, root or added/removed element is refused.
    for i in range(len(expected)):
        bad = list(expected)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, bad, ROOTS[size])
    # (A different size can share a path shape, so only index changes are refused here;
    # the size is bound by the signed checkpoint that carries the root.)
    for wrong_index in (index ^ 1, size):
        with pytest.raises(ProofError):
            verify_inclusion(wrong_index, size, leaf, expected, ROOTS[size])
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, expected, ROOTS[size - 1])
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, [*expected, leaf], ROOTS[size])
    if expected:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, expected[:-1], ROOTS[size])


@pytest.mark.parametrize("vector", VECTORS["consistency_proofs"], ids=str)
def test_consistency_vectors(vector: dict[str, Any]) -> None:
    size1, size2 = vector["size1"], vector["size2"]
    expected = [bytes.fromhex(p) for p in vector["proof"]]
    nodes = memory_tree(LEAVES[:size2])
    assert merkle.assemble(merkle.consistency_ranges(size1, size2), nodes) == expected
    verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], expected)
    for i in range(len(expected)):
        bad = list(expected)
        bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], bad)
    if size1 != size2:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2], expected)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2 - 1], expected)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], expected[:-1])
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], [*expected, ROOTS[1]])


def test_verifier_refuses_malformed_input() -> None:
    leaf = leaf_hash(b"x")
    with pytest.raises(ProofError, match="not inside"):
        root_from_inclusion_proof(-1, 1, leaf, [])
    with pytest.raises(ProofError, match="32 bytes"):
        root_from_inclusion_proof(0, 1, b"short", [])
    with pytest.raises(ProofError, match="SHA-256"):
        verify_inclusion(0, 2, leaf, [b"x" * 31], leaf)
    with pytest.raises(ProofError, match="at most"):
        verify_inclusion(0, 2, leaf, [leaf] * 129, leaf)
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(3, 2, leaf, leaf, [])
    with pytest.raises(ProofError, match="forked"):
        verify_consistency(2, 2, leaf, ROOTS[2], [])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(2, 2, ROOTS[2], ROOTS[2], [leaf])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(0, 2, ROOTS[0], ROOTS[2], [leaf])
    verify_consistency(0, 2, ROOTS[0], ROOTS[2], [])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(1, 2, ROOTS[1], ROOTS[2], [])
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_ranges(3, 3)
    with pytest.raises(ValueError, match="no consistency"):
        merkle.consistency_ranges(4, 3)
    with pytest.raises(ValueError, match="set bit"):
        merkle.CompactRange(3, [leaf])


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_every_proof_of_random_trees_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    """Property: for any tree, any leaf and any two sizes, the proofs built from stored
    nodes verify against the roots computed from scratch."""
    nodes = memory_tree(leaves)
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(index + 1, n))
    old = data.draw(st.integers(0, size))
    root = merkle.root_from_leaves(leaf_hash(x) for x in leaves[:size])
    assert merkle.root_of(size, nodes) == root
    proof = merkle.assemble(merkle.inclusion_ranges(index, size), nodes)
    verify_inclusion(index, size, leaf_hash(leaves[index]), proof, root)
    old_root = merkle.root_from_leaves(leaf_hash(x) for x in leaves[:old])
    consistency = merkle.assemble(merkle.consistency_ranges(old, size), nodes)
    verify_consistency(old, size, old_root, root, consistency)
