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


@pytest.mark.parametrize("vector", DATA["invalid"], ids=lambda v: v["name"])
def test_each_invalid_vector(vector: dict[str, Any]) -> None:
    assert generate.evaluate(DATA, vector, vector["receiver"]) == vector["expect"]


@pytest.mark.parametrize(
    "tamper",
    ["derived", "expect", "invalid-envelope", "data-key", "plaintext"],
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
    else:
        data["plaintexts"]["full"] = data["plaintexts"]["full"].replace("High", "Low")
    assert generate.check(data)
