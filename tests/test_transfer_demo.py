"""`mappa transfer demo` on the session's broker: what each agency received, before and after."""

from __future__ import annotations

import uuid
from pathlib import Path

from broker.cli.demo.transfer import render, run_transfer_demo
from broker.settings import Settings


async def test_transfer_demo_moves_the_case(tmp_path: Path, kafka_bootstrap: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "d",
        kafka_bootstrap=kafka_bootstrap,
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
    )
    summary = await run_transfer_demo(settings)
    agencies = {a["agency_id"]: a for a in summary["agencies"]}
    assert summary["transfer"]["state"] == "completed"
    # Staffordshire housing got the case before the move and nothing after it.
    assert agencies["housing.stoke-on-trent"]["before"]
    assert agencies["housing.stoke-on-trent"]["after"] == []
    # West Mercia housing: the completion notice, the redacted handover, the new message.
    worcester = agencies["housing.worcester"]["after"]
    assert worcester[0].startswith("transfer-complete (summary")
    assert sum("redacted, handover from probation.staffordshire" in x for x in worcester) == 2
    assert "risk-assessment (redacted, message from police.west-mercia)" in worcester
    assert agencies["police.west-mercia"]["before"] == []
    assert any("handover" in x for x in agencies["police.west-mercia"]["after"])
    assert [r["code"] for r in summary["refused"]] == ["transfer.case-moved"]
    assert summary["audit"]["reshare_disclosures"] == summary["reshared"] == 10
    assert set(summary["audit"]["by_area"]) == {"staffordshire", "west-mercia"}
    text = render(summary)
    assert "housing.stoke-on-trent (housing, staffordshire)" in text
    assert "after:  nothing" in text
