"""``broker/console/static/proof.js`` in Chromium: an audit-ledger entry's inclusion proof
and the signed checkpoint it is proved against, checked in the browser with Web Crypto,
answering as the standalone Python verifier (``broker.ledger.verify_proofs``) does.

The module is loaded from the served app (``/console/static/proof.js``) into one of its
pages, under its Content-Security-Policy, with a dynamic ``import()``; the inputs and the
Python verifier's answers come from ``proof_vectors.py``. The last test serves a page in
the markup contract (``docs/console.md``, "Checking a proof in the browser") at the app's
own origin, through Playwright's routing, and reads what the automatic check shows."""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Console
from tests.browser.proof_vectors import (
    VECTORS,
    LedgerSample,
    NoteKey,
    base64_cases,
    flip,
    inclusion_checks,
    ledger_sample,
    must_refuse,
    signed_notes,
    tampered_checkpoints,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PROOF_JS = "/console/static/proof.js"
PASSED = "Proof checked in your browser"
FAILED = "Proof failed: "

# Helpers every harness below starts with (it is the body of each async function).
PRELUDE = """
    const m = await import(url);
    const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const refusal = async (check) => {
        try { await check(); return null; } catch (e) { return `${e.name}: ${e.message}`; }
    };
"""

INCLUSION = (
    "async ([url, checks, vectors, texts]) => {"
    + PRELUDE
    + """
    const inclusion = [];
    for (const c of checks) {
        inclusion.push(await refusal(() => m.verifyInclusion({
            leafIndex: c.index, treeSize: c.size, leafHash: hex(c.leaf),
            proof: c.proof.map(hex), rootHash: hex(c.root),
        })));
    }
    const leaves = [];
    for (const x of vectors.leaf_inputs) leaves.push(toHex(await m.leafHash(hex(x))));
    const [a, b] = vectors.leaf_hashes;
    const node = toHex(await m.nodeHash(hex(a), hex(b)));
    const decoded = texts.map((c) => {
        try { return toHex(m.decodeBase64(c.text)); }
        catch (e) { return e.name === "ProofError" ? null : `${e.name}: ${e.message}`; }
    });
    return {inclusion, leaves, node, decoded};
}"""
)

LEDGER = (
    "async ([url, proofs, checkpoints, vkey, publicKey, cases, altered]) => {"
    + PRELUDE
    + """
    const shown = (r) => ({seq: String(r.seq), treeSize: String(r.treeSize), root: r.root,
                           leafHash: r.leafHash, origin: r.origin, ok: r.ok});
    const entries = [];
    for (const p of proofs) {
        const note = checkpoints[String(p.tree_size)].note;
        const byApi = shown(await m.checkProofAnswer(p, {checkpoint: note, key: vkey}));
        const byHash = shown(await m.checkEntry({
            seq: p.seq, leafHash: p.leaf_hash, hashes: p.hashes, checkpoint: note,
            key: {name: checkpoints[String(p.tree_size)].origin,
                  publicKey: m.decodeBase64(publicKey)},
        }));
        const browserLeaf = toHex(await m.leafHash(new TextEncoder().encode(p.entry)));
        entries.push({byApi, byHash, browserLeaf});
    }
    const verified = [];
    for (const c of cases) {
        try {
            const note = c.surrogate ? c.note.replace("\\ufffd", "\\ud800") : c.note;
            const cp = await m.verifyCheckpoint(note, c.key, {origin: c.origin ?? undefined});
            verified.push({checkpoint: {origin: cp.origin, size: String(cp.size),
                                        root: toHex(cp.root), extensions: cp.extensions}});
        } catch (e) {
            verified.push({refusal: `${e.name}: ${e.message}`});
        }
    }
    const latest = checkpoints[String(Math.max(...Object.keys(checkpoints).map(Number)))];
    const parsed = m.parseCheckpoint(latest.note);
    const refused = {};
    for (const [label, a] of Object.entries(altered)) {
        refused[label] = await refusal(() => m.checkEntry({...a, key: a.key ?? vkey}));
    }
    return {entries, verified, refused, parsed: {
        origin: parsed.origin, size: String(parsed.size), root: m.encodeBase64(parsed.root),
        extensions: parsed.extensions, signers: parsed.signatures.map((s) => s.name),
    }};
}"""
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LedgerSample:
    return ledger_sample(tmp_path_factory.mktemp("proof-check") / "data")


async def test_inclusion_proofs_hashes_and_base64_as_python_checks_them(console: Console) -> None:
    checks = inclusion_checks()
    texts = base64_cases()
    async with console.visit() as visit:
        page = visit.page
        await page.goto(console.url + "/console/")
        got = await page.evaluate(INCLUSION, [console.url + PROOF_JS, checks, VECTORS, texts])
        assert visit.problems == []

    assert got["leaves"] == VECTORS["leaf_hashes"]
    assert got["node"] == VECTORS["roots"][2]
    # Each check (the RFC 6962 vectors among them) passes or is refused as in Python...
    differ = [
        (c["label"], c["refused"], browser)
        for c, browser in zip(checks, got["inclusion"], strict=True)
        if c["refused"] != (browser is not None)
    ]
    assert differ == []
    assert all(r.startswith("ProofError: ") for r in got["inclusion"] if r is not None)
    # ... so every proof as given verifies, and every flipped bit (proof, root, leaf), wrong
    # index, added, dropped or short hash is refused. A wrong tree size is refused where
    # its path differs; where it has the same shape it verifies, in Python too.
    assert all(
        (r is None) == (c["label"].endswith(": as given"))
        for c, r in zip(checks, got["inclusion"], strict=True)
        if must_refuse(c["label"]) or c["label"].endswith(": as given")
    )
    wrong_sizes = [
        r for c, r in zip(checks, got["inclusion"], strict=True) if ": size " in c["label"]
    ]
    assert sum(r is not None for r in wrong_sizes) > len(wrong_sizes) // 2
    # Base64 is read as Python's strict decoder reads it.
    assert got["decoded"] == [c["bytes"] for c in texts]


async def test_real_ledger_entries_verify_and_tampered_checkpoints_do_not(
    console: Console, sample: LedgerSample
) -> None:
    tampered = tampered_checkpoints(sample)
    notes = signed_notes()
    cases = tampered + notes
    latest = sample.latest
    entry = _fields(sample.proofs[5])
    changed_text = entry["entry"].replace("0", "1", 1)
    flipped_root = latest["note"].replace(latest["root_hash"], _flipped(latest["root_hash"]))
    altered: dict[str, dict[str, Any]] = {
        label: entry | change
        for label, change in {
            "entry text changed": {"entry": changed_text},
            "entry changed, no leaf hash": {"entry": changed_text, "leafHash": None},
            "leaf hash changed, no entry": {"entry": None, "leafHash": _flipped(entry["leafHash"])},
            "a proof hash flipped": {
                "hashes": [_flipped(entry["hashes"][0]), *entry["hashes"][1:]]
            },
            "another entry's number": {"seq": entry["seq"] + 1},
            "a proof for another tree size": {"treeSize": 12},
            "checked against an older checkpoint": {
                "treeSize": None,
                "checkpoint": sample.checkpoints[7]["note"],
            },
            "another key": {"key": NoteKey(sample.origin).verifier_key},
            "another log": {"origin": "mappa-broker/elsewhere/audit-ledger"},
            "root changed in the note": {"checkpoint": flipped_root},
            "no entry and no leaf hash": {"entry": None, "leafHash": None},
        }.items()
    }
    async with console.visit() as visit:
        page = visit.page
        await page.goto(console.url + "/console/")
        got = await page.evaluate(
            LEDGER,
            [
                console.url + PROOF_JS,
                sample.proofs,
                {str(size): cp for size, cp in sample.checkpoints.items()},
                sample.verifier_key,
                base64.b64encode(sample.public_key).decode(),
                cases,
                altered,
            ],
        )
        assert visit.problems == []

    # Every entry verifies against its checkpoint, by its text and by its leaf hash, with
    # the verifier key or the raw public key; the browser's leaf hash is Python's.
    for proof, seen in zip(sample.proofs, got["entries"], strict=True):
        checkpoint = sample.checkpoints[proof["tree_size"]]
        expected = {
            "ok": True,
            "seq": str(proof["seq"]),
            "treeSize": str(proof["tree_size"]),
            "root": checkpoint["root_hash"],
            "origin": sample.origin,
            "leafHash": proof["leaf_hash"],
        }
        assert seen["byApi"] == expected
        assert seen["byHash"] == expected
        assert seen["browserLeaf"] == sample.leaf_hashes[proof["seq"]]
        assert base64.b64decode(proof["leaf_hash"]).hex() == sample.leaf_hashes[proof["seq"]]

    # The checkpoint as signed verifies; each tampering is refused, in Python and here.
    assert [c["label"] for c in tampered if c["refusal"] is None] == ["as signed"]
    for case, seen in zip(cases, got["verified"], strict=True):
        if case["refusal"] is None:
            assert seen == {"checkpoint": case["checkpoint"]}, case["label"]
        else:
            assert seen.get("refusal", "").startswith("ProofError: "), (case["label"], seen)
    assert got["verified"][0]["checkpoint"]["size"] == str(latest["tree_size"])
    assert got["parsed"] == {
        "origin": sample.origin,
        "size": str(latest["tree_size"]),
        "root": latest["root_hash"],
        "extensions": [f"time {latest['time']}", latest["note"].split("\n")[4]],
        "signers": [sample.origin],
    }
    # Each altered entry, proof or checkpoint given to checkEntry is refused, saying why.
    refused = got["refused"]
    assert all(r is not None and r.startswith("ProofError: ") for r in refused.values()), refused
    assert "does not hash to the leaf hash" in refused["entry text changed"]
    assert "does not lead to the tree head" in refused["a proof hash flipped"]
    assert "the checkpoint for 13" in refused["a proof for another tree size"]
    assert "no signature by" in refused["another key"]
    assert "is for log" in refused["another log"]
    assert "signature by" in refused["root changed in the note"]


def _flipped(text: str) -> str:
    """Base64 ``text`` with one bit of its bytes flipped."""
    return base64.b64encode(flip(base64.b64decode(text))).decode()


def _fields(proof: dict[str, Any]) -> dict[str, Any]:
    """``checkEntry``'s arguments for a proof as the API gives it."""
    return {
        "seq": proof["seq"],
        "entry": proof["entry"],
        "leafHash": proof["leaf_hash"],
        "hashes": proof["hashes"],
        "treeSize": proof["tree_size"],
        "checkpoint": proof["checkpoint"],
    }


def _page(sample: LedgerSample) -> str:
    """A page in the markup contract, under the app's own layout's rules (no inline
    script): a timeline of every entry and a few bad ones, and containers that fail."""
    stranger = NoteKey(sample.origin)

    def tag(url: str) -> str:
        return (
            '<strong class="govuk-tag govuk-tag--grey" '
            f'data-proof-url="{html.escape(url)}">Not checked (needs JavaScript)</strong>'
        )

    def container(name: str, checkpoint: str, key: str | None, urls: list[str]) -> str:
        key_attribute = "" if key is None else f' data-ledger-key="{html.escape(key)}"'
        tags = "".join(f"<li>{tag(url)}</li>" for url in urls)
        return (
            f'<div id="{name}" data-checkpoint-url="{html.escape(checkpoint)}"{key_attribute}>'
            f"<ul>{tags}</ul></div>"
        )

    latest = [f"proof/{i}.json" for i, p in enumerate(sample.proofs) if p["tree_size"] == 13]
    bad = ["proof/bad-hash.json", "proof/bad-entry.json", "proof/0.json?stale", "missing.json"]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Proofs</title>'
        '<link rel="stylesheet" href="/console/static/govuk/govuk-frontend.min.css">'
        f'<script type="module" src="{PROOF_JS}"></script></head><body><main>'
        + container(
            "timeline",
            "checkpoint/13.json",
            sample.verifier_key,
            [*latest, *bad, "http://example.invalid/proof.json"],
        )
        + container("older", "checkpoint/4.json", sample.verifier_key, ["proof/13.json"])
        + container("wrong-key", "checkpoint/13.json", stranger.verifier_key, ["proof/0.json"])
        + container("no-key", "checkpoint/13.json", None, ["proof/0.json"])
        + tag("proof/0.json")
        + "</main></body></html>"
    )


async def test_a_page_marks_each_entry_checked_or_failed(
    console: Console, sample: LedgerSample
) -> None:
    base = console.url + "/console/proof-check/"
    good = sample.proofs[2]
    answers: dict[str, Any] = {f"proof/{i}.json": p for i, p in enumerate(sample.proofs)}
    answers |= {f"checkpoint/{size}.json": cp for size, cp in sample.checkpoints.items()}
    answers["proof/bad-hash.json"] = good | {"hashes": list(reversed(good["hashes"]))}
    answers["proof/bad-entry.json"] = good | {"entry": good["entry"].replace("0", "1", 1)}
    answers["proof/0.json?stale"] = sample.proofs[13]  # of the checkpoint of 4
    assert sample.proofs[13]["tree_size"] == 4

    async with console.visit() as visit:
        page = visit.page
        policy = (await page.request.get(console.url + "/console/")).headers[
            "content-security-policy"
        ]

        async def serve(route: Any) -> None:
            path = route.request.url.removeprefix(base)
            if path == "page":
                await route.fulfill(
                    status=200,
                    content_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": policy},
                    body=_page(sample),
                )
            elif path in answers:
                await route.fulfill(status=200, json=answers[path])
            else:
                await route.fulfill(status=404, json={"code": "api.not-found"})

        await page.route(base + "**", serve)
        visit.expected_failures.add(base + "missing.json")
        await page.goto(base + "page")
        outcomes = await page.evaluate(
            "url => import(url).then(m => m.pageChecked)"
            ".then(os => os.map(o => [o.url, o.ok, o.reason ?? null]))",
            console.url + PROOF_JS,
        )
        marks = await page.eval_on_selector_all(
            "[data-proof-url]",
            "els => els.map(e => [e.closest('[id]')?.id ?? null, e.getAttribute('data-proof-url'),"
            " e.className, e.textContent, e.dataset.proofState])",
        )
        assert visit.problems == []
        hosts = {urlsplit(url).hostname for url in visit.requests}
        assert hosts == {"127.0.0.1"}, visit.requests  # the other site was never asked

    assert [o[0] for o in outcomes] == [m[1] for m in marks]
    shown = {(where, url): (classes, text, state) for where, url, classes, text, state in marks}
    green = ("govuk-tag govuk-tag--green", PASSED, "checked")
    for i, proof in enumerate(sample.proofs):
        if proof["tree_size"] == 13:
            assert shown["timeline", f"proof/{i}.json"] == green
    assert shown["older", "proof/13.json"] == green

    def failed(where: str | None, url: str) -> str:
        classes, text, state = shown[where, url]
        assert classes == "govuk-tag govuk-tag--red"
        assert state == "failed"
        assert text.startswith(FAILED)
        return str(text).removeprefix(FAILED)

    assert failed("timeline", "proof/bad-hash.json") == (
        "inclusion proof for leaf 2 does not lead to the tree head"
    )
    assert failed("timeline", "proof/bad-entry.json") == (
        "entry 2 does not hash to the leaf hash its proof is for"
    )
    assert failed("timeline", "proof/0.json?stale") == (
        "the proof is for a tree of 4 entries, the checkpoint for 13"
    )
    assert failed("timeline", "missing.json") == "the proof could not be fetched (HTTP 404)"
    assert failed("timeline", "http://example.invalid/proof.json") == (
        "the proof is not on this site"
    )
    assert failed("wrong-key", "proof/0.json") == (
        f"checkpoint carries no signature by {sample.origin}"
    )
    assert failed("no-key", "proof/0.json") == "no ledger key on the page"
    assert failed(None, "proof/0.json") == "no checkpoint on the page"
