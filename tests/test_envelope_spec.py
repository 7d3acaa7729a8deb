"""docs/envelope.md is enough to verify and decrypt a message: its appendix program, which
uses only the standard library, cryptography and rfc8785, is run against the vectors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "envelope.md"
VECTORS = ROOT / "tests" / "vectors" / "envelope-vectors.json"
DATA = json.loads(VECTORS.read_text())


def appendix_program() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", SPEC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the spec has one program, in its appendix"
    return blocks[0]


def test_the_program_uses_nothing_of_ours() -> None:
    imports = set(re.findall(r"^(?:from|import) (\w+)", appendix_program(), flags=re.MULTILINE))
    assert imports <= {"base64", "hashlib", "hmac", "json", "sys", "rfc8785", "cryptography"}


@pytest.mark.parametrize(
    ("index", "recipient", "kind"),
    [
        (i, agency, kind)
        for i, v in enumerate(DATA["valid"])
        for agency, kind in v["expect"].items()
        if kind in {"full", "redacted"}
    ],
)
def test_spec_program_decrypts_each_valid_vector(
    tmp_path: Path, index: int, recipient: str, kind: str
) -> None:
    program = tmp_path / "verify_by_hand.py"
    program.write_text(appendix_program())
    done = subprocess.run(  # noqa: S603 - the spec's own program, on our own vectors
        [sys.executable, str(program), str(VECTORS), str(index), recipient],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed_kind, plaintext = done.stdout.rstrip("\n").split(" ", 1)
    assert printed_kind == kind
    assert plaintext == DATA["plaintexts"][kind]


def test_spec_program_refuses_a_tampered_vector(tmp_path: Path) -> None:
    data = json.loads(VECTORS.read_text())
    tampered = next(v for v in data["invalid"] if v["name"] == "header-purpose-altered")
    data["valid"] = [{**data["valid"][0], "envelope": tampered["envelope"]}]
    file = tmp_path / "tampered.json"
    file.write_text(json.dumps(data))
    program = tmp_path / "verify_by_hand.py"
    program.write_text(appendix_program())
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(program), str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "InvalidSignature" in done.stderr
