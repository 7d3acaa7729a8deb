"""Correction and retention erasure, over HTTP and from `mappa records`: each act audited
as an s62 alteration or erasure naming who asked, each refusal refused and audited, and
no personal data in an answer, a log line or the ledger.

One application for the module (``module_api``): each test makes its own messages, and
the erasures here only ever find the messages a test aged itself. A message is made
"past retention" by moving its receipt time back in the holder's store, as a store that
had held it for years would show it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.cli.main import main
from broker.gateway.store import AgencyStore
from schemas.common import format_timestamp, parse_timestamp
from tests.support import HOUSING, PNC, POLICE, PROBATION
from tests.test_api import Api, arms_record, module_api

__all__ = ["module_api"]  # the fixture, shared with tests/test_api.py

# What must never appear in an answer, a log line or the ledger.
IN_CLEAR = (PNC, "Jane Witness", "1 Example Road", "Sample")
REASON = "MAPPA level raised to 3 at the level review"


def corrections(message_id: str, agency: str = POLICE) -> str:
    return f"/v1/agencies/{agency}/messages/{message_id}/corrections"


def erasures(agency: str = HOUSING) -> str:
    return f"/v1/agencies/{agency}/inbox/erasures"


async def correct(
    api: Api, message_id: str, *, who: str = POLICE, key: str | None = None, **body: Any
) -> httpx.Response:
    payload = {"record": arms_record(mappaLevel=3), "purpose": "risk management", "reason": REASON}
    headers = api.auth(who) | ({"Idempotency-Key": key} if key else {})
    return await api.client.post(corrections(message_id, who), json=payload | body, headers=headers)


def age(store: AgencyStore, message_id: str, years: int) -> None:
    """Make ``store`` show ``message_id`` as received more than ``years`` years ago."""
    item = store.inbox_item(message_id)
    assert item is not None
    then = parse_timestamp(item.received_at) - timedelta(days=366 * years + 1)
    with store.transaction():
        store.delete_inbox_item(item.message_id, sender=item.sender)
        store.add_to_inbox(replace(item, received_at=format_timestamp(then)))


def retention(api: Api) -> int:
    return api.world.deployment.agreement.retention.years


async def ledger(api: Api, **where: Any) -> list[dict[str, Any]]:
    await api.world.sync_ledger()
    entries = api.world.ledger.store.entries(**where)
    text = json.dumps(entries)
    assert not [s for s in IN_CLEAR if s in text]
    return entries


def no_personal_data(*texts: str) -> None:
    for text in texts:
        assert not [s for s in IN_CLEAR if s in text], text


async def test_a_correction_supersedes_the_original_and_is_audited_as_an_alteration(
    module_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = module_api
    caplog.set_level(logging.INFO)
    original = await api.published()
    key = str(uuid.uuid4())
    response = await correct(api, original, key=key)
    assert response.status_code == 201, response.text
    corrected = response.json()
    assert corrected["supersedes"] == original
    assert corrected["message_type"] == "risk-assessment"
    assert corrected["relayed"] is True
    # The same request again with its key: the first answer, and nothing published twice.
    again = await correct(api, original, key=key)
    assert (again.status_code, again.json()) == (201, corrected)
    assert again.headers["Idempotent-Replayed"] == "true"

    new = corrected["message_id"]
    await api.world.pump(lambda: api.world.gw(PROBATION).ctx.store.inbox_item(new) is not None)
    [alteration] = await ledger(api, act="alteration", message_id=new)
    assert alteration["operation"] == "correct"
    assert (alteration["agency"], alteration["user"]) == (POLICE, api.service(POLICE))
    assert original in alteration["reason"]
    # One correction of it, however often the request was made with its key.
    assert [
        e["message_id"] for e in await ledger(api, act="alteration") if original in e["reason"]
    ] == [new]
    assert [e for e in await ledger(api, act="collection") if e["message_id"] == new]
    no_personal_data(response.text, caplog.text)


async def test_corrections_refused_are_audited_and_publish_nothing(
    module_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = module_api
    caplog.set_level(logging.INFO)
    original = await api.published()
    before = len(await ledger(api, act="refusal", operation="correct"))
    altered = len(await ledger(api, act="alteration"))
    other_subject = arms_record(pnc="2011/0000009A")
    refusals = [
        # Another agency, which holds the message, did not send it.
        (403, "correction.not-sender", await correct(api, original, who=HOUSING)),
        # An id this agency never sent.
        (403, "correction.not-sender", await correct(api, str(uuid.uuid4()))),
        # Not the same subject.
        (422, "correction.mismatch", await correct(api, original, record=other_subject)),
        # A record the adapter cannot map.
        (422, "adapter.record-invalid", await correct(api, original, record={"pnc": 7})),
    ]
    for status, code, response in refusals:
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
        no_personal_data(response.text)
    entries = await ledger(api, act="refusal", operation="correct")
    assert len(entries) == before + len(refusals)
    assert {e["reason_code"] for e in entries[before:]} >= {
        "correction.not-sender",
        "correction.mismatch",
    }
    assert {e["user"] for e in entries[before:]} == {api.service(POLICE), api.service(HOUSING)}
    assert len(await ledger(api, act="alteration")) == altered

    # Refused before it reaches the gateway: a credential for another agency, bad input.
    other = await api.client.post(
        corrections(original),
        json={"record": arms_record(), "purpose": "p", "reason": "r"},
        headers=api.auth(PROBATION),
    )
    assert (other.status_code, other.json()["error"]) == (403, "auth.forbidden")
    for path, body in (
        (corrections("not-a-uuid"), {"record": {}, "purpose": "p", "reason": "r"}),
        (corrections(original), {"record": arms_record(), "purpose": "p"}),  # no reason
        (corrections(original), {"record": arms_record(), "purpose": "p", "reason": "\u202e"}),
    ):
        bad = await api.client.post(path, json=body, headers=api.auth(POLICE))
        assert (bad.status_code, bad.json()["error"]) == (422, "request.invalid"), bad.text
    # An Idempotency-Key given again with another request.
    key = str(uuid.uuid4())
    assert (await correct(api, original, key=key)).status_code == 201
    reused = await correct(api, original, key=key, reason="another reason altogether")
    assert (reused.status_code, reused.json()["error"]) == (422, "request.idempotency-key-reused")
    no_personal_data(caplog.text)


async def test_erasure_takes_only_what_is_past_retention(
    module_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = module_api
    caplog.set_level(logging.INFO)
    housing = api.world.gw(HOUSING).ctx.store
    expired, fresh = await api.published(), await api.published()
    age(housing, expired, retention(api))
    before = len(await ledger(api, act="refusal", operation="erase"))

    # A dry run lists it, and erases nothing.
    dry = await api.client.post(erasures(), json={"dry_run": True}, headers=api.auth(HOUSING))
    assert dry.status_code == 200, dry.text
    assert [m["message_id"] for m in dry.json()["erased"]] == [expired]
    assert housing.inbox_item(expired) is not None

    # Named: every one must be held and past retention, else nothing is erased.
    named_dry = await api.client.post(
        erasures(), json={"dry_run": True, "message_ids": [expired]}, headers=api.auth(HOUSING)
    )
    assert [m["message_id"] for m in named_dry.json()["erased"]] == [expired]
    for named, status, code in (
        ([expired, fresh], 403, "erasure.not-expired"),
        ([expired, str(uuid.uuid4())], 404, "api.not-found"),
    ):
        refused = await api.client.post(
            erasures(), json={"message_ids": named}, headers=api.auth(HOUSING)
        )
        assert (refused.status_code, refused.json()["error"]) == (status, code), refused.text
        assert housing.inbox_item(expired) is not None
    malformed: list[dict[str, Any]] = [
        {"message_ids": []},
        {"message_ids": ["nope"]},
        {"dry_run": "yes"},  # strict: true or false, for an act that deletes
        {"x": 1},
    ]
    for body in malformed:
        bad = await api.client.post(erasures(), json=body, headers=api.auth(HOUSING))
        assert (bad.status_code, bad.json()["error"]) == (422, "request.invalid"), body
    other = await api.client.post(erasures(), json={}, headers=api.auth(POLICE))
    assert (other.status_code, other.json()["error"]) == (403, "auth.forbidden")

    done = await api.client.post(erasures(), json={}, headers=api.auth(HOUSING))
    assert done.status_code == 200, done.text
    assert [m["message_id"] for m in done.json()["erased"]] == [expired]
    assert done.json()["retention_years"] == retention(api)
    assert housing.inbox_item(expired) is None
    assert housing.inbox_item(fresh) is not None
    # Asked again: nothing more has expired.
    again = await api.client.post(erasures(), json={}, headers=api.auth(HOUSING))
    assert again.json()["erased"] == []

    [erasure] = await ledger(api, act="erasure", message_id=expired)
    assert (erasure["operation"], erasure["agency"]) == ("erase", HOUSING)
    assert erasure["user"] == api.service(HOUSING)
    refusals = (await ledger(api, act="refusal", operation="erase"))[before:]
    assert {e["reason_code"] for e in refusals} == {"erasure.not-expired", "erasure.not-held"}
    no_personal_data(dry.text, done.text, caplog.text)


# -- the command line -------------------------------------------------------------------------
async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    no_personal_data(captured.out, captured.err)
    return code, captured.out, captured.err


async def test_mappa_records_corrects_and_erases_through_the_store(
    module_api: Api,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = module_api
    world = api.world
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", world.passphrase.decode())
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", world.deployment.topics.namespace)
    agreement = tmp_path / "agreement.json"
    agreement.write_text(world.deployment.agreement.model_dump_json())
    record = tmp_path / "record.json"
    record.write_text(json.dumps(arms_record(mappaLevel=3)))
    data = str(world.deployment.settings.data_dir)
    base = ("records", "--data-dir", data)
    who = ("--user", "ppu.officer.4471", "--agreement", str(agreement))
    fix = ("correct", "--purpose", "risk management", "--reason", REASON, "--record", str(record))
    original = await api.published()

    code, out, _ = await run(
        capsys, *base, *fix, "--as", POLICE, *who, "--message", original, "--json"
    )
    assert code == 0
    corrected = json.loads(out)
    assert (corrected["supersedes"], corrected["queued"]) == (original, True)
    new = corrected["message_id"]
    # The running gateway sends what the command queued.
    await world.pump(lambda: world.gw(PROBATION).ctx.store.inbox_item(new) is not None)
    [alteration] = await ledger(api, act="alteration", message_id=new)
    assert alteration["user"].startswith("ppu.officer.4471 via os:")

    for argv, status, said in (
        ((*fix, "--as", HOUSING, *who, "--message", original), 1, "correction.not-sender"),
        ((*fix, "--as", POLICE, *who, "--message", str(uuid.uuid4())), 1, "correction.not-sender"),
        ((*fix, "--as", POLICE, *who, "--message", "nope"), 2, "expected a message id"),
        (("correct", "--as", POLICE, *who, "--message", original), 2, "required"),
        (("erase-expired", "--as", HOUSING, "--user", "\x1b[2J", "--dry-run"), 2, "printable"),
    ):
        code, out, err = await run(capsys, *base, *argv)
        assert (code, out) == (status, ""), err
        assert said in err
        assert err.count("\n") == 1

    housing = world.gw(HOUSING).ctx.store
    fresh = await api.published()
    age(housing, original, retention(api))
    erase = ("erase-expired", "--as", HOUSING, *who)
    code, out, _ = await run(capsys, *base, *erase, "--dry-run")
    assert code == 0
    assert f"{HOUSING} would erase 1 message(s)" in out
    assert original in out
    assert housing.inbox_item(original) is not None
    for named, said in ((fresh, "erasure.not-expired"), (str(uuid.uuid4()), "erasure.not-held")):
        code, _, err = await run(capsys, *base, *erase, "--message", original, "--message", named)
        assert code == 1
        assert said in err
        assert housing.inbox_item(original) is not None
    code, out, _ = await run(capsys, *base, *erase, "--json")
    assert code == 0
    assert [m["message_id"] for m in json.loads(out)["erased"]] == [original]
    assert housing.inbox_item(original) is None
    assert housing.inbox_item(fresh) is not None
    await world.gw(HOUSING).relay.flush()  # as the running gateway's next poll would
    [erasure] = await ledger(api, act="erasure", message_id=original)
    assert erasure["user"].startswith("ppu.officer.4471 via os:")
