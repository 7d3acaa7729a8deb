"""The tlog-witness ``add-checkpoint`` exchange as bytes (https://c2sp.org/tlog-witness),
so a witness can answer a ledger in another process as it answers one in this process.

Request body: ``old <size>\\n``, zero to 63 lines of one base64 consistency-proof hash
each, an empty line, then the checkpoint (a signed note, with any signatures). Answers:
200 with cosignature lines; 409 with ``<size>\\n`` (``text/x.tlog.size``) when ``old``
is not the witness's size; 400, 403, 404, 409 or 422 for the refusals
``Witness.add_checkpoint`` lists, with a one-line reason.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from broker.ledger.verify_proofs import HASH_SIZE, MAX_NOTE_BYTES, ProofError, split_note
from broker.witness.witness import MAX_PROOF_LINES, Witness, WitnessConflict, WitnessRefusal

SIZE_CONTENT_TYPE = "text/x.tlog.size"
# The old size line and the proof lines before the checkpoint: each at most a 44-character
# base64 hash and a newline, so a request is bounded before it is parsed.
MAX_REQUEST_BYTES = 32 + MAX_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


def request_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The ``add-checkpoint`` request body for these values."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """(old size, proof hashes, checkpoint note) of a request body. Raises
    ``WitnessRefusal`` (``witness.malformed``, 400) for one that is too large, not UTF-8,
    or not shaped as the module says."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _malformed(f"a request is at most {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("a request is UTF-8 text") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if not sep or match is None:
        raise _malformed("a request starts with 'old <size>' and has an empty line")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise _malformed(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed("a proof line is one base64 hash") from None
        if len(digest) != HASH_SIZE:
            raise _malformed(f"a proof hash is {HASH_SIZE} bytes")
        proof.append(digest)
    return int(match.group(1)), proof, note


def _malformed(reason: str) -> WitnessRefusal:
    return WitnessRefusal(reason, code="witness.malformed", status=400)


def handle(witness: Witness, body: bytes) -> tuple[int, str, bytes]:
    """Answer one ``add-checkpoint`` request: (HTTP status, content type, body)."""
    try:
        old, proof, note = parse_request(body)
        line = witness.add_checkpoint(old, proof, note)
    except WitnessConflict as exc:
        return 409, SIZE_CONTENT_TYPE, f"{exc.size}\n".encode()
    except WitnessRefusal as exc:
        return exc.status, "text/plain", f"{exc.code}: {exc.reason}\n".encode()
    return 200, "text/plain", line.encode()


def parse_answer(status: int, body: bytes) -> list[str]:
    """The cosignature lines of a 200 answer. Raises ``WitnessConflict`` for a 409 with
    a size, and ``WitnessRefusal`` for any other answer (its code from the reason line
    when it gives one, else ``witness.refused``)."""
    text = body.decode("utf-8", "replace")
    if status == 200:
        lines = text.splitlines(keepends=True)
        if not lines or any(not ln.startswith("\u2014 ") or not ln.endswith("\n") for ln in lines):
            raise WitnessRefusal(
                "the witness's answer is not signature lines", code="witness.malformed", status=502
            )
        try:
            split_note("x\n\n" + text)
        except ProofError as exc:
            raise WitnessRefusal(str(exc), code="witness.malformed", status=502) from None
        return lines
    if status == 409 and re.fullmatch(r"(0|[1-9][0-9]{0,18})\n", text):
        raise WitnessConflict(int(text))
    code, _, reason = text.strip().partition(": ")
    known = re.fullmatch(r"witness\.[a-z-]{1,40}", code) is not None
    raise WitnessRefusal(
        reason[:200] if known else text[:200],
        code=code if known else "witness.refused",
        status=status,
        alarm=code in {"witness.rollback", "witness.inconsistent"},
    )


class InProcessClient:
    """A witness in this process, reached through the same bytes as over HTTP: the
    ``WitnessClient`` the embedded deployment hands its ledger."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """``handle`` the request and ``parse_answer`` the answer (see both)."""
        status, _, body = handle(self.witness, request_body(old_size, proof, note))
        return parse_answer(status, body)
