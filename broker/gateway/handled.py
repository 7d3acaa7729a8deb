"""What became of one record a gateway read: the answer of every receiving path."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from schemas.common import ViewKind


class Handling(enum.StrEnum):
    """What became of one record: taken, skipped (a redelivery, or not ours) or refused."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    NOT_ADDRESSED = "not-addressed"
    REFUSED = "refused"
    # A receipt for something this agency sent, applied to its sending state.
    RECEIPT = "receipt"


@dataclass(frozen=True)
class Handled:
    """What became of one record: delivered (with the view), skipped, or refused (with
    the reason). Only verified header fields are filled in."""

    handling: Handling
    topic: str
    message_id: str | None = None
    sender: str | None = None
    message_type: str | None = None
    view: ViewKind | None = None
    reason_code: str | None = None
    reason: str | None = None
