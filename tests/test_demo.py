"""`mappa demo` as a user runs it: the console script, a fresh data directory, exit 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.kafka.apache import kafka_unavailable
from schemas.messages import CATALOGUE

MAPPA = shutil.which("mappa") or str(Path(sys.executable).parent / "mappa")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAPPA_KAFKA_BOOTSTRAP"}
    return subprocess.run(  # noqa: S603 - our own console script
        [MAPPA, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.mark.parametrize("suite", ["classic", "pq-hybrid"])
def test_demo_json_summary(suite: str) -> None:
    done = run("demo", "--json", "--suite", suite)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["suite"] == suite
    first = summary["published"]["message_id"]
    views = {
        a["agency_id"]: [r["view"] for r in a["received"] if r["message_id"] == first]
        for a in summary["agencies"]
    }
    assert views["police.staffordshire"] == []
    assert views["probation.staffordshire"] == views["prison.hmp-stafford"] == ["full"]
    assert views["housing.stoke-on-trent"] == views["social-landlord.staffs-homes"] == ["redacted"]
    # A party, but not on the case team: its only rule for this type needs an active role.
    assert views["jobcentre.stafford"] == []
    assert "jobcentre.stafford" not in summary["case_team"]["members"]
    assert "jobcentre.stafford" not in summary["case_team"]["told"]
    assert summary["agreement"]["signed_by"] == "governance key"
    assert views["education.staffordshire"] == views["health.independent-clinic"] == []
    # The matrix: every message type once, from a permitted sender, to every agency.
    matrix = summary["matrix"]
    assert [r["message_type"] for r in matrix["rows"]] == [t for t in CATALOGUE if t != "case-team"]
    assert len(matrix["columns"]) == len(summary["agencies"])
    for row in matrix["rows"]:
        assert row["views"][row["sender"]] == "sender"
        assert row["views"]["health.independent-clinic"] == "none"
        assert row["views"]["education.staffordshire"] == "none"
        assert row["views"]["jobcentre.stafford"] == "none"
    victim = next(r for r in matrix["rows"] if r["message_type"] == "victim-views")
    assert {a: v for a, v in victim["views"].items() if v != "none"} == {
        "probation.staffordshire": "sender",
        "police.staffordshire": "redacted",
        "coordinator.staffordshire": "redacted",
    }
    refused = {
        a["agency_id"]: {r["reason_code"] for r in a["refused"]} for a in summary["agencies"]
    }
    assert refused["housing.stoke-on-trent"] == {"directory.unknown-agency"}
    assert refused["probation.staffordshire"] == {"verification.signature-invalid"}
    assert refused["police.staffordshire"] == {"verification.signature-invalid"}
    assert summary["consultation"]["victim_details_present"] is False
    assert summary["eavesdropper"]["readable"] == 0 < summary["eavesdropper"]["attempts"]
    assert summary["eavesdropper"]["broker_refused"] == 0  # tansu has no ACLs to refuse with
    assert summary["dead_letters"] >= 3
    audit = summary["audit"]
    assert audit["records"] == audit["expected"] > 0
    assert audit["rejected"] == 0
    assert set(audit["by_act"]) == {"collection", "disclosure", "refusal", "consultation"}
    assert audit["checkpoint"]["tree_size"] == audit["records"]
    assert audit["checkpoint"]["note"].startswith("mappa-broker/mappa/audit-ledger\n")
    assert audit["proof"]["verified"] is True
    assert audit["proof"]["hashes"]
    # Cosigned by the RA agencies' witnesses, checked against the governance-signed policy.
    witnesses = audit["witnesses"]
    assert witnesses["verified"] is True
    assert (witnesses["count"], witnesses["threshold"]) == (3, 2)
    assert len(witnesses["signed"]) >= witnesses["threshold"]
    assert "\u2014 mappa-broker/mappa/witness/police.staffordshire " in audit["checkpoint"]["note"]


def test_demo_text_summary_and_fresh_dir_rule(tmp_path: Path) -> None:
    done = run("demo", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    for phrase in (
        "redacted view",
        "not a party",
        "refused",
        "audit ledger",
        "0 readable",
        "matrix: every message type",
        "victim-views",
    ):
        assert phrase in done.stdout
    for phrase in (
        "latest signed checkpoint",
        "\u2014 mappa-broker/mappa/audit-ledger",
        "\u2014 mappa-broker/mappa/witness/probation.staffordshire",
        "verified against the witness policy: 3 of 3 witnesses (threshold 2)",
        "True",
    ):
        assert phrase in done.stdout
    again = run("demo", "--data-dir", str(tmp_path / "d"))
    assert again.returncode == 2
    assert "fresh data directory" in again.stdout


def test_areas_lists_all_42() -> None:
    done = run("areas")
    assert done.returncode == 0
    heading, *lines = done.stdout.splitlines()
    assert heading.split() == ["code", "name", "country"]
    assert len(lines) == 42
    assert any(line.startswith("staffordshire ") for line in lines)


@pytest.mark.apache_kafka
@pytest.mark.xdist_group("own-kafka-cluster")
def test_demo_on_apache_kafka_the_broker_refuses_the_eavesdropper_too() -> None:
    reason = kafka_unavailable()
    if reason is not None:
        pytest.skip(f"Apache Kafka cannot run here: {reason}")
    done = run("demo", "--kafka", "apache", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["broker"].startswith("Apache Kafka 4.4.0, 3 KRaft nodes")
    eavesdropper = summary["eavesdropper"]
    # Every area topic but its own role's is refused by the broker before any fetch;
    # what an operator could read anyway, the envelope keeps closed.
    assert eavesdropper["broker_refused"] == eavesdropper["broker_topics"] - 1 > 0
    assert eavesdropper["readable"] == 0 < eavesdropper["attempts"]
    assert summary["audit"]["records"] == summary["audit"]["expected"] > 0
    assert summary["audit"]["proof"]["verified"] is True
    views = {a["agency_id"]: [r["view"] for r in a["received"]] for a in summary["agencies"]}
    assert "full" in views["probation.staffordshire"]
    assert views["health.independent-clinic"] == []
