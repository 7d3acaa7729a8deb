"""The information-governance officer's console pages (``broker/console/governance.py``),
in-process over a real world (``tests.console_world``): a risk assessment published by
police and opened by housing with a justification, then the audit ledger searched by the
person's PNC id, its proofs checked with the standalone verifier, exported, verified, and
its checkpoints and refusals shown. The PNC id goes only in POST bodies: never in a URL,
a page or a log line. Every page is refused to the other roles, and every form without
the session's CSRF token."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker.kafka.transport import KafkaTransport
from broker.ledger.verify_proofs import leaf_hash, verify_checkpoint, verify_inclusion
from tests.console_world import ConsoleWorld, console_world, csrf_of
from tests.support import HOUSING, PNC
from tests.test_api import JUSTIFICATION

CONSULTING_USER = "housing.officer.207"
GET_PAGES = ("/console/audit", "/console/audit/checkpoints", "/console/audit/refusals",
             "/console/audit/checkpoint", "/console/audit/proof/0")  # fmt: skip
POST_PAGES = ("/console/audit/search", "/console/audit/verify", "/console/audit/export")


@pytest.fixture
async def cw(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[ConsoleWorld]:
    """The console over a world where housing has opened a published risk assessment."""
    async with console_world(tmp_path, transport) as world:
        message_id = await world.api.published()
        opened = await world.api.client.post(
            f"/v1/agencies/{HOUSING}/inbox/{message_id}/open",
            json={"user": CONSULTING_USER, "justification": JUSTIFICATION},
            headers=world.api.auth(HOUSING),
        )
        assert opened.status_code == 200, opened.text
        await world.api.world.sync_ledger()
        yield world


def watch_urls(c: httpx.AsyncClient) -> list[str]:
    """Every URL ``c`` requests from now on."""
    urls: list[str] = []

    async def record(request: httpx.Request) -> None:
        urls.append(str(request.url))

    c.event_hooks["request"].append(record)
    return urls


async def search(c: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await c.get("/console/audit")
    assert form.status_code == 200, form.text
    return await c.post("/console/audit/search", data={"csrf_token": csrf_of(form.text), **fields})


def timeline(page: str) -> list[str]:
    """The text of each row of the results table, its tags collapsed."""
    body = page.split('<tbody class="govuk-table__body">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


async def test_the_officer_finds_a_persons_timeline_by_pnc_id_which_stays_out_of_urls(
    cw: ConsoleWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with cw.signed_in("ig") as ig:
        urls = watch_urls(ig)
        home = await ig.get("/console/home")
        assert 'href="/console/audit"' in home.text
        found = await search(ig, subject=PNC)
        assert found.status_code == 200, found.text
        assert found.headers["cache-control"] == "no-store"
        rows = timeline(found.text)
        [consulted] = [r for r in rows if "Consultation" in r]
        assert CONSULTING_USER in consulted
        assert HOUSING in consulted
        assert JUSTIFICATION in consulted
        assert "Done" in consulted
        # Police's collection and disclosures are on the same timeline.
        assert any("Disclosure" in r for r in rows)
        # Every checkpointed entry has a proof cell for proof.js, pinned to one checkpoint.
        [container] = re.findall(r'data-checkpoint-url="([^"]+)" data-ledger-key="([^"]+)"',
                                 found.text)  # fmt: skip
        assert container[0].startswith("/console/audit/checkpoint?size=")
        proofs = re.findall(r'data-proof-url="([^"]+)"', found.text)
        assert proofs
        assert found.text.count("Not checked (needs JavaScript)") == len(proofs)
        assert '<script type="module" src="/console/static/proof.js"></script>' in found.text
        # The next search from the results page: the PNC id is not put back in the form.
        again = await ig.get("/console/audit")
        for answer in (found, again, home):
            assert PNC not in answer.text
    assert all(PNC not in url and "0456789" not in url for url in urls)
    assert PNC not in caplog.text


async def test_a_proof_from_the_console_verifies_against_its_checkpoint(cw: ConsoleWorld) -> None:
    async with cw.signed_in("ig") as ig:
        found = await search(ig, subject=PNC, act="consultation")
        assert found.status_code == 200, found.text
        [(checkpoint_url, key)] = re.findall(
            r'data-checkpoint-url="([^"]+)" data-ledger-key="([^"]+)"', found.text
        )
        [proof_url] = re.findall(r'data-proof-url="([^"]+)"', found.text)
        checkpoint = await ig.get(checkpoint_url.replace("&amp;", "&"))
        proof = await ig.get(proof_url.replace("&amp;", "&"))
        assert checkpoint.status_code == proof.status_code == 200, proof.text
        assert checkpoint.headers["content-type"] == "application/json"
        # The same JSON as the governance API's.
        reader = cw.api.app.state.backend.ledger
        assert checkpoint.json() == reader.checkpoint_json(checkpoint.json()["tree_size"])
        body = proof.json()
        assert json.loads(body["entry"])["event"]["justification"] == JUSTIFICATION
        origin = key.split("+", 1)[0]
        cp = verify_checkpoint(checkpoint.json()["note"], key, origin=origin)
        assert body["tree_size"] == cp.size
        verify_inclusion(
            body["seq"],
            cp.size,
            leaf_hash(body["entry"].encode()),
            [base64.b64decode(h) for h in body["hashes"]],
            cp.root,
        )
        # An entry no checkpoint covers is refused as the API refuses it.
        beyond = await ig.get(f"/console/audit/proof/{cp.size + 5}")
        assert beyond.status_code == 400
        assert beyond.json()["code"] == "audit.query-invalid"


async def test_the_export_downloads_the_subjects_entries(cw: ConsoleWorld) -> None:
    async with cw.signed_in("ig") as ig:
        urls = watch_urls(ig)
        found = await search(ig, subject=PNC)
        token = csrf_of(found.text)
        export_form = found.text.split('action="/console/audit/export"', 1)[1]
        hidden = r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">'
        carried = dict(re.findall(hidden, export_form))
        assert set(carried) == {"csrf_token", "subject_ref"}
        as_csv = await ig.post("/console/audit/export", data=carried | {"format": "csv"})
        assert as_csv.status_code == 200, as_csv.text
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.headers["content-disposition"] == 'attachment; filename="audit-export.csv"'
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert {r["subject_ref"] for r in rows} == {carried["subject_ref"]}
        assert any(r["act"] == "consultation" and r["justification"] == JUSTIFICATION
                   for r in rows)  # fmt: skip
        # Straight from a typed PNC id too: the same entries, as JSON.
        as_json = await ig.post(
            "/console/audit/export", data={"csrf_token": token, "subject": PNC, "format": "json"}
        )
        assert as_json.status_code == 200, as_json.text
        assert as_json.headers["content-disposition"] == 'attachment; filename="audit-export.json"'
        document = as_json.json()
        assert document["subject_ref"] == carried["subject_ref"]
        assert document["count"] == len(rows)
        assert PNC not in as_json.text
    assert all(PNC not in url for url in urls)


async def test_a_bad_pnc_id_is_an_error_on_the_form(cw: ConsoleWorld) -> None:
    async with cw.signed_in("ig") as ig:
        bad = await search(ig, subject="not a pnc", user=CONSULTING_USER)
        assert bad.status_code == 400
        assert "govuk-error-summary" in bad.text
        assert "Enter a PNC id in the correct format" in bad.text
        assert 'href="#subject"' in bad.text
        assert "not a pnc" not in bad.text
        assert f'value="{CONSULTING_USER}"' in bad.text
        by_user = await search(ig, user=CONSULTING_USER, **{"until-day": "31", "until-month": "2",
                                                            "until-year": "2026"})  # fmt: skip
        assert by_user.status_code == 400
        assert "Enter a real &#39;to&#39; date" in by_user.text


async def test_checkpoints_verify_and_refusals(cw: ConsoleWorld) -> None:
    async with cw.signed_in("ig") as ig:
        listed = await ig.get("/console/audit/checkpoints")
        assert listed.status_code == 200, listed.text
        assert "Signature checked" in listed.text
        assert "Does not verify" not in listed.text
        verified = await ig.post("/console/audit/verify", data={"csrf_token": csrf_of(listed.text)})
        assert verified.status_code == 200, verified.text
        assert "The ledger is intact" in verified.text
        report = cw.api.app.state.backend.ledger.verify().to_json()
        assert f"{report['entries']}</dd>" in verified.text.replace(" ", "").replace("\n", "")
        refusals = await ig.get("/console/audit/refusals")
        assert refusals.status_code == 200, refusals.text
        assert "Records the ledger refused" in refusals.text


@pytest.mark.parametrize("name", ["housing", "coordinator"])
async def test_other_roles_get_403_on_every_audit_page(cw: ConsoleWorld, name: str) -> None:
    async with cw.signed_in(name) as c:
        token = csrf_of((await c.get("/console/home")).text)
        for path in GET_PAGES:
            assert (await c.get(path)).status_code == 403, path
        for path in POST_PAGES:
            fields = {"csrf_token": token, "subject": PNC, "format": "csv"}
            answer = await c.post(path, data=fields)
            assert answer.status_code == 403, path
            assert JUSTIFICATION not in answer.text


async def test_forms_without_the_sessions_csrf_token_are_refused(cw: ConsoleWorld) -> None:
    async with cw.signed_in("ig") as ig:
        for path in POST_PAGES:
            for token in ({}, {"csrf_token": "x" * 43}):
                refused = await ig.post(path, data={"subject": PNC, "format": "csv", **token})
                assert refused.status_code == 403, path
                assert JUSTIFICATION not in refused.text
    async with cw.browser() as nobody:
        away = await nobody.get("/console/audit")
        assert away.status_code == 303
        assert away.headers["location"] == "/console/sign-in"
