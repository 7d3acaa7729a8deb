"""The benchmark runs and reports every figure. It asserts no time: speed is measured by
`mappa bench`, never by a test."""

from __future__ import annotations

from broker.cli.bench import SECTIONS, render, run_sections


async def test_every_section_reports_its_figures(kafka_bootstrap: str) -> None:
    figures = await run_sections(list(SECTIONS), kafka_bootstrap, scale=0.01)
    names = {(f.section, f.name) for f in figures}
    for suite in ("classic", "pq-hybrid"):
        for what in ("sign (all suite signatures)", "seal", "parse + verify", "open one view"):
            assert ("crypto", f"{suite}: {what}") in names
        for what in ("publish, one caller", "publish, 32 callers", "receive and deliver"):
            assert ("transport", f"mappa {suite}: {what}") in names
    assert ("transport", "plain aiokafka: produce") in names
    assert ("transport", "plain aiokafka: consume") in names
    for what in (
        "append (SQLite, batched, + checkpoint)",
        "inclusion proof (hashes)",
        "query by subject (page of 100)",
        "verify (whole log, all checks)",
    ):
        assert ("ledger", what) in names
    assert all(f.value > 0 for f in figures)
    table = render(figures)
    assert table.count("\n") == len(figures)
