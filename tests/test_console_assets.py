"""The console's committed front-end files are the versions console/package-lock.json pins
(``make console-assets`` copies them): GOV.UK Frontend's CSS and JavaScript say its
version, axe-core's file says its own, govuk-frontend-jinja is the release for that GOV.UK
Frontend, and everything the stylesheet and the manifests point at is there. Where
``npm ci`` has been run in console/, each committed file is checked byte for byte against
the package's."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "console" / "package-lock.json"
MODULES = ROOT / "console" / "node_modules"
GOVUK = ROOT / "broker" / "console" / "static" / "govuk"
AXE = ROOT / "tests" / "browser" / "axe.min.js"
# govuk-frontend-jinja's releases and the GOV.UK Frontend each ports (its README's table).
JINJA_FOR_GOVUK = {"5.14.0": "3.10."}
# What `make console-assets` changes: the stylesheet's /assets/ becomes relative to it.
CSS_REWRITE = (b"url(/assets/", b"url(assets/")


def pinned(package: str) -> str:
    found: str = json.loads(LOCK.read_text())["packages"][f"node_modules/{package}"]["version"]
    return found


def test_govuk_frontend_files_are_the_pinned_version() -> None:
    expected = pinned("govuk-frontend")
    css = (GOVUK / "govuk-frontend.min.css").read_text(encoding="utf-8")
    js = (GOVUK / "govuk-frontend.min.js").read_text(encoding="utf-8")
    assert re.findall(r'--govuk-frontend-version:"([^"]+)"', css) == [expected]
    assert re.findall(r'const version="([^"]+)"', js) == [expected]


def test_govuk_frontend_jinja_ports_the_pinned_version() -> None:
    assert version("govuk-frontend-jinja").startswith(JINJA_FOR_GOVUK[pinned("govuk-frontend")])


def test_axe_core_file_is_the_pinned_version() -> None:
    first = AXE.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"/*! axe v{pinned('axe-core')}"


def test_everything_the_stylesheet_and_manifests_name_is_there() -> None:
    css = (GOVUK / "govuk-frontend.min.css").read_text(encoding="utf-8")
    urls = re.findall(r"url\(([^)]+)\)", css)
    assert urls, "the stylesheet names no fonts or images"
    for url in urls:
        assert not url.startswith(("/", "http:", "https:", "//")), url
        assert (GOVUK / url).is_file(), url
    for manifest in (GOVUK / "assets").rglob("manifest.json"):
        for icon in json.loads(manifest.read_text())["icons"]:
            assert (manifest.parent / icon["src"]).is_file(), (manifest, icon)


def committed_and_source() -> list[tuple[Path, Path]]:
    dist = MODULES / "govuk-frontend" / "dist" / "govuk"
    pairs = [(GOVUK / f.relative_to(dist), f) for f in (dist / "assets").rglob("*") if f.is_file()]
    pairs += [
        (GOVUK / name, dist / name) for name in ("govuk-frontend.min.css", "govuk-frontend.min.js")
    ]
    pairs.append((AXE, MODULES / "axe-core" / "axe.min.js"))
    return pairs


@pytest.mark.skipif(not MODULES.is_dir(), reason="console/node_modules absent (npm ci in console/)")
def test_committed_files_match_the_installed_packages() -> None:
    for committed, source in committed_and_source():
        assert committed.is_file(), f"{committed} missing: run make console-assets"
        want = source.read_bytes()
        if committed.name.endswith(".css"):
            want = want.replace(*CSS_REWRITE)
        assert committed.read_bytes() == want, f"{committed} differs: run make console-assets"
    # And nothing stale is left beside them.
    copied = {c for c, _ in committed_and_source()}
    assert {f for f in (GOVUK / "assets").rglob("*") if f.is_file()} <= copied
