"""Request and response bodies. Input and output models are kept apart, and no
response carries a credential or an envelope's bytes."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from broker.gateway.justification import (
    INVISIBLE,
    JUSTIFICATION_INVALID,
    JUSTIFICATION_MISSING,
    MAX_JUSTIFICATION_CHARS,
    MIN_JUSTIFICATION_CHARS,
    MIN_JUSTIFICATION_WORDS,
)
from schemas.common import ViewKind


def visible(text: str) -> str:
    """``text`` if every character prints (``justification.INVISIBLE``: no controls, no
    zero-width or bidirectional format characters); raises ``ValueError`` otherwise,
    which validation answers with a 422."""
    if any(unicodedata.category(c) in INVISIBLE for c in text):
        raise ValueError("only printable text is allowed: no control or format characters")
    return text


def visible_lines(text: str) -> str:
    """``visible``, line breaks and tabs apart: for text written as paragraphs."""
    visible(text.translate(_LAYOUT))
    return text


_LAYOUT = str.maketrans("\t\n\r", "   ")
# A name or a short reason, as people type it: any script, nothing that prints nothing.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(visible)]
# A reason: paragraphs of printable text, within the audit event's limit.
LongText = Annotated[
    str, StringConstraints(min_length=1, max_length=4000), AfterValidator(visible_lines)
]

ARMS_EXAMPLE: dict[str, Any] = {
    "pnc": "2011/0456789K",
    "visorRef": "VR00012345",
    "surname": "Sample",
    "forenames": "Alex",
    "dob": "14/03/1980",
    "mappaArea": "staffordshire",
    "mappaCategory": 1,
    "mappaLevel": 2,
    "arms": {
        "completed": "02/11/2026",
        "rosh": "HIGH",
        "riskTo": ["CHILDREN"],
        "factors": ["access to children"],
        "narrative": "High risk to children.",
        "victims": [],
    },
}


class Input(BaseModel):
    """Base of request bodies: a field not declared is refused."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """Base of response bodies: frozen, and only the fields declared."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Bodies below without a docstring have a comment instead: pydantic puts a model's
# docstring in its JSON schema, so a new one would change docs/openapi.json.


# A record for ``operations.submit`` to map and publish.
class SubmitRecord(Input):
    record: dict[str, Any] = Field(
        description="One record in the agency system's own export format (see the adapter "
        "for the agency's kind); mapped to a canonical message, then published.",
        json_schema_extra={"examples": [ARMS_EXAMPLE]},
    )
    purpose: ShortText = Field(description="why it is shared; goes into the envelope header")


# One recipient of a submitted message and the view it gets.
class Disclosure(Output):
    agency: str
    view: ViewKind


# What ``operations.submit`` published (``PublishResult``), and whether it went at once.
class Submitted(Output):
    message_id: str
    message_type: str
    subject_ref: str = Field(description="keyed hash of the subject's PNC id")
    disclosures: list[Disclosure] = Field(description="each recipient agency and its view")
    topics: list[str]
    relayed: bool = Field(
        description="false if the broker was unreachable: the message is durably queued "
        "and is sent by the next relay"
    )


class InboxMessage(Output):
    """What the broker knows about a delivered message without opening it."""

    message_id: str
    sender: str
    message_type: str
    subject_ref: str
    view: ViewKind
    isa_id: str
    isa_version: int
    topic: str
    created_at: str
    received_at: str
    acknowledged_at: str | None
    # Who acknowledged it, as the audit names people (null before it was recorded).
    acknowledged_by: str | None = None


# One page of the inbox, in delivery order.
class InboxPage(Output):
    items: list[InboxMessage]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


# A message acknowledged, whose sender's it is, and the time of its first acknowledgement.
class Acknowledged(Output):
    message_id: str
    sender: str
    acknowledged_at: str
    acknowledged_by: str | None


# What the gateway accepts as a justification: at least MIN_JUSTIFICATION_CHARS between
# the first and the last non-blank character (``len(text.strip())``).
JUSTIFICATION_PATTERN = rf"\S[\s\S]{{{MIN_JUSTIFICATION_CHARS - 2},}}\S"


def _justification_required(schema: dict[str, Any]) -> None:
    """The contract, as documented: a justification is required. The model itself lets
    a request without one through to the gateway, which refuses it *and audits the
    refusal*; a validation error before the handler would leave no audit record."""
    schema["properties"]["justification"] = {
        "type": "string",
        "minLength": MIN_JUSTIFICATION_CHARS,
        "maxLength": MAX_JUSTIFICATION_CHARS,
        "pattern": JUSTIFICATION_PATTERN,
        "title": "Justification",
        "description": f"why the record is opened; at least {MIN_JUSTIFICATION_CHARS} "
        f"non-blank characters and {MIN_JUSTIFICATION_WORDS} words, after Unicode NFC "
        "normalisation, with no control, format (zero-width, bidirectional), private-use "
        f"or unassigned characters. A request without one is refused (422 "
        f"{JUSTIFICATION_MISSING}; one that is not a justification: 422 "
        f"{JUSTIFICATION_INVALID}), and the refusal audited.",
    }
    schema["required"] = sorted({*schema.get("required", []), "justification"})


# Who opens a message and why, for the consultation's audit record.
class OpenRequest(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_justification_required)

    justification: str | None = Field(default=None, max_length=MAX_JUSTIFICATION_CHARS)


# An opened message, mapped to the agency system's own format.
class Opened(Output):
    message_id: str
    message_type: str
    sender: str
    view: ViewKind
    record: dict[str, Any] = Field(description="the message, in the agency system's own format")


class Delivery(Output):
    """What became of a sent message at one recipient, from the sender's own tracking."""

    recipient: str
    state: str = Field(
        description="queued (in the outbox), sent (the broker took it; a receipt is "
        "awaited until due_at), then delivered, refused (with reason_code) or "
        "undeliverable (no receipt after every re-send)"
    )
    attempts: int = Field(description="how many times it was sent again for want of a receipt")
    queued_at: str
    updated_at: str
    due_at: str | None = Field(description="when it is sent again if no receipt has come")
    reason_code: str | None = Field(
        description="why the recipient refused it, or the broker "
        "(`transport.record-rejected`: too large for it; never sent)"
    )


class Deliveries(Output):
    """Each recipient of a message this agency sent, and how its delivery stands."""

    message_id: str
    recipients: list[Delivery]


class Alive(Output):
    """The process answers (nothing else is checked)."""

    status: Literal["alive"] = "alive"


class BrokerHealth(Output):
    """Whether the broker answered the readiness probe."""

    state: Literal["ok", "unavailable"]
    reason_code: str | None = None


class AgencyHealth(Output):
    """One served agency's store: writable or not, what waits to be sent, and how the
    deliveries it tracks stand."""

    agency: str
    state: Literal["ok", "unavailable"]
    reason_code: str | None = None
    outbox_unsent: int | None = Field(
        description="records in the outbox not yet sent to the broker; null if the store "
        "did not answer"
    )
    tracked: dict[str, int] = Field(
        description="tracked deliveries by state (queued, sent, delivered, refused, "
        "undeliverable), the audit events awaiting the ledger included"
    )


class LedgerHealth(Output):
    """How far the audit ledger is behind the audit topic."""

    state: Literal["ok", "behind", "halted", "unavailable", "not-run"]
    reason_code: str | None = None
    lag: int | None = Field(
        description="records on the audit topic not yet appended; null if unknown"
    )
    bound: int = Field(description="the largest lag that still counts as caught up")


class Readiness(Output):
    """Whether the service can do its job, and the state of each part it needs."""

    status: Literal["ready", "not-ready"]
    broker: BrokerHealth
    agencies: list[AgencyHealth]
    ledger: LedgerHealth
