"""The information-governance officer's console pages (``broker/console/governance.py``),
in-process over a real world (``tests.console_world``): a risk assessment published by
police and opened by housing with a justification, then the audit ledger searched by the
person's PNC id, its proofs checked with the standalone verifier, exported, verified, and
its checkpoints and refusals shown. The whole-ledger check runs as a background job
whose page shows its progress (and a button to load it again), then the result (intact,
or the first tampered entry). The PNC id goes only in POST bodies: never in a URL, a page
or a log line. Every page is refused to the other roles, and every form without the
session's CSRF token."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.console import governance
from broker.console.verify_jobs import KEEP, JobState, VerifyJobs
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.roles import Role
from broker.identity.users import UserStore
from broker.kafka.transport import KafkaTransport
from broker.ledger.integrity import IntegrityReport, VerifyIncomplete
from broker.ledger.reader import LedgerReader
from broker.ledger.verify_proofs import leaf_hash, verify_checkpoint, verify_inclusion
from tests.console_world import PASSWORD, USERS, ConsoleWorld, console_world, csrf_of, sign_in
from tests.ledger_world import rewrite_block
from tests.support import EDUCATION, HOUSING, PNC
from tests.test_api import JUSTIFICATION

CONSULTING_USER = USERS["housing"][0]
GET_PAGES = ("/console/audit", "/console/audit/checkpoints", "/console/audit/refusals",
             "/console/audit/checkpoint", "/console/audit/proof/0",
             "/console/audit/verify/" + "A" * 22)  # fmt: skip
# How long a verify job of the small test ledger may take, in polls of its page.
POLLS, POLL_SECONDS = 400, 0.05
POST_PAGES = ("/console/audit/search", "/console/audit/verify", "/console/audit/export")


@pytest.fixture
async def cw(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[ConsoleWorld]:
    """The console over a world where housing has opened a published risk assessment."""
    async with console_world(tmp_path, transport) as world:
        await world.consulted(JUSTIFICATION)
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


async def start_verify(ig: httpx.AsyncClient) -> str:
    """Starts a whole-ledger check from the checkpoints page's form; returns the path of
    the job's page, where the answer sends the browser."""
    listed = await ig.get("/console/audit/checkpoints")
    started = await ig.post("/console/audit/verify", data={"csrf_token": csrf_of(listed.text)})
    assert started.status_code == 303, started.text
    where = started.headers["location"]
    assert re.fullmatch(r"/console/audit/verify/[A-Za-z0-9_-]{22}", where), where
    return str(where)


async def until_done(ig: httpx.AsyncClient, where: str) -> list[httpx.Response]:
    """Every answer of the job's page at ``where``, polled until the job is done."""
    pages = []
    for _ in range(POLLS):
        page = await ig.get(where)
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == "no-store"
        pages.append(page)
        if "In progress" not in page.text:
            return pages
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("the verify job did not finish")


def summary(page: str) -> dict[str, str]:
    """A page's summary list, key to value, tags stripped and spaces collapsed."""
    pairs = re.findall(
        r'<dt class="govuk-summary-list__key">(.*?)</dt>\s*<dd class="govuk-summary-list__value">'
        r"(.*?)</dd>",
        page,
        re.S,
    )

    def text(html: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", html).split())

    return {text(k): text(v) for k, v in pairs}


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
        # The export itself is in the ledger, naming the officer, about the subject.
        await cw.api.world.sync_ledger()
        # Straight from a typed PNC id too: the same entries and that one, as JSON.
        as_json = await ig.post(
            "/console/audit/export", data={"csrf_token": token, "subject": PNC, "format": "json"}
        )
        assert as_json.status_code == 200, as_json.text
        assert as_json.headers["content-disposition"] == 'attachment; filename="audit-export.json"'
        document = as_json.json()
        assert document["subject_ref"] == carried["subject_ref"]
        assert document["count"] == len(rows) + 1
        [exported] = [e for e in document["entries"] if e["purpose"] == governance.EXPORT_PURPOSE]
        assert (exported["act"], exported["user"], exported["agency"]) == (
            "consultation",
            USERS["ig"][0],
            USERS["ig"][1],
        )
        assert exported["subject_ref"] == carried["subject_ref"]
        assert PNC not in as_json.text
    assert all(PNC not in url for url in urls)


async def test_an_export_that_cannot_be_recorded_is_not_made(cw: ConsoleWorld) -> None:
    # An IG officer of an agency this server does not serve: no log to record it in.
    with IdentityDatabase(identity_path(cw.data_dir)) as database:
        enrolled = UserStore(database).add(
            "ig.elsewhere", agency=EDUCATION, role=Role.IG_OFFICER, password=PASSWORD,
            actor="test", now=datetime.now(UTC),
        )  # fmt: skip
    assert enrolled.totp_secret is not None
    async with cw.browser() as ig:
        await sign_in(ig, "ig.elsewhere", enrolled.totp_secret)
        found = await search(ig, subject=PNC)
        refused = await ig.post(
            "/console/audit/export",
            data={"csrf_token": csrf_of(found.text), "subject": PNC, "format": "csv"},
        )
        assert refused.status_code == 409
        assert "content-disposition" not in refused.headers
        assert "consultation" not in refused.text


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
        assert "3 of 3" in listed.text
        assert "Witnessed" in listed.text
        verified = (await until_done(ig, await start_verify(ig)))[-1]
        assert "The ledger is intact" in verified.text
        reader = cw.api.app.state.backend.ledger
        report = reader.verify().to_json()
        latest = reader.checkpoint_json()
        shown = summary(verified.text)
        assert shown["Entries"] == str(report["entries"])
        assert shown["Verified up to tree size"] == str(latest["tree_size"])
        assert shown["Root hash at that size"] == latest["root_hash"]
        assert shown["Started"].endswith("by ig.smith")
        refusals = await ig.get("/console/audit/refusals")
        assert refusals.status_code == 200, refusals.text
        assert "Records the ledger refused" in refusals.text


async def test_a_verify_job_shows_its_progress_and_runs_one_at_a_time(
    cw: ConsoleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's page while it runs: its progress, and a link to itself to see more (it
    does not reload itself). Held at its first chunk here, so that it is seen running;
    a second start gives it again."""
    release = threading.Event()
    real = LedgerReader.verify

    def held(self: LedgerReader, **kwargs: Any) -> IntegrityReport:
        progress = kwargs["progress"]

        def slow(checked: int, total: int) -> None:
            progress(checked, total)
            release.wait(10)

        return real(self, **(kwargs | {"progress": slow}))

    monkeypatch.setattr(LedgerReader, "verify", held)
    async with cw.signed_in("ig") as ig:
        where = await start_verify(ig)
        try:
            running = await ig.get(where)
            # One job at a time: starting again while it runs gives the running one.
            again = await ig.post(
                "/console/audit/verify", data={"csrf_token": csrf_of(running.text)}
            )
        finally:
            release.set()  # whatever the pages said, no job is left held
        assert running.status_code == 200
        assert "http-equiv" not in running.text
        assert f'href="{where}"' in running.text  # the "Refresh progress" button
        assert "In progress" in running.text
        total = cw.api.app.state.backend.ledger.store.size()
        assert f"Entries checked: 0 of {total} (0%)" in running.text
        assert (
            f'<progress id="verify-progress" class="govuk-!-width-full" max="{total}" value="0">'
            in running.text
        )
        assert again.status_code == 303
        assert again.headers["location"] == where
        assert "The ledger is intact" in (await until_done(ig, where))[-1].text
        # Once it has finished, a start is a new job.
        assert await start_verify(ig) != where


async def test_a_tampered_ledger_is_reported_by_the_verify_job(cw: ConsoleWorld) -> None:
    store = cw.api.app.state.backend.ledger.store
    # Two entries of the first block swapped, their recorded leaves kept.
    rewrite_block(store, 0, lambda e: [e[1], e[0], *e[2:]])
    async with cw.signed_in("ig") as ig:
        where = await start_verify(ig)
        found = (await until_done(ig, where))[-1]
        assert "The ledger is not intact" in found.text
        assert "entry 0 is not the entry appended at that position" in found.text
        assert summary(found.text)["First entry concerned"] == "0"
        assert "Root hash" not in found.text
        # The job's page stays, for any IG officer; an id no job has is a 404.
        assert (await ig.get(where)).status_code == 200
        for unknown in ("A" * 22, "short", "x" * 200):
            assert (await ig.get(f"/console/audit/verify/{unknown}")).status_code == 404


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


class EndlessVerify:
    """A ledger whose verify runs until it is asked to stop (as the real one does
    between chunks), as a large ledger's would."""

    def __init__(self) -> None:
        self.began = threading.Event()

    def verify(self, *, progress: Any = None, stopped: Any = None) -> IntegrityReport:
        progress(0, 1000)
        self.began.set()
        while not stopped():
            time.sleep(0.01)
        raise VerifyIncomplete("verify was stopped before it finished")

    def checkpoint_json(self, size: int | None = None) -> dict[str, Any]:
        raise AssertionError("a stopped verify has no checkpoint to show")


def finished(jobs: VerifyJobs, job_id: str) -> JobState:
    """The job's state once it has finished (within 5 s)."""
    for _ in range(500):
        state = jobs.get(job_id)
        assert state is not None
        if not state.running:
            return state
        time.sleep(0.01)
    raise AssertionError("the job did not stop")


def test_a_verify_job_stops_when_its_server_stops_and_leaves_no_thread() -> None:
    jobs, ledger, serving = VerifyJobs(), EndlessVerify(), threading.Event()
    serving.set()
    job = jobs.start(ledger, by="ig.smith", alive=serving.is_set)
    assert ledger.began.wait(5)
    assert jobs.get(job.job_id) == replace(job, total=1000)  # still running, at 0 of 1000
    serving.clear()  # the app's lifespan ends: the backend is no longer the running one
    stopped = finished(jobs, job.job_id)
    assert stopped.failure == "verify was stopped before it finished"
    assert stopped.report is None
    jobs.stop()  # nothing left to stop: this only waits for the thread's last line
    assert not [t for t in threading.enumerate() if t.name.startswith("verify-")]
    # ``stop`` does the same for a job whose server still runs, and waits for it.
    serving.set()
    again = jobs.start(EndlessVerify(), by="ig.smith", alive=serving.is_set)
    assert again.job_id != job.job_id
    jobs.stop()
    assert finished(jobs, again.job_id).failure == "verify was stopped before it finished"
    assert not [t for t in threading.enumerate() if t.name.startswith("verify-")]


def test_verify_jobs_are_bounded_and_their_ids_unguessable() -> None:
    jobs = VerifyJobs()
    ids = []
    for _ in range(KEEP + 2):
        job = jobs.start(EndlessVerify(), by="ig.smith", alive=lambda: False)
        finished(jobs, job.job_id)
        ids.append(job.job_id)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)  # 128 random bits
    # Only the last ``KEEP`` finished jobs are kept; the page of an older one is a 404.
    assert [jobs.get(i) is not None for i in ids] == [False] * 2 + [True] * KEEP
