"""The ``Idempotency-Key`` request header of a submission
(draft-ietf-httpapi-idempotency-key-header): what a key may be, how it is read, and the
fingerprint of the request it is sent with.

The draft makes the field a Structured Field string (RFC 8941: ``"..."``, where ``\\"``
and ``\\\\`` stand for ``"`` and ``\\``); many clients send a key bare. Both are read: a
value that starts with ``"`` must be a well-formed string, and its content is the key;
any other value is the key itself. A key is 1 to ``MAX_KEY_CHARS`` printable ASCII
characters (a bare one has no space and no ``"``). Anything else, or the header sent
twice, is refused with 400 (``request.idempotency-key-invalid``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from broker.api.models import Output, SubmitRecord
from broker.errors import SchemaError, StoreUnavailable
from broker.gateway.requests import Answered
from broker.gateway.store import AgencyStore

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# Sent back on an answer given again for a key, as the draft's implementations do.
REPLAYED_HEADER = "Idempotent-Replayed"
# In the document: a success given again for its idempotency key says so.
REPLAYED: dict[int | str, dict[str, Any]] = {
    201: {
        "headers": {
            REPLAYED_HEADER: {
                "description": "`true` on the first answer to this Idempotency-Key, given "
                "again; absent otherwise",
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    }
}
# A UUID is 36 characters. The draft sets no bound; ours keeps a stored, indexed key
# small, and says so in the document rather than truncating anything.
MAX_KEY_CHARS = 255
# A bare key (visible ASCII but `"`), or an RFC 8941 string of 1 to MAX_KEY_CHARS
# characters (printable ASCII, with `"` and `\` escaped). In the document too, as
# ECMA-262 (which reads these classes the same way).
KEY_PATTERN = rf'^(?:[!#-~]{{1,{MAX_KEY_CHARS}}}|"(?:[ !#-\[\]-~]|\\["\\]){{1,{MAX_KEY_CHARS}}}")$'
_KEY = re.compile(KEY_PATTERN)
_ESCAPED = re.compile(r'\\(["\\])')
INVALID = "request.idempotency-key-invalid"


def parse_key(value: str) -> str:
    """The key a header ``value`` carries (module docstring). Raises ``SchemaError``
    (``request.idempotency-key-invalid``) for any value that is not a key."""
    if not _KEY.fullmatch(value):
        raise SchemaError(
            f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters, bare "
            'or as a quoted string ("...")',
            code=INVALID,
        )
    if value.startswith('"'):
        return _ESCAPED.sub(r"\1", value[1:-1])
    return value


def idempotency_key(
    request: Request,
    value: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Makes a retried submission safe (draft-ietf-httpapi-idempotency-"
            "key-header): the same key with the same request gets the first answer again "
            f"(with `{REPLAYED_HEADER}: true`) and publishes nothing twice; with another "
            "request it is refused (422 request.idempotency-key-reused). Kept 24 hours. "
            f'1 to {MAX_KEY_CHARS} printable ASCII characters, bare or quoted ("...").',
            # Documented, not enforced by validation: a bad key is a 400 of our own.
            json_schema_extra={"pattern": KEY_PATTERN},
        ),
    ] = None,
) -> str | None:
    """Dependency: the request's idempotency key; None without the header. Raises
    ``SchemaError`` (``request.idempotency-key-invalid``) for a malformed key or the
    header sent more than once."""
    if len(request.headers.getlist(HEADER)) > 1:
        raise SchemaError(f"send one {HEADER} header, not several", code=INVALID)
    return None if value is None else parse_key(value)


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def fingerprint(request: SubmitRecord, person: str | None) -> str:
    """The SHA-256 (hex) of the request's record and purpose and the named ``person`` it
    is made for (None: the service account alone), as JSON with sorted keys and nothing
    but ASCII: equal for equal requests however their JSON was spaced or ordered. The
    credential is left out: a system that rotated its token and retries is making the
    same request. Not RFC 8785, which refuses what a record may hold (integers beyond
    2**53, lone surrogates) before the adapter has judged it. Raises nothing."""
    return digest_of(request.model_dump(mode="json") | {"person": person})


def digest_of(fields: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``fields`` as JSON with sorted keys and nothing but ASCII: a
    request's fingerprint (``fingerprint``, ``broker.api.records.fingerprint``)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_again(answered: Answered, asked: str) -> str:
    """The answer (its JSON) remembered for a key, for a request with fingerprint
    ``asked``. Raises ``SchemaError`` (``request.idempotency-key-reused``) if the key was
    answered for another request."""
    if answered.fingerprint != asked:
        raise SchemaError(
            "this Idempotency-Key was used for a different request; use a new key",
            code="request.idempotency-key-reused",
        )
    return answered.answer


def amend_answer(
    store: AgencyStore, agency_id: str, key: str, answer: Output, *, message_id: str
) -> None:
    """The answer was remembered as queued (``relayed`` false) before the relay; make
    ``answer`` (about ``message_id``) the one remembered. Best effort: the publication
    stands either way."""
    try:
        with store.transaction():
            store.requests.amend(agency_id, key, answer.model_dump_json())
    except StoreUnavailable as exc:
        log.warning(
            "%s: a retry of %s will say relayed: false: %s",
            agency_id,
            message_id,
            exc,
        )
