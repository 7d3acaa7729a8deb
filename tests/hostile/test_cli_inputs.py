"""`mappa` on hostile and careless files and arguments (issue 16, finding 11).

Every command that reads a file is run, in-process through ``main``, on each kind of
bad file: missing, a folder, not UTF-8, UTF-16, a byte-order mark, a NUL byte, a control
character, a 5,000-digit integer, an integer past 2^53 - 1, nesting 5,000 deep, an
impossible date, a duplicate key, an alias bomb. Each must end in one line that names
the problem (on stderr, as ``mappa: <code>: ...``; for `mappa isa check`, its report),
exit 1 or 2, with no traceback and without echoing what the file held. So must a wrong
or unusable passphrase, a damaged key file, a bad argument, and an error nobody
foresaw. `mappa audit verify` works on a data directory it may not write to.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.cli import directory as directory_cli
from broker.cli.main import main
from broker.files.strict import MAX_FILE_BYTES
from broker.trust.provision import DataPaths
from tests.support import PNC

AGENCIES = Path(__file__).resolve().parents[2] / "deploy" / "agencies.example.yaml"
PASS = "an operator's passphrase"  # noqa: S105 - a test deployment's
POLICE = "police.staffordshire"
AREA = "staffordshire"
# What a hostile file carries that must never come back in a message.
HUGE = "9" * 5000
SECRET = "SECRETVALUE"  # noqa: S105 - a marker, not a password


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def assert_one_line(ran: Ran, *, code: int | tuple[int, ...] = 1, never: str = SECRET) -> str:
    """One line on stderr, ``mappa: <code>: <message>``, nothing echoed; returns it."""
    codes = code if isinstance(code, tuple) else (code,)
    assert ran.code in codes, (ran.code, ran.err[-2000:])
    assert "Traceback" not in ran.err + ran.out
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err[-3000:]
    assert lines[0].startswith("mappa: "), lines[0]
    assert never not in ran.err + ran.out
    assert HUGE[:40] not in ran.err + ran.out
    assert "\x00" not in ran.err + ran.out
    return lines[0]


# -- a deployment, and an agreement for it ---------------------------------------------------


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A deployment (`mappa keys init`) and the text of a valid agreement for its area."""
    root = tmp_path_factory.mktemp("cli-inputs")
    data = root / "deployment"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAPPA_KEY_PASSPHRASE", PASS)
        assert main(["keys", "--data-dir", str(data), "init", "--agencies", str(AGENCIES)]) == 0
        out = root / "agreement.yaml"
        assert (
            main(["isa", "--data-dir", str(data), "init", "--area", AREA, "--out", str(out)]) == 0
        )
    return data, out.read_text()


@pytest.fixture
def deployment(
    provisioned: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of the deployment of its own, since some commands would change it."""
    for name in [k for k in os.environ if k.startswith("MAPPA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    data = tmp_path / "deployment"
    shutil.copytree(provisioned[0], data)
    return data


@pytest.fixture
def agreement_text(provisioned: tuple[Path, str]) -> str:
    return provisioned[1]


@dataclass(frozen=True)
class Case:
    """A test's own deployment, the good agreement's text, and a folder for its files."""

    data: Path
    text: str
    tmp: Path


@pytest.fixture
def case(deployment: Path, agreement_text: str, tmp_path: Path) -> Case:
    return Case(deployment, agreement_text, tmp_path)


def test_the_agreement_and_the_deployment_are_good(
    deployment: Path, agreement_text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline the hostile files are made from passes, so each refusal below is the
    hostile part's doing."""
    good = tmp_path / "good.yaml"
    good.write_text(agreement_text)
    ran = run(capsys, "isa", "--data-dir", str(deployment), "check", str(good))
    assert ran.code == 0, ran.out
    ran = run(capsys, "deploy", "acls", "--data-dir", str(deployment), "--agreement", str(good))
    assert ran.code == 0, ran.err


# -- hostile files ------------------------------------------------------------------------------


def _with_version(text: str, value: str) -> str:
    assert "\nversion: 1\n" in text
    return text.replace("\nversion: 1\n", f"\nversion: {value}\n", 1)


def _deep(text: str) -> str:
    return text + "extra: " + "[" * 5000 + "]" * 5000 + "\n"


def _deep_block(text: str) -> str:
    lines = [f"{'  ' * i}k{i}:" for i in range(200)]
    return text + "nested:\n" + "\n".join("  " + line for line in lines) + " 1\n"


def _alias_bomb(text: str) -> str:
    bomb = ["a0: &a0 [" + ",".join(["x" * 64] * 64) + "]"]
    for level in range(1, 7):
        bomb.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 16) + "]")
    return text + "\n".join(bomb) + "\n"


# name -> (what the file holds, given the good agreement's text; what a message must not echo)
HOSTILE: dict[str, Callable[[str], bytes]] = {
    "not-utf8": lambda t: t.replace("purpose:", f"purpose: \xff{SECRET}\n#", 1).encode("latin-1"),
    "utf16": lambda t: t.encode("utf-16"),
    "utf16-no-bom": lambda t: t.encode("utf-16-le"),
    "utf8-bom": lambda t: b"\xef\xbb\xbf" + t.encode(),
    "nul": lambda t: t.replace("purpose:", f"purpose: {SECRET}\x00{SECRET}\n#", 1).encode(),
    "control": lambda t: t.replace("purpose:", f"purpose: {SECRET}\x01\n#", 1).encode(),
    "huge-integer": lambda t: _with_version(t, HUGE).encode(),
    "unsafe-integer": lambda t: _with_version(t, str(2**53 + 1)).encode(),
    "deep-flow": lambda t: _deep(t).encode(),
    "deep-block": lambda t: _deep_block(t).encode(),
    "impossible-date": lambda t: t.replace(
        "valid_until: '2028-12-31'", "valid_until: 2028-02-30", 1
    ).encode(),
    "duplicate-key": lambda t: (t + "version: 424242\n").encode(),
    "alias-bomb": lambda t: _alias_bomb(t).encode(),
    "infinite": lambda t: _with_version(t, ".inf").encode(),
}
NEVER: dict[str, str] = {"duplicate-key": "424242", "unsafe-integer": str(2**53 + 1)}


def hostile_file(tmp_path: Path, kind: str, text: str) -> Path:
    if kind == "missing":
        return tmp_path / "no-such-file.yaml"
    if kind == "folder":
        folder = tmp_path / "a-folder.yaml"
        folder.mkdir()
        return folder
    if kind == "pipe":
        # Read naively, a named pipe with no writer blocks the command for ever.
        pipe = tmp_path / "a-pipe.yaml"
        os.mkfifo(pipe)
        return pipe
    path = tmp_path / f"{kind}.yaml"
    data = HOSTILE[kind](text)
    assert data != text.encode(), f"{kind} changed nothing"
    path.write_bytes(data)
    return path


KINDS = ["missing", "folder", "pipe", *HOSTILE]


def test_every_hostile_kind_is_bad(agreement_text: str) -> None:
    """Each kind really carries what it says (a test of the corpus itself)."""
    for kind, make in HOSTILE.items():
        data = make(agreement_text)
        assert data != agreement_text.encode(), kind
    assert b"\x00" in HOSTILE["nul"](agreement_text)
    assert HUGE.encode() in HOSTILE["huge-integer"](agreement_text)
    assert b"2028-02-30" in HOSTILE["impossible-date"](agreement_text)


# Commands that read an agreement file, as (argv before the file, argv after it).
AGREEMENT_COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "isa sign": lambda d, f: ["isa", "--data-dir", str(d), "sign", str(f)],
    "isa show": lambda d, f: ["isa", "--data-dir", str(d), "show", str(f)],
    "deploy acls": lambda d, f: ["deploy", "acls", "--data-dir", str(d), "--agreement", str(f)],
    "deadletter retry": lambda d, f: [
        *("deadletter", "--data-dir", str(d), "retry", "--as", POLICE, "--user", "u"),
        *("--all", "--agreement", str(f)),
    ],
    "serve": lambda d, f: ["serve", "--data-dir", str(d), "--port", "0", "--agreement", str(f)],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(AGREEMENT_COMMANDS))
def test_agreement_readers_refuse_in_one_line(
    command: str, kind: str, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = case.data
    path = hostile_file(case.tmp, kind, case.text)
    before = sorted(p.name for p in DataPaths(deployment).agreements.glob("*"))
    ran = run(capsys, *AGREEMENT_COMMANDS[command](deployment, path))
    assert_one_line(ran, never=NEVER.get(kind, SECRET))
    # Refused before anything was put in force.
    assert sorted(p.name for p in DataPaths(deployment).agreements.glob("*")) == before


@pytest.mark.parametrize("kind", KINDS)
def test_isa_check_reports_a_hostile_file_in_one_line(
    kind: str,
    deployment: Path,
    agreement_text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`mappa isa check` reports a file it cannot read on stderr, and a document that is
    not acceptable YAML as one finding (with its line, where there is one) in its report."""
    path = hostile_file(tmp_path, kind, agreement_text)
    ran = run(capsys, "isa", "--data-dir", str(deployment), "check", str(path))
    never = NEVER.get(kind, SECRET)
    assert ran.code == 1
    assert "Traceback" not in ran.out + ran.err
    assert never not in ran.out + ran.err
    assert HUGE[:40] not in ran.out + ran.err
    if ran.err:
        assert_one_line(ran, never=never)
        assert ran.out == ""
    else:
        finding, summary = ran.out.splitlines()[-2:]
        assert finding.startswith(str(path)), ran.out
        assert summary == f"{path}: invalid (1 errors, 0 warnings)", ran.out


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("utf16", "byte-order mark"),
        ("utf8-bom", "byte-order mark"),
        ("nul", "NUL"),
        ("not-utf8", "not UTF-8"),
        ("huge-integer", "whole number"),
        ("unsafe-integer", "whole number"),
        ("deep-flow", "nested deeper"),
        ("deep-block", "nested deeper"),
        ("impossible-date", "not a real date"),
        ("duplicate-key", "duplicate key 'version'"),
        ("missing", "No such file"),
        ("infinite", "finite"),
    ],
)
def test_the_line_says_what_is_wrong(
    kind: str, expected: str, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile_file(case.tmp, kind, case.text)
    argv = AGREEMENT_COMMANDS["deploy acls"](case.data, path)
    line = assert_one_line(run(capsys, *argv), never=NEVER.get(kind, SECRET))
    assert expected in line, line
    assert str(path) in line


def test_duplicate_key_is_located(
    deployment: Path, agreement_text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile_file(tmp_path, "duplicate-key", agreement_text)
    ran = run(capsys, "isa", "--data-dir", str(deployment), "check", str(path))
    last_line = len(agreement_text.splitlines()) + 1
    assert f"{path}:{last_line}: (document): duplicate key 'version'" in ran.out


# -- the agencies file of `mappa keys init` ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_keys_init_refuses_a_hostile_agencies_file(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    # The hostile kinds are made by editing these fields, which `keys init` ignores.
    text = AGENCIES.read_text() + "purpose: sharing\nversion: 1\nvalid_until: '2028-12-31'\n"
    path = hostile_file(tmp_path, kind, text)
    data = tmp_path / "new-deployment"
    ran = run(capsys, "keys", "--data-dir", str(data), "init", "--agencies", str(path))
    assert_one_line(ran, never=NEVER.get(kind, SECRET))
    assert not data.exists()


# -- directory documents ---------------------------------------------------------------------


def _json_kinds(doc: str) -> dict[str, bytes]:
    data = json.loads(doc)
    return {
        "utf16": doc.encode("utf-16"),
        "utf8-bom": b"\xef\xbb\xbf" + doc.encode(),
        "nul": doc[:-1].encode() + b', "x": "' + SECRET.encode() + b'\x00"}',
        "not-utf8": doc[:-1].encode() + b', "x": "\xff' + SECRET.encode() + b'"}',
        "huge-integer": doc[:-1].encode() + b', "x": ' + HUGE.encode() + b"}",
        "deep": b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "duplicate-key": json.dumps(data)[:-1].encode() + b', "signature": {"x": 424242}}',
        "not-json": b"{" + SECRET.encode(),
    }


@pytest.mark.parametrize(
    "kind",
    [
        *("missing", "folder", "utf16", "utf8-bom", "nul", "not-utf8", "huge-integer"),
        *("deep", "duplicate-key", "not-json"),
    ],
)
@pytest.mark.parametrize("command", ["verify", "sign"])
def test_directory_documents_refused_in_one_line(
    command: str, kind: str, deployment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = DataPaths(deployment)
    before = paths.directory.read_bytes()
    if kind == "missing":
        path = tmp_path / "missing.json"
    elif kind == "folder":
        path = tmp_path / "folder.json"
        path.mkdir()
    else:
        path = tmp_path / f"{kind}.json"
        path.write_bytes(_json_kinds(before.decode())[kind])
    ran = run(capsys, "directory", "--data-dir", str(deployment), command, str(path))
    line = assert_one_line(ran, never=NEVER.get(kind, SECRET))
    if kind == "duplicate-key":
        assert "duplicate JSON key 'signature'" in line, line
    assert paths.directory.read_bytes() == before


def test_signed_agreement_json_refused_in_one_line(
    deployment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signed agreement (JSON) with a duplicate key: one line, not signed or shown."""
    path = tmp_path / "signed.json"
    path.write_text('{"document": {"id": "a"}, "signature": {}, "signature": {"x": 424242}}')
    for argv in (["show", str(path)], ["check", str(path)]):
        ran = run(capsys, "isa", "--data-dir", str(deployment), *argv)
        assert ran.code == 1
        assert "Traceback" not in ran.out + ran.err
        assert "424242" not in ran.out + ran.err
        assert "duplicate" in ran.out + ran.err


# -- the deployment's trust files: its public keys and its directory ---------------------------

# Each file, and the command that loads it (what `mappa audit verify` checks a ledger
# against; what `mappa directory verify` checks the directory against, and the directory).
TRUST_FILES: dict[str, list[str]] = {
    "governance.pub": ["directory", "verify"],
    "ledger.pub": ["audit", "verify"],
    "directory.json": ["directory", "verify"],
}


def _damaged_trust_file(good: bytes, damage: str, path: Path) -> None:
    """Write ``good`` into ``path`` with one kind of damage; each carries the marker."""
    if damage == "huge":
        path.write_bytes(good)
        # Sparse: past every bound the reader sets, without writing 16 MiB.
        with path.open("r+b") as handle:
            handle.truncate(MAX_FILE_BYTES + 1)
        return
    marker = SECRET.encode()
    opened = good.rstrip()[:-1]  # the object without its closing brace
    path.write_bytes(
        {
            "not-a-document": b'["' + marker + b'"]',
            "nul": opened + b', "x": "\x00' + marker + b'"}',
            "not-utf8": opened + b', "x": "\xff' + marker + b'"}',
        }[damage]
    )


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("not-a-document", ""),
        ("huge", "larger than"),
        ("nul", "NUL byte"),
        ("not-utf8", "not UTF-8"),
    ],
)
@pytest.mark.parametrize("name", sorted(TRUST_FILES))
def test_a_damaged_trust_file_is_one_line(
    name: str, damage: str, expected: str, deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read through the strict reader wherever they are loaded: a file that is huge, not
    UTF-8, holds a NUL or is no key or directory at all ends in one line naming it."""
    path = deployment / name
    _damaged_trust_file(path.read_bytes(), damage, path)
    command, sub = TRUST_FILES[name]
    line = assert_one_line(run(capsys, command, "--data-dir", str(deployment), sub))
    assert str(path) in line, line
    assert expected in line, line


# -- keys and passphrases ----------------------------------------------------------------------


def _governance_key_file(data: Path) -> Path:
    (found,) = (DataPaths(data).keys / "governance").glob("*.key")
    return found


DAMAGED: dict[str, bytes] = {
    "empty": b"",
    "not-utf8": b"\xff\xfe" + SECRET.encode(),
    "utf16": '{"alg": "ed25519"}'.encode("utf-16"),
    "nul": b'{"alg": "ed25519", "x": "\x00' + SECRET.encode() + b'"}',
    "not-json": SECRET.encode(),
    "a-list": b"[1]",
    "deep": b"[" * 100_000,
    "key-not-text": b'{"alg": "ed25519", "key_id": "x", "key": 5}',
    "huge-number": b'{"alg": ' + HUGE.encode() + b"}",
    "truncated": b'{"alg": "ed25519", "key_id": "x", "key": "-----BEGIN',
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_key_file_is_one_line(
    damage: str,
    deployment: Path,
    agreement_text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _governance_key_file(deployment).write_bytes(DAMAGED[damage])
    good = tmp_path / "good.yaml"
    good.write_text(agreement_text)
    line = assert_one_line(run(capsys, "isa", "--data-dir", str(deployment), "sign", str(good)))
    assert line.startswith("mappa: key.unavailable: "), line
    assert "governance" in line or "key file" in line


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_subject_key_is_one_line(
    damage: str, deployment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (DataPaths(deployment).keys / "subject.key").write_bytes(DAMAGED[damage])
    argv = ["deadletter", "--data-dir", str(deployment), "retry"]
    ran = run(capsys, *argv, "--as", POLICE, "--user", "u", "--all")
    line = assert_one_line(ran)
    assert line.startswith("mappa: key.unavailable: "), line


@pytest.mark.parametrize(
    "passphrase",
    ["a wrong passphrase", "short", "\udcff\udcfe not UTF-8 at all"],
    ids=["wrong", "short", "not-utf8"],
)
def test_a_wrong_or_unusable_passphrase_is_one_line(
    passphrase: str, case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", passphrase)
    deployment = case.data
    good = case.tmp / "good.yaml"
    good.write_text(case.text)
    for argv in (
        ["keys", "--data-dir", str(deployment), "rotate", "--agency", POLICE],
        ["isa", "--data-dir", str(deployment), "sign", str(good)],
    ):
        line = assert_one_line(run(capsys, *argv), never="not UTF-8 at all")
        assert line.startswith("mappa: key.unavailable: "), line


@pytest.mark.parametrize("kind", ["missing", "folder", "not-utf8"])
def test_an_unreadable_passphrase_file_is_one_line(
    kind: str,
    deployment: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MAPPA_KEY_PASSPHRASE")
    path = tmp_path / "passphrase"
    if kind == "folder":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"\xff\xfe" + SECRET.encode())
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE_FILE", str(path))
    argv = ["keys", "--data-dir", str(deployment), "rotate", "--agency", POLICE]
    line = assert_one_line(run(capsys, *argv))
    assert line.startswith("mappa: key.unavailable: "), line


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["isa", "check", "FILE", "--today", "2026-02-30"],
        ["isa", "check", "FILE", "--today", "\u0662\u0660\u0662\u0666-01-01"],
        ["transfer", "overdue", "--today", "0000-01-01"],
        ["transfer", "overdue", "--today", HUGE],
        ["audit", "query", "--after", HUGE],
        ["audit", "query", "--after", "\uff11\uff12"],
        ["audit", "query", "--limit", "1_000"],
        ["audit", "proof", HUGE],
        ["keys", "rotate", "--agency", POLICE, "--overlap-minutes", "9" * 30],
        ["isa", "init", "--area", AREA, "--version", HUGE],
        ["deadletter", "retry", "--as", POLICE, "--user", "u", HUGE],
        ["serve", "--port", "99999999"],
        ["audit", "export", "--format", SECRET],
        ["no-such-command"],
        ["keys"],
    ],
)
def test_bad_arguments_are_one_line(
    argv: list[str], deployment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("kind: mappa.isa\n")
    argv = [str(good) if a == "FILE" else a for a in argv]
    try:
        ran = run(capsys, *argv)
    except SystemExit as exc:  # argparse's way out must not bypass the one line
        pytest.fail(f"SystemExit({exc.code}) escaped main")
    line = assert_one_line(ran, code=2)
    assert line.startswith("mappa: usage: "), line


def test_audit_bad_filters_are_one_line(
    ledger_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ["--since", "9999-12-31T23:59:59-23:59"],
        ["--subject", "é"],
        ["--subject", "\u202e" + PNC],
        ["--until", "10000-01-01"],
        ["--agency", SECRET + "\u200b"],
    ):
        ran = run(capsys, "audit", "--data-dir", str(ledger_dir), "query", *args)
        line = assert_one_line(ran)
        assert line.startswith("mappa: audit.query-invalid: "), line


# -- anything else -------------------------------------------------------------------------------


def test_an_unforeseen_error_is_one_line_without_its_message(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(args: object) -> int:
        raise RuntimeError(f"something held {SECRET}")

    monkeypatch.setattr(directory_cli, "cmd_show", explode)
    ran = run(capsys, "directory", "--data-dir", str(deployment), "show")
    line = assert_one_line(ran, code=70)
    assert line == (
        "mappa: internal error: RuntimeError (run with --debug or MAPPA_DEBUG=1 for the traceback)"
    )
    with pytest.raises(RuntimeError):
        main(["--debug", "directory", "--data-dir", str(deployment), "show"])
    monkeypatch.setenv("MAPPA_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["directory", "--data-dir", str(deployment), "show"])


def test_an_os_error_is_one_line(
    deployment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-folder" / "agreement.yaml"
    ran = run(
        capsys, "isa", "--data-dir", str(deployment), "init", "--area", AREA, "--out", str(out)
    )
    line = assert_one_line(ran)
    assert "No such file or directory" in line, line


def test_a_multi_line_message_is_said_on_one_line(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker.errors import ConfigurationError

    def two_lines(args: object) -> int:
        raise ConfigurationError("first\nsecond")

    monkeypatch.setattr(directory_cli, "cmd_show", two_lines)
    line = assert_one_line(run(capsys, "directory", "--data-dir", str(deployment), "show"))
    assert line == "mappa: config.invalid: first second"


# -- the ledger, read-only -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.ledger_world import build_ledger_world
    from tests.test_ledger import populate

    data = tmp_path_factory.mktemp("ledger") / "data"
    world = build_ledger_world(data, None)
    populate(world)
    world.close()
    return data


def _drop_privileges() -> None:  # pragma: no cover - runs in the child before exec
    """Root without its capabilities: file modes then bind it as they bind anyone (the
    owner's bits apply), so a read-only directory is read-only to the command."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read_only_copy(ledger: Path, target: Path) -> Path:
    shutil.copytree(ledger, target)
    for path in [target, *target.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target


def _writable_again(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.skipif(sys.platform != "linux", reason="drops Linux capabilities when root")
def test_audit_verify_on_a_read_only_data_directory(ledger_dir: Path, tmp_path: Path) -> None:
    data = _read_only_copy(ledger_dir, tmp_path / "read-only")
    before = _tree_digest(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPA_")}

    def audit(*command: str, check: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [sys.executable, "-m", "broker.cli.main", "audit", "--data-dir", str(data), *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            preexec_fn=_drop_privileges if os.geteuid() == 0 else None,
            check=check,
        )

    try:
        probe = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-c", f"open({str(data / 'probe')!r}, 'w')"],
            capture_output=True,
            preexec_fn=_drop_privileges if os.geteuid() == 0 else None,
            check=False,
        )
        assert probe.returncode != 0, "the copy is writable: the test would prove nothing"
        for command in (["verify"], ["query", "--limit", "3"], ["rejected"], ["checkpoint"]):
            done = audit(*command, check=False)
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
        assert "ledger intact: 12 entries" in audit("verify", check=True).stdout
        assert _tree_digest(data) == before
    finally:
        _writable_again(data)


def test_audit_verify_leaves_a_writable_ledger_as_it_was(
    ledger_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(ledger_dir, data)
    before = (data / "ledger.sqlite").read_bytes()
    ran = run(capsys, "audit", "--data-dir", str(data), "verify")
    assert ran.code == 0, ran.err
    assert (data / "ledger.sqlite").read_bytes() == before


@pytest.mark.parametrize(
    "damage",
    [b"{", b"[1]", b'{"a": "1"}', b'{"a": 1, "a": 2}', b"\xff\xfe", b"[" * 100_000],
    ids=["not-json", "a-list", "a-string-version", "duplicate", "not-utf8", "deep"],
)
def test_a_damaged_record_of_accepted_agreements_is_one_line(
    damage: bytes, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted = DataPaths(case.data).agreements / "accepted.json"
    accepted.parent.mkdir(parents=True, exist_ok=True)
    accepted.write_bytes(damage)
    good = case.tmp / "good.yaml"
    good.write_text(case.text)
    line = assert_one_line(run(capsys, "isa", "--data-dir", str(case.data), "sign", str(good)))
    assert str(accepted) in line, line


def test_a_moderate_alias_bomb_is_refused_before_it_is_validated(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    """About 17 million characters once expanded: under the bound for any file, over the
    bound for an agreement, which would otherwise be validated fully expanded."""
    bomb = ["a0: &a0 [" + ",".join(["x" * 64] * 64) + "]"]
    for level in range(1, 4):
        bomb.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 16) + "]")
    path = case.tmp / "bomb.yaml"
    path.write_text(case.text + "\n".join(bomb) + "\n")
    line = assert_one_line(run(capsys, *AGREEMENT_COMMANDS["deploy acls"](case.data, path)))
    assert "expands to too large a document" in line, line
