"""Dependencies point one way (ARCHITECTURE.md): checked on the real import statements."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACES = ("broker/cli/", "broker/api/", "broker/console/")
WEB = {"fastapi", "starlette", "uvicorn", "jinja2"}
# The HTTP layer lives in broker/api (ARCHITECTURE.md), the web console's pages in
# broker/console; `mappa serve` only runs them.
WEB_ALLOWED = {
    "broker/api/": WEB,
    "broker/console/": {"fastapi", "starlette", "jinja2"},
    "broker/cli/serve.py": {"uvicorn"},
}
# The CLI is where main() assembles objects (STYLE 4): choosing each agency's adapter
# there is composition, not a dependency of the core. broker/api takes an `adapter_for`
# callable and imports no adapter itself.
ADAPTERS_ALLOWED = ("broker/cli/",)
# The ledger's proof verifier is standalone by design (an officer copies the one file),
# so it cannot go through broker/crypto; it uses only Ed25519 verification.
STANDALONE_VERIFIERS = ("broker/ledger/verify_proofs.py",)


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_schemas_import_nothing_of_ours() -> None:
    for path in modules("schemas"):
        ours = {n for n in imports(path) if n.split(".")[0] in {"broker", "agency_adapters"}}
        assert not ours, f"{path.relative_to(ROOT)} imports {ours}"


def test_core_never_imports_adapters_or_web_frameworks() -> None:
    for path in modules("broker"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(FACES):
            continue
        bad = {n for n in imports(path) if n.split(".")[0] in {"agency_adapters", *WEB}}
        assert not bad, f"{rel} imports {bad}"


def test_web_frameworks_only_in_the_http_layer() -> None:
    for package in ("schemas", "broker", "agency_adapters"):
        for path in modules(package):
            rel = path.relative_to(ROOT).as_posix()
            allowed = next((a for p, a in WEB_ALLOWED.items() if rel.startswith(p)), set())
            bad = {n for n in imports(path) if n.split(".")[0] in WEB - allowed}
            assert not bad, f"{rel} imports {bad}"


def test_adapters_are_chosen_only_where_the_process_is_assembled() -> None:
    for path in modules("broker"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(ADAPTERS_ALLOWED):
            continue
        bad = {n for n in imports(path) if n.split(".")[0] == "agency_adapters"}
        assert not bad, f"{rel} imports {bad}"


def test_only_the_crypto_corner_touches_hazmat() -> None:
    for package in ("schemas", "broker", "agency_adapters"):
        for path in modules(package):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("broker/crypto/") or rel in STANDALONE_VERIFIERS:
                continue
            hazmat = {n for n in imports(path) if n.startswith("cryptography")}
            assert not hazmat, f"{rel} imports {hazmat}"


# What stays at broker/'s root: what every room uses (errors, settings, areas, the
# calendar) and the composition of the rooms (deployment). Anything else has a room.
ROOT_MODULES = {
    "__init__.py",
    "areas.py",
    "calendar.py",
    "deployment.py",
    "errors.py",
    "settings.py",
}
# Rooms that a room may not enter: Kafka plumbing knows nothing of what it carries, and
# a gateway nothing of the transfer workflow or the faces built on it.
FORBIDDEN = {
    "broker/kafka/": ("broker.gateway", "broker.trust", "broker.ledger", "broker.transfer"),
    "broker/gateway/": ("broker.transfer", "broker.api", "broker.cli"),
    "broker/trust/": ("broker.gateway", "broker.transfer", "broker.ledger", "broker.api"),
    # Files are the ground floor: every room reads and writes them.
    "broker/files/": (
        "broker.kafka",
        "broker.trust",
        "broker.agreements",
        "broker.gateway",
        "broker.transfer",
        "broker.ledger",
        "broker.api",
        "broker.cli",
    ),
}


def enters(name: str, room: str) -> bool:
    return name == room or name.startswith(f"{room}.")


def test_only_the_shared_modules_stay_at_the_root() -> None:
    loose = {p.name for p in (ROOT / "broker").glob("*.py")} - ROOT_MODULES
    assert not loose, f"broker/ root holds {sorted(loose)}: put each in the package of its concern"


def test_rooms_do_not_enter_the_rooms_above_them() -> None:
    for prefix, rooms in FORBIDDEN.items():
        for path in modules(prefix.rstrip("/")):
            bad = {n for n in imports(path) for room in rooms if enters(n, room)}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_rule_checker_sees_real_imports() -> None:
    """Guards the guards: the checker finds imports that are known to exist."""
    assert "cryptography.hazmat.primitives.ciphers.aead" in imports(
        ROOT / "broker/crypto/envelope.py"
    )
    assert "broker.gateway" in imports(ROOT / "agency_adapters/base.py")
    assert "fastapi" in imports(ROOT / "broker/api/app.py")
    assert "jinja2" in imports(ROOT / "broker/console/templating.py")
    assert "uvicorn" in imports(ROOT / "broker/cli/serve.py")
    # The room rules look where they should: these arrows exist, one room down.
    assert "broker.kafka.topics" in imports(ROOT / "broker/kafka/transport.py")
    assert "broker.gateway.cases" in imports(ROOT / "broker/gateway/publish.py")
    assert "broker.trust.directory" in imports(ROOT / "broker/trust/provision.py")
    assert enters("broker.transfer.desk", "broker.transfer")
    assert not enters("broker.transfers", "broker.transfer")


def test_standalone_verifier_imports_nothing_of_ours() -> None:
    for rel in STANDALONE_VERIFIERS:
        ours = {n for n in imports(ROOT / rel) if n.split(".")[0] in {"broker", "schemas"}}
        assert not ours, f"{rel} imports {ours}"
