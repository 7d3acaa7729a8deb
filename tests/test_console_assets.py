"""The console's committed front-end files are the versions console/package-lock.json pins
(``make console-assets`` builds or copies them): GOV.UK Frontend's stylesheet, built from
the package's Sass by ``console/mappa.scss``, and its JavaScript say its version,
axe-core's file says its own, govuk-frontend-jinja is the release for that GOV.UK
Frontend. The stylesheet carries none of the GOV.UK brand, which is for services on
GOV.UK only: no GDS Transport, no ``@font-face``, no image; and no font file or crown image
is served. Where ``npm ci`` has been run in console/, the stylesheet is built again and
compared byte for byte, and the copied files are compared with the packages'."""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
LOCK = CONSOLE / "package-lock.json"
MODULES = CONSOLE / "node_modules"
SASS = MODULES / ".bin" / "sass"
STATIC = ROOT / "broker" / "console" / "static"
GOVUK = STATIC / "govuk"
CSS = GOVUK / "govuk-frontend.min.css"
AXE = ROOT / "tests" / "browser" / "axe.min.js"
# govuk-frontend-jinja's releases and the GOV.UK Frontend each ports (its README's table).
JINJA_FOR_GOVUK = {"5.14.0": "3.10."}
# console/mappa.scss's $govuk-font-family: what GOV.UK Frontend documents off GOV.UK.
FONT_STACK = "arial,sans-serif"
# The Makefile's sass command, run from console/.
SASS_ARGS = [
    "--load-path=node_modules",
    "--style=compressed",
    "--no-source-map",
    "--quiet-deps",
    "--silence-deprecation=import",
    "mappa.scss",
]


def pinned(package: str) -> str:
    found: str = json.loads(LOCK.read_text())["packages"][f"node_modules/{package}"]["version"]
    return found


def test_govuk_frontend_files_are_the_pinned_version() -> None:
    expected = pinned("govuk-frontend")
    css = CSS.read_text(encoding="utf-8")
    js = (GOVUK / "govuk-frontend.min.js").read_text(encoding="utf-8")
    assert re.findall(r'--govuk-frontend-version:\s*"([^"]+)"', css) == [expected]
    assert re.findall(r'const version="([^"]+)"', js) == [expected]


def test_sass_is_pinned_exactly() -> None:
    wanted = json.loads((CONSOLE / "package.json").read_text())["devDependencies"]["sass"]
    assert wanted == pinned("sass")


def test_govuk_frontend_jinja_ports_the_pinned_version() -> None:
    assert version("govuk-frontend-jinja").startswith(JINJA_FOR_GOVUK[pinned("govuk-frontend")])


def test_axe_core_file_is_the_pinned_version() -> None:
    first = AXE.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"/*! axe v{pinned('axe-core')}"


def test_the_stylesheet_has_no_gov_uk_font_and_loads_nothing() -> None:
    css = CSS.read_text(encoding="utf-8")
    assert "GDS Transport" not in css
    assert "@font-face" not in css
    assert "url(" not in css, re.findall(r"url\([^)]*\)", css)
    families = set(re.findall(r"font-family:([^;}]+)", css))
    assert families == {FONT_STACK, "sans-serif"}  # sans-serif: $govuk-font-family-print


def test_no_font_file_or_gov_uk_brand_image_is_served() -> None:
    served = [f.relative_to(STATIC) for f in STATIC.rglob("*") if f.is_file()]
    fonts = [f for f in served if f.suffix in {".woff", ".woff2", ".ttf", ".otf", ".eot"}]
    assert fonts == []
    brand = [f for f in served if f.name.startswith("govuk-") and f.suffix in {".svg", ".png"}]
    assert brand == []
    assert not (GOVUK / "assets").exists()
    assert (STATIC / "favicon.svg").is_file()  # base.html's icon, the console's own


@pytest.mark.skipif(not SASS.is_file(), reason="console/node_modules absent (npm ci in console/)")
def test_committed_stylesheet_is_built_from_the_installed_package() -> None:
    built = subprocess.run(  # noqa: S603 - the pinned sass, our fixed arguments
        [str(SASS), *SASS_ARGS], cwd=CONSOLE, capture_output=True, check=True, timeout=120
    ).stdout
    assert CSS.read_bytes() == built, f"{CSS} differs: run make console-assets"


@pytest.mark.skipif(not MODULES.is_dir(), reason="console/node_modules absent (npm ci in console/)")
def test_copied_files_match_the_installed_packages() -> None:
    dist = MODULES / "govuk-frontend" / "dist" / "govuk"
    for committed, source in (
        (GOVUK / "govuk-frontend.min.js", dist / "govuk-frontend.min.js"),
        (AXE, MODULES / "axe-core" / "axe.min.js"),
    ):
        assert committed.is_file(), f"{committed} missing: run make console-assets"
        assert committed.read_bytes() == source.read_bytes(), (
            f"{committed} differs: run make console-assets"
        )
    # And nothing stale is left beside them.
    assert {f.name for f in GOVUK.iterdir()} == {
        "NOTICE.md",
        "govuk-frontend.min.css",
        "govuk-frontend.min.js",
    }
