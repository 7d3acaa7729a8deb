"""The published envelope vectors hold, and the drift check would notice if they did not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.vectors import generate

DATA: dict[str, Any] = json.loads(generate.FILE.read_text())


def test_vectors_have_not_drifted() -> None:
    assert generate.check(DATA) == []


def test_vectors_cover_every_refusal_the_receiver_makes_before_policy() -> None:
    codes = {v["expect"] for v in DATA["invalid"]}
    assert codes >= {
        "verification.signature-invalid",
        "decryption.failed",
        "envelope.unknown-suite",
        "directory.unknown-key",
        "directory.unknown-agency",
        "envelope.sender-key-mismatch",
        "directory.key-revoked",
        "envelope.topic-mismatch",
        "envelope.clock-skew",
        "envelope.stale",
        "envelope.replay-conflict",
        "envelope.too-large",
        "envelope.signature-missing",
        "schema.not-json",
        "schema.duplicate-key",
        "schema.float",
        "not-addressed",
        "duplicate",
        "envelope.backdated",
        "envelope.malformed",
        "policy.agreement-version",
        "policy.agreement-superseded",
        "policy.no-agreement",
    }
    assert {v["suite"] for v in DATA["valid"]} == {"classic", "pq-hybrid"}


def test_publications_of_both_suites_and_every_path_shape_are_published() -> None:
    """docs/envelope.md §3.6: a tree of 3 in each suite (index 0 and 1 take two steps,
    index 2 one, on the other side) and one of 2; each envelope's steps end at its
    publication's root."""
    pubs = DATA["publications"]
    assert {n: p["size"] for n, p in pubs.items()} == {
        "classic-publication": 3,
        "pq-hybrid-publication": 3,
        "classic-publication-of-two": 2,
    }
    by_name = {v["name"]: v for v in DATA["valid"]}
    shapes = set()
    for pub in pubs.values():
        for index, name in enumerate(pub["envelopes"]):
            derived = by_name[name]["derived"]["publication"]
            assert derived["leaf_hash"] == pub["leaf_hashes"][index]
            assert derived["root"] == pub["root"] == derived["steps"][-1]["hash"]
            assert derived["signed_root_bytes"] == pub["signed_root_bytes"]
            shapes.add(tuple(step["sibling_on"] for step in derived["steps"]))
    assert shapes == {("right", "right"), ("left", "right"), ("left",), ("right",)}


def test_every_new_way_a_publication_is_invalid_has_a_vector() -> None:
    names = {v["name"] for v in DATA["invalid"]}
    assert {m[0] for m in generate.PUBLICATION_MUTATIONS} <= names
    outcomes = {v["expect"] for v in DATA["invalid"] if v["name"].count("publication")}
    outcomes |= {v["expect"] for v in DATA["invalid"] if "root-signature" in v["name"]}
    assert outcomes == {
        "envelope.malformed",
        "verification.signature-invalid",
        "schema.duplicate-key",
    }


@pytest.mark.parametrize("vector", DATA["invalid"], ids=lambda v: v["name"])
def test_each_invalid_vector(vector: dict[str, Any]) -> None:
    assert generate.evaluate(DATA, vector, vector["receiver"]) == vector["expect"]


def outcomes(*, ahead: bool) -> dict[str, str]:
    """Each vector's outcome for each of its receivers, the record prepared ``ahead``
    by a worker (``broker.gateway.preparing``) or not."""
    got = {
        f"{v['name']} for {receiver}": generate.evaluate(DATA, v, receiver, ahead=ahead)
        for v in DATA["valid"]
        for receiver in v["expect"]
    }
    for v in DATA["invalid"]:
        got[v["name"]] = generate.evaluate(DATA, v, v["receiver"], ahead=ahead)
    return got


def test_each_vector_prepared_ahead_reaches_its_outcome() -> None:
    """A gateway with workers runs every check on what they parsed, verified and opened
    ahead: every vector, valid or not, ends exactly as on the loop alone."""
    expected = {f"{v['name']} for {r}": e for v in DATA["valid"] for r, e in v["expect"].items()}
    expected |= {v["name"]: v["expect"] for v in DATA["invalid"]}
    assert outcomes(ahead=True) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        "derived",
        "expect",
        "invalid-envelope",
        "data-key",
        "plaintext",
        "publication-root",
        "publication-step",
        "publication-proof",
    ],
)
def test_drift_is_detected(tamper: str) -> None:
    """Guards the guard: each kind of change to the file is reported."""
    data = copy.deepcopy(DATA)
    valid = data["valid"][0]
    if tamper == "derived":
        valid["derived"]["views"]["0"]["aad"] = valid["derived"]["views"]["0"]["aad"].replace(
            "view", "veiw"
        )
    elif tamper == "expect":
        data["invalid"][0]["expect"] = "decryption.failed"
    elif tamper == "invalid-envelope":
        data["invalid"][1]["envelope"] = data["invalid"][1]["envelope"].replace("a", "b", 1)
    elif tamper == "data-key":
        valid["data_keys"]["0"] = "00" * 32
    elif tamper == "publication-root":
        data["publications"]["classic-publication"]["root"] = "00" * 32
    elif tamper == "publication-step":
        member = next(v for v in data["valid"] if "publication" in v)
        member["derived"]["publication"]["steps"][0]["sibling_on"] = "left"
    elif tamper == "publication-proof":
        stored = next(v for v in data["invalid"] if v["name"] == "publication-index-negative")
        stored["envelope"] = stored["envelope"].replace('"index":-1', '"index":-2')
    else:
        data["plaintexts"]["full"] = data["plaintexts"]["full"].replace("High", "Low")
    assert generate.check(data)
