"""`mappa users` as an operator uses it (in-process, real files); the password asked for
twice on a real (pseudo-)terminal; and docs/identity.md's session and console example,
run as written."""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.cli.main import main
from broker.gateway.agency import utc_now
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.totp import code_at
from broker.identity.users import UserStore

ROOT = Path(__file__).resolve().parent.parent
AGENCIES = ROOT / "deploy" / "agencies.example.yaml"
DOC = ROOT / "docs" / "identity.md"
PASSPHRASE = "an operator's passphrase"  # noqa: S105 - a test deployment's
PASSWORD = "plum tree harbour lantern"  # noqa: S105 - a test user's
NEW_PASSWORD = "quiet river copper kettle"  # noqa: S105
HOUSING = "housing.stoke-on-trent"
POLICE = "police.staffordshire"


_FILES = itertools.count()


def users(data_dir: Path, *args: str) -> int:
    return main(["users", "--data-dir", str(data_dir), *args])


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASSPHRASE)
    d = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(d), "init", "--agencies", str(AGENCIES)]) == 0
    return d


def password_file(tmp_path: Path, content: str | bytes) -> str:
    """A new file holding ``content``; returns its path."""
    path = tmp_path / f"password-{next(_FILES)}"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return str(path)


def secret_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


def test_add_list_disable_reset_history(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = password_file(tmp_path, PASSWORD + "\n")
    second = password_file(tmp_path, NEW_PASSWORD + "\r\n")
    capsys.readouterr()
    add = ("add", "--password-file", first, "--agency")

    assert users(data_dir, *add, HOUSING, "--role", "agency-user", "j.smith") == 0
    assert capsys.readouterr().out == "added j.smith (agency-user of housing.stoke-on-trent)\n"

    # A role that needs a second factor: the URI alone on standard output, once.
    assert users(data_dir, *add, POLICE, "--role", "ig-officer", "igo.smith") == 0
    out, err = capsys.readouterr()
    uri = out.strip()
    assert out.count("\n") == 1
    assert uri.startswith("otpauth://totp/MAPPA%20broker:igo.smith?")
    assert "shown once" in err
    secret = secret_of(uri)
    with IdentityDatabase(identity_path(data_dir)) as database:
        now = utc_now()
        user = UserStore(database).authenticate(
            "igo.smith", PASSWORD, code_at(secret, now), now=now
        )
    assert (user.agency, user.role.value) == (POLICE, "ig-officer")

    # A role where it is optional, asked for.
    assert (
        users(data_dir, *add, "coord.staffordshire", "--role", "coordinator", "--totp", "c.o") == 0
    )
    assert capsys.readouterr().out.startswith("otpauth://totp/MAPPA%20broker:c.o?")

    assert users(data_dir, "list") == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].split() == [
        "username",
        "agency",
        "role",
        "state",
        "factors",
        "created",
    ]
    assert [line.split()[:5] for line in listing.splitlines()[1:]] == [
        ["c.o", "coord.staffordshire", "coordinator", "active", "password+totp"],
        ["igo.smith", POLICE, "ig-officer", "active", "password+totp"],
        ["j.smith", HOUSING, "agency-user", "active", "password"],
    ]
    assert users(data_dir, "disable", "j.smith") == 0
    assert "sessions ended" in capsys.readouterr().out
    assert users(data_dir, "reset", "--password-file", second, "igo.smith") == 0
    new_uri = capsys.readouterr().out.strip()
    assert secret_of(new_uri) != secret

    assert users(data_dir, "list", "--json", "--agency", HOUSING) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["username"], row["state"], row["second_factor"]) == ("j.smith", "disabled", None)
    assert users(data_dir, "list", "--json") == 0
    listed = capsys.readouterr().out

    assert users(data_dir, "history", "--json") == 0
    events = json.loads(capsys.readouterr().out)
    assert [(e["act"], e["username"]) for e in events] == [
        ("add", "j.smith"),
        ("add", "igo.smith"),
        ("add", "c.o"),
        ("disable", "j.smith"),
        ("reset", "igo.smith"),
    ]
    assert all(re.fullmatch(r"os:.+@.+", e["actor"]) for e in events)
    assert users(data_dir, "history", "--user", "j.smith") == 0
    history = capsys.readouterr().out
    head, *rows = history.splitlines()
    assert head.split() == ["at", "act", "username", "agency", "role", "by"]
    assert [line.split()[1] for line in rows] == ["add", "disable"]

    # No listing shows a secret, and no file holds a password.
    for shown in (listing, listed, history, json.dumps(events)):
        for secret_text in (PASSWORD, NEW_PASSWORD, secret, secret_of(new_uri), "$argon2"):
            assert secret_text not in shown
    for file in data_dir.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert PASSWORD.encode() not in content, file
            assert NEW_PASSWORD.encode() not in content, file


def test_each_refusal_is_one_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = password_file(tmp_path, PASSWORD + "\n")
    assert users(data_dir, "add", "--agency", HOUSING, "--role", "agency-user",
                 "--password-file", good, "j.smith") == 0  # fmt: skip
    assert users(data_dir, "disable", "j.smith") == 0
    assert users(data_dir, "add", "--agency", HOUSING, "--role", "agency-user",
                 "--password-file", good, "k.smith") == 0  # fmt: skip
    capsys.readouterr()

    def add(*args: str, username: str = "new.user", agency: str = HOUSING) -> list[str]:
        return ["add", "--agency", agency, "--role", "agency-user", *args, username]

    cases: list[tuple[list[str], int, str]] = [
        (add("--password-file", good, agency="nobody.here"), 1, "directory.unknown-agency"),
        (add("--password-file", good, username="J.Smith"), 1, "users.invalid-username"),
        (add("--password-file", good, username="x" * 200), 1, "users.invalid-username"),
        (add("--password-file", good, username="k.smith"), 1, "users.exists"),
        (add("--password-file", str(tmp_path / "absent")), 1, "file.unreadable"),
        (add("--password-file", password_file(tmp_path, "")), 1, "password.file"),
        (add("--password-file", password_file(tmp_path, "one\ntwo\n")), 1, "password.file"),
        (add("--password-file", password_file(tmp_path, "short\n")), 1, "password.too-short"),
        (
            add("--password-file", password_file(tmp_path, "tab\tinside the password\n")),
            1,
            "password.control-character",
        ),
        (
            add("--password-file", password_file(tmp_path, "I am new.user, really\n")),
            1,
            "password.contains-username",
        ),
        (
            add("--password-file", password_file(tmp_path, b"nul\x00inside the password")),
            1,
            "file.encoding",
        ),
        (add(), 1, "users.no-terminal"),  # pytest's stdin is no terminal
        (["add", "--agency", HOUSING, "--role", "chief", "x.y"], 2, "usage"),
        (["add", "--role", "agency-user", "x.y"], 2, "usage"),
        (["disable", "nobody"], 1, "users.unknown"),
        (["disable", "j.smith"], 1, "users.disabled"),
        (["reset", "--password-file", good, "j.smith"], 1, "users.disabled"),
        (["reset", "--password-file", good, "nobody"], 1, "users.unknown"),
        (["reset", "nobody"], 1, "users.unknown"),  # before any password is asked for
        (["rename", "j.smith"], 2, "usage"),
    ]
    for args, status, code in cases:
        assert users(data_dir, *args) == status, args
        out, err = capsys.readouterr()
        assert out == "", args
        assert err.count("\n") == 1, (args, err)
        assert err.startswith(f"mappa: {code}:"), (args, err)
        assert PASSWORD not in err
        assert "inside the password" not in err
    # None of them changed anything.
    assert users(data_dir, "list", "--json") == 0
    assert [u["username"] for u in json.loads(capsys.readouterr().out)] == ["j.smith", "k.smith"]

    # Without a deployment, nothing is created.
    empty = tmp_path / "empty"
    assert users(empty, "list") == 1
    assert "mappa keys init" in capsys.readouterr().err
    assert not empty.exists()


def _read_until(fd: int, wanted: bytes, *, within: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + within
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {wanted!r}, saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"the command ended before {wanted!r}; saw {seen!r}"
            seen += chunk
    return seen


def _on_a_terminal(data_dir: Path, username: str, answers: tuple[str, str]) -> tuple[int, str]:
    """Runs `mappa users add` with its standard input on a pseudo-terminal (in a new
    session, so getpass cannot reach the terminal the tests run from), typing
    ``answers`` at its two prompts. Returns the exit status and standard output, and
    checks that nothing typed was echoed."""
    primary, secondary = os.openpty()
    env = {**os.environ, "MAPPA_KEY_PASSPHRASE": PASSPHRASE}
    command = [sys.executable, "-m", "broker.cli.main", "users", "--data-dir", str(data_dir)]
    command += ["add", "--agency", HOUSING, "--role", "agency-user", username]
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own command
            command,
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
            cwd=ROOT,
        )
        os.close(secondary)
        assert proc.stderr is not None
        err = proc.stderr.fileno()
        _read_until(err, f"new password for {username}: ".encode())
        os.write(primary, answers[0].encode() + b"\n")
        _read_until(err, b"the same again: ")
        os.write(primary, answers[1].encode() + b"\n")
        out, rest = proc.communicate(timeout=60)
        echoed = b""
        while select.select([primary], [], [], 0)[0]:
            try:
                echoed += os.read(primary, 4096)
            except OSError:  # the other end is closed: nothing more to read
                break
    finally:
        os.close(primary)
    for answer in answers:
        assert answer.encode() not in echoed + out + rest
    if proc.returncode != 0:
        return proc.returncode, rest.decode().splitlines()[-1]
    return proc.returncode, out.decode()


def test_the_password_is_asked_for_twice_on_a_terminal(data_dir: Path) -> None:
    assert _on_a_terminal(data_dir, "t.user", (PASSWORD, PASSWORD)) == (
        0,
        "added t.user (agency-user of housing.stoke-on-trent)\n",
    )
    status, line = _on_a_terminal(data_dir, "u.user", (PASSWORD, NEW_PASSWORD))
    assert (status, line) == (1, "mappa: password.mismatch: the two passwords differ")


# -- docs/identity.md, run as written -------------------------------------------------


def documented_session() -> list[tuple[str, list[str]]]:
    """The doc's console session: each command and the lines it is shown to print."""
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/identity.md has one console session"
    steps: list[tuple[str, list[str]]] = []
    for line in blocks[0].splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def matches(shown: str, printed: str) -> bool:
    """Whether a printed line is the line the doc shows, ``...`` standing for anything
    and runs of spaces for any."""
    pattern = ".*".join(re.escape(" ".join(part.split())) for part in shown.split("..."))
    return re.fullmatch(pattern, " ".join(printed.split())) is not None


def test_the_documented_session_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    steps = documented_session()
    assert any(command.startswith("mappa users") for command, _ in steps)
    for command, shown in steps:
        words = shlex.split(command)
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            monkeypatch.setenv(name, value)
            continue
        if words[0] != "mappa":
            subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)  # noqa: S603, S607
            continue
        status = main(words[1:])
        out, err = capsys.readouterr()
        printed = out.splitlines() + err.splitlines()
        refused = any(line.startswith("mappa: ") for line in shown)
        assert (status != 0) == refused, (command, printed)
        assert len(printed) == len(shown), (command, printed)
        for want, got in zip(shown, printed, strict=True):
            assert matches(want, got), (command, want, got)

    # The console example, on the deployment the session made.
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/identity.md has one Python example"
    exec(compile(blocks[0], str(DOC), "exec"), {})  # noqa: S102 - our own documentation
