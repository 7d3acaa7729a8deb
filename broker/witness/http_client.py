"""The ledger's client for a witness in another process: tlog-witness ``add-checkpoint``
over HTTP (https://c2sp.org/tlog-witness), ``POST <url>/add-checkpoint``.

The URL says only where to ask: what the witness answers is checked against the witness
policy (``broker.ledger.witnessing``), the trust anchor. Each request is bounded in time
(``CONNECT_SECONDS``, ``ANSWER_SECONDS``) and its answer in size (``MAX_ANSWER_BYTES``),
so a witness slow, down or hostile costs the ledger's asking thread at most that.
Witness URLs come from ``MAPPA_WITNESS_URLS`` (``witness_urls``).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from broker.errors import ConfigurationError
from broker.settings import is_secure_url
from broker.witness.protocol import parse_answer, request_body
from broker.witness.witness import WitnessRefusal

CONNECT_SECONDS = 2.0
# Reading, writing, and waiting for the witness's answer: it checks one proof and
# writes one row, well under a second on any healthy host.
ANSWER_SECONDS = 5.0
# A few cosignature lines of ~120 bytes; anything far longer is not an answer.
MAX_ANSWER_BYTES = 16 * 1024


def witness_urls(text: str) -> dict[str, str]:
    """``<witness name>=<url>,...`` (``MAPPA_WITNESS_URLS``) as a mapping, each URL
    without its trailing slash. Raises ``ConfigurationError`` for an entry without ``=``,
    a name given twice, or a URL that is not https (http only to this machine)."""
    urls: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not name or not url:
            raise ConfigurationError(f"MAPPA_WITNESS_URLS takes NAME=URL entries, not {entry!r}")
        if name in urls:
            raise ConfigurationError(f"MAPPA_WITNESS_URLS names {name} twice")
        if not is_secure_url(url):
            raise ConfigurationError(
                f"MAPPA_WITNESS_URLS: {name}'s URL must be https (http only to this machine)"
            )
        urls[name] = url
    return urls


class HttpWitnessClient:
    """A witness at ``url`` (the prefix of its ``add-checkpoint``): the ``WitnessClient``
    the ledger hands ``Witnessing`` for a witness it does not hold. ``close`` releases
    its connections."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            timeout=httpx.Timeout(ANSWER_SECONDS, connect=CONNECT_SECONDS),
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpWitnessClient({self.url})"

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """POST the request; returns the cosignature lines of a 200 answer. Raises as
        ``protocol.parse_answer`` does, ``WitnessRefusal`` (``witness.malformed``) for an
        answer over ``MAX_ANSWER_BYTES``, and ``httpx.HTTPError`` when the witness is not
        reached or too slow."""
        with self._http.stream(
            "POST",
            f"{self.url}/add-checkpoint",
            content=request_body(old_size, proof, note),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        ) as answer:
            body = bytearray()
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise WitnessRefusal(
                        f"the witness's answer is over {MAX_ANSWER_BYTES} bytes",
                        code="witness.malformed",
                        status=502,
                    )
        return parse_answer(answer.status_code, bytes(body))

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._http.close()
