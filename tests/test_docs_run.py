"""Docs that run (issue 18, item 1): docs/api.md's example session and the README's
command examples, run as written against a live `mappa serve` on a fresh data directory.

The marker convention (docs/api.md, "Examples that run", says the same for readers):

- A fenced block is run only if the line just before its opening fence is an HTML
  comment marker (invisible when the page is rendered):

  - ``<!-- docs-run -->``: run the block. Where its lines start with ``$ ``, each is a
    command (continued over the next lines while a backslash or a quote leaves it
    open) and the lines after it, up to the next ``$ ``, are its output as shown; a block
    without prompts is one command a line, with no output shown. Every command runs in
    one bash shell (variables and functions carry from step to step, and block to
    block), its standard error with its standard output, and must exit 0.
  - ``<!-- docs-run: serve -->``: the block that starts the server. The test starts its
    ``mappa serve`` line itself, in the session's environment, with ``--port 0`` for
    ``--port 8700`` (8700 may be taken where tests run) and without the ``&``; the
    block's other commands run with the port the server took in place of 8700.
  - ``<!-- docs-run: stop -->``: the test sends the server SIGTERM, as ``kill %1`` does,
    and it must exit 0.
  - ``<!-- docs-run: skip REASON -->``: not run, for the reason given (``make``, a long
    run, a synopsis with placeholders). In the README every block with a ``mappa`` or
    ``make`` command carries a marker, so no example is left out silently.

- In a shown output, whitespace may differ where it only lays the text out (JSON broken
  over lines; between two words there must be some), ``...`` stands for any text,
  ``<name>`` for one value that changes from run to run (an id, a time, a token, a
  count: letters, digits and ``_:.+/=-``), and ``$NAME`` for the value the shell
  variable ``NAME`` holds at that step.

docs/api.md's session runs in a shell started in the checkout, with the checkout's
``.venv/bin`` first on ``PATH``, no ``MAPPA_*`` variable set and ``TMPDIR`` in the test's
temporary directory (so its ``mktemp -d`` is fresh). The README's examples then run,
each command on its own, in a working directory where ``D`` is that session's data
directory (its server stopped, its ledger holding the session's audit), ``deploy`` the
checkout's, ``MAPPA_DATA_DIR=D`` and the session's ``MAPPA_KEY_PASSPHRASE``: a plain
``mappa ...`` line through `mappa`'s entry point in the test's own process (the same
argv; a second interpreter's start-up for each of them would cost over a second apiece),
anything with shell syntax through bash. Their blocks show no output, so each must
exit 0.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.kafka.process import die_with_parent
from tests.once import once

ROOT = Path(__file__).resolve().parent.parent
API_GUIDE = ROOT / "docs" / "api.md"
README = ROOT / "README.md"

MARKER = re.compile(r"<!--\s*docs-run(?::\s*(?P<kind>\S+)(?P<reason>[^>]*?))?\s*-->")
FENCE = re.compile(r"^(```+|~~~+)")
PROMPT = "$ "
KINDS = ("run", "serve", "stop", "skip")
# A README block holding one of these at a line's start is a command that needs a marker.
COMMANDS = re.compile(r"^\s*(\$ )?(mappa|make)\s", re.MULTILINE)
# A README command holding one of these needs a shell.
SHELL_SYNTAX = re.compile(r"[$|&;<>`*?(){}~]")
# The docs show the server on this port; the test's takes a free one.
DOC_PORT = "8700"
LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:(\d+))")

# Bounds on waiting, so that a step that hangs fails the test instead of the run.
STEP_SECONDS = 90.0
SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 30.0

# One server for the module: keep its tests on one worker.
pytestmark = pytest.mark.xdist_group("docs-run")


@dataclass(frozen=True)
class Step:
    """One command of a document and the output it shows (``None``: none shown, so
    only its exit status is checked)."""

    line: int
    command: str
    shown: str | None


@dataclass(frozen=True)
class Block:
    """A fenced block and the marker before it (``kind`` ``None``: no marker)."""

    line: int
    kind: str | None
    reason: str
    text: str


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, with the marker on the line before it."""
    lines = markdown.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith(opening.group(1)):
            end += 1
        marker = MARKER.fullmatch(lines[i - 1].strip()) if i > 0 else None
        kind = (marker.group("kind") or "run") if marker else None
        if kind is not None and kind not in KINDS:
            raise ValueError(f"line {i}: docs-run marker of unknown kind {kind!r}")
        reason = (marker.group("reason") or "").strip() if marker else ""
        found.append(Block(i + 2, kind, reason, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return found


def _complete(command: str) -> bool:
    """Whether ``command`` is closed: no quote left open, no trailing backslash."""
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


def steps(block: Block) -> list[Step]:
    """The commands of ``block`` with the output each shows."""
    lines = block.text.splitlines()
    if not any(line.startswith(PROMPT) for line in lines):
        return [
            Step(block.line + n, line.strip(), None) for n, line in enumerate(lines) if line.strip()
        ]
    found: list[Step] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith(PROMPT):
            raise ValueError(f"line {block.line + i}: output before any command")
        start = i
        command = lines[i][len(PROMPT) :]
        i += 1
        while not _complete(command) and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith(PROMPT):
            output.append(lines[i])
            i += 1
        found.append(Step(block.line + start, command, "\n".join(output).strip("\n")))
    return found


PLACEHOLDER = re.compile(r"\.\.\.|<[a-z][a-z0-9-]*>|\$[A-Z][A-Z0-9_]*|\s+")
VALUE = r"[A-Za-z0-9_:.+/=-]+"


def wordish(char: str) -> bool:
    """Whether ``char`` is part of a word (a placeholder's brackets count)."""
    return char.isalnum() or char in "<>"


def pattern(shown: str, variables: Mapping[str, str]) -> re.Pattern[str]:
    """The regular expression an output must match in full to be the one ``shown``."""
    parts: list[str] = []
    at = 0
    for found in PLACEHOLDER.finditer(shown):
        parts.append(re.escape(shown[at : found.start()]))
        piece = found.group()
        if piece == "...":
            parts.append(".*?")
        elif piece.startswith("<"):
            parts.append(VALUE)
        elif piece.startswith("$"):
            name = piece[1:]
            if name not in variables:
                raise ValueError(f"the output shows ${name}, which the session has not set")
            parts.append(re.escape(variables[name]))
        else:
            before = shown[found.start() - 1] if found.start() else ""
            after = shown[found.end()] if found.end() < len(shown) else ""
            # Between two words a space is text; elsewhere it only lays the text out.
            parts.append(r"\s+" if wordish(before) and wordish(after) else r"\s*")
        at = found.end()
    parts.append(re.escape(shown[at:]))
    return re.compile("".join(parts), re.DOTALL)


def matches(shown: str, actual: str, variables: Mapping[str, str]) -> bool:
    """Whether ``actual`` is an output ``shown`` stands for."""
    return pattern(shown, variables).fullmatch(actual.strip("\n")) is not None


def shown_variables(shown: str) -> list[str]:
    return [t[1:] for t in PLACEHOLDER.findall(shown) if t.startswith("$")]


@dataclass
class Shell:
    """One bash process that runs a document's commands in turn, as a reader's terminal
    would: what one step sets, the next sees."""

    proc: subprocess.Popen[bytes]
    sentinel: str = field(default_factory=lambda: f"docs-run-{secrets.token_hex(8)}")

    @classmethod
    @contextlib.contextmanager
    def started(cls, cwd: Path, env: Mapping[str, str]) -> Iterator[Shell]:
        with subprocess.Popen(
            ["/bin/bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a killed run takes it along
        ) as proc:
            try:
                yield cls(proc)
            finally:
                proc.kill()

    def run(self, command: str) -> tuple[int, str]:
        """Run ``command``; its exit status and what it printed (both streams)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        script = f"{{\n{command}\n}} </dev/null 2>&1\nprintf '\\n%s %d\\n' {self.sentinel} $?\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        ending = re.compile(rf"\n{self.sentinel} (\d+)\n$".encode())
        got = bytearray()
        deadline = time.monotonic() + STEP_SECONDS
        while (end := ending.search(got)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no end after {STEP_SECONDS} s; output so far:\n{got.decode()}"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"the shell ended; output:\n{got.decode()}"
                got += chunk
        return int(end.group(1)), got[: end.start()].decode()

    def variable(self, name: str) -> str:
        status, value = self.run(f'printf %s "${{{name}}}"')
        assert status == 0
        return value

    def environment(self) -> dict[str, str]:
        """The shell's exported variables."""
        status, listing = self.run("env -0")
        assert status == 0
        pairs = (item.split("=", 1) for item in listing.split("\0") if "=" in item)
        return dict(pairs)


@dataclass
class Server:
    """The session's `mappa serve`, as the guide's serve block starts it."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def started_server(command: str, env: Mapping[str, str], workdir: Path) -> Iterator[Server]:
    """``command`` (the guide's serve line) with ``--port 0``, in the foreground of its own
    process; killed on exit if it still runs."""
    assert command.endswith("&"), f"the serve line runs in the background: {command!r}"
    assert f"--port {DOC_PORT}" in command, f"the serve line names --port {DOC_PORT}"
    foreground = command.removesuffix("&").replace(f"--port {DOC_PORT}", "--port 0")
    log = workdir / "serve.log"
    with log.open("wb") as err, (workdir / "access.log").open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - the guide's own serve line
            ["/bin/bash", "-c", f"exec {foreground}"],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=err,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a killed run takes it along
        )
    try:
        yield Server(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_listening(server: Server) -> str:
    """The server's port, once its log says it listens."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while (found := LISTENING.search(server.text())) is None:
        assert server.proc.poll() is None, f"mappa serve ended:\n{server.text()}"
        assert time.monotonic() < deadline, f"mappa serve did not listen:\n{server.text()}"
        time.sleep(0.05)
    return found.group(2)


def shell_environment(tmp: Path) -> dict[str, str]:
    """A reader's environment: nothing of ours set, the checkout's `mappa` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp)
    return env


@dataclass
class Outcome:
    """What running a step gave, and whether it is what the document shows."""

    step: Step
    status: int
    output: str
    problem: str | None


@dataclass
class SessionRun:
    outcomes: list[Outcome]
    data_dir: Path | None
    passphrase: str


def check(shell: Shell, step: Step, status: int, output: str) -> str | None:
    """What is wrong with a step's result, or ``None``."""
    if status != 0:
        return f"exit status {status}"
    if step.shown is None:
        return None
    names = shown_variables(step.shown)
    variables = {name: shell.variable(name) for name in names}
    if not matches(step.shown, output, variables):
        return "output differs from the document"
    return None


def run_guide(tmp: Path) -> SessionRun:
    """docs/api.md's marked blocks, in order, in one shell, with the server they start."""
    guide = [b for b in blocks(API_GUIDE.read_text()) if b.kind is not None]
    assert guide, "docs/api.md marks no block to run"
    outcomes: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        shell = stack.enter_context(Shell.started(ROOT, shell_environment(tmp)))
        server: Server | None = None
        for block in guide:
            if block.kind == "skip":
                continue
            if block.kind == "stop":
                assert server is not None, f"line {block.line}: a stop block before a server"
                server.proc.send_signal(signal.SIGTERM)
                code = server.proc.wait(timeout=SERVER_STOP_SECONDS)
                problem = None if code == 0 else f"mappa serve exited {code}:\n{server.text()}"
                outcomes.append(Outcome(steps(block)[0], code, server.text(), problem))
                continue
            port = DOC_PORT
            for step in steps(block):
                if block.kind == "serve" and step.command.startswith("mappa serve"):
                    server = stack.enter_context(
                        started_server(step.command, shell.environment(), tmp)
                    )
                    port = wait_listening(server)
                    continue
                command = step.command.replace(DOC_PORT, port)
                status, output = shell.run(command)
                problem = check(shell, step, status, output)
                outcomes.append(Outcome(step, status, output, problem))
                if problem is not None:
                    return SessionRun(outcomes, None, "")
        data_dir = Path(shell.variable("D"))
        passphrase = shell.variable("MAPPA_KEY_PASSPHRASE")
    return SessionRun(outcomes, data_dir, passphrase)


@pytest.fixture(scope="session")
def guide_run(tmp_path_factory: pytest.TempPathFactory) -> SessionRun:
    """The guide's session, run once in this test run (``tests.once``): both tests read it."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: docs/api.md's session is curl commands")
    return once(
        tmp_path_factory, "docs-run", lambda: run_guide(tmp_path_factory.mktemp("docs-run"))
    )


def report(outcome: Outcome) -> str:
    step = outcome.step
    return (
        f"docs/api.md line {step.line}: {outcome.problem}\n"
        f"$ {step.command}\n--- the document shows:\n{step.shown}\n"
        f"--- it printed (exit {outcome.status}):\n{outcome.output}"
    )


def test_the_api_guide_session_runs_as_written(guide_run: SessionRun) -> None:
    """Every step of docs/api.md's session exits 0 and prints what the guide shows."""
    failed = [o for o in guide_run.outcomes if o.problem is not None]
    assert not failed, report(failed[0])
    assert len(guide_run.outcomes) >= 10  # the whole session ran, not a stub of it


def unmarked(found: list[Block]) -> list[int]:
    """The lines of blocks that hold a `mappa` or `make` command and are neither run nor
    skipped for a reason given."""
    return [
        b.line
        for b in found
        if (b.kind is None and COMMANDS.search(b.text)) or (b.kind == "skip" and not b.reason)
    ]


def run_example(command: str, workdir: Path, env: Mapping[str, str]) -> tuple[int, str]:
    """One README command in ``workdir``: a plain ``mappa`` command line through
    `mappa`'s own entry point in this process (the same argv, without a second
    interpreter's start-up for each), anything else through bash."""
    argv = shlex.split(command, comments=True)
    if argv[:1] == ["mappa"] and not any(SHELL_SYNTAX.search(a) for a in argv):
        with (
            pytest.MonkeyPatch.context() as patch,
            contextlib.redirect_stdout(io.StringIO()) as out,
            contextlib.redirect_stderr(out),
        ):
            patch.chdir(workdir)
            for name in [n for n in os.environ if n.startswith("MAPPA_")]:
                patch.delenv(name)
            for name in ("MAPPA_DATA_DIR", "MAPPA_KEY_PASSPHRASE"):
                patch.setenv(name, env[name])
            code = main(argv[1:])
        return code, out.getvalue()
    done = subprocess.run(  # noqa: S603 - the README's own command
        ["/bin/bash", "-c", command],
        cwd=workdir,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout


def test_the_readme_examples_run(guide_run: SessionRun, tmp_path: Path) -> None:
    """The README's marked command blocks exit 0 on the guide's deployment; a block with
    a `mappa` or `make` command is marked either way."""
    assert guide_run.data_dir is not None, "the guide's session failed; see its test"
    marked = blocks(README.read_text())
    assert not (wrong := unmarked(marked)), f"README.md: blocks with no reason to skip: {wrong}"
    (tmp_path / "D").symlink_to(guide_run.data_dir)
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    env = {
        **shell_environment(tmp_path),
        "MAPPA_DATA_DIR": "D",
        "MAPPA_KEY_PASSPHRASE": guide_run.passphrase,
    }
    ran = 0
    for block in (b for b in marked if b.kind == "run"):
        for step in steps(block):
            status, output = run_example(step.command, tmp_path, env)
            assert status == 0, (
                f"README.md line {step.line}: exit status {status}\n$ {step.command}\n{output}"
            )
            ran += 1
    assert ran >= 5


def test_a_failing_readme_command_is_reported(tmp_path: Path) -> None:
    """Both ways of running an example give its real exit status."""
    env = {**shell_environment(tmp_path), "MAPPA_DATA_DIR": "D", "MAPPA_KEY_PASSPHRASE": "x"}
    status, output = run_example("mappa isa --data-dir D show --id nothing.here", tmp_path, env)
    assert status != 0, output
    assert run_example("false  # a comment", tmp_path, env)[0] == 1
    assert run_example("echo mappa | grep -q mappa", tmp_path, env) == (0, "")


# The checks themselves: each one rejects what it must.

SESSION = """\
<!-- docs-run -->
```console
$ curl -s -X POST $API/x \\
    -d '{"a": 1,
         "b": 2}'
{"id":"<id>",
 "n":2}
$ true
```

```
mappa audit verify
```
"""


def test_steps_split_commands_from_what_they_show() -> None:
    first, second = blocks(SESSION)
    assert (first.kind, second.kind) == ("run", None)
    post, true = steps(first)
    assert post.command.endswith('"b": 2}\'')
    assert post.shown == '{"id":"<id>",\n "n":2}'
    assert (true.command, true.shown) == ("true", "")
    assert steps(second) == [Step(second.line, "mappa audit verify", None)]
    assert MARKER.fullmatch("<!-- docs-run: skip make, long-running -->") is not None


def test_an_output_that_differs_is_refused() -> None:
    shown = '{"id":"<id>", "state":"delivered", "by":"$WHO"} ...'
    assert matches(shown, '{"id":"6f1c-2b","state":"delivered","by":"me"} and more', {"WHO": "me"})
    assert not matches(shown, '{"id":"6f1c","state":"sent","by":"me"} x', {"WHO": "me"})
    assert not matches(shown, '{"id":"6f1c","state":"delivered","by":"you"} x', {"WHO": "me"})
    # A placeholder is one value: no spaces, no quotes.
    assert not matches('"<id>"', '"a b"', {})
    # Layout whitespace may go; a space between words may not.
    assert matches("risk management", "risk  management", {})
    assert not matches("risk management", "riskmanagement", {})
    assert not matches("credential <id> for", "credentialab12for", {})
    assert matches('{"a":1,\n "b":2}', '{"a":1,"b":2}', {})
    assert not matches("exit 0", "exit 0 and more", {})
    with pytest.raises(ValueError, match=r"\$NOBODY"):
        pattern("$NOBODY", {})


def test_a_marker_of_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'skp'"):
        blocks("<!-- docs-run: skp make -->\n```\nmake test\n```\n")


def test_a_command_block_without_a_marker_or_a_reason_is_found() -> None:
    found = blocks(
        "```\nmappa audit verify\n```\n"
        "<!-- docs-run: skip -->\n```\nmake test\n```\n"
        "<!-- docs-run: skip make, long-running -->\n```\nmake test\n```\n"
        "```\nmappa-broker demo: output, not a command\n```\n"
    )
    assert unmarked(found) == [2, 6]


def test_the_shell_carries_variables_and_reports_exit_status(tmp_path: Path) -> None:
    with Shell.started(tmp_path, shell_environment(tmp_path)) as shell:
        assert shell.run("NAME=value; echo out; echo err >&2") == (0, "out\nerr\n")
        assert shell.variable("NAME") == "value"
        assert shell.run("false") == (1, "")
        assert check(shell, Step(1, "false", None), 1, "") == "exit status 1"
        step = Step(1, "echo $NAME", "$NAME")
        assert check(shell, step, 0, "value\n") is None
        assert check(shell, step, 0, "other\n") == "output differs from the document"


def test_a_block_that_starts_with_output_is_refused() -> None:
    with pytest.raises(ValueError, match="output before any command"):
        steps(Block(1, "run", "", "stray output\n$ true"))
