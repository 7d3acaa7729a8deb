"""Routing follows the case: the one call the publisher makes before it authorises.

Exactly one area owns a case at any moment; only the owner's area carries new
messages about it.

* No transfer known, or the message is for the owning area: unchanged.
* A transfer is open (requested or accepted): the sending area still owns the case.
  Messages published there go to its agencies as before and reach the receiving area
  in the handover package at completion (or, if they arrive at the lead agency after
  it, in the lead's catch-up re-share). A message for the receiving area is refused
  until completion (``transfer.not-yet-owner``), so nothing goes to the wrong side.
* After completion the receiving area owns the case. A message still addressed to the
  old area is moved to the new area when the sender operates there too (and is then
  authorised under that area's agreement as usual); otherwise it is refused
  (``transfer.case-moved``). Either way the old area's Duty-to-Co-operate agencies get
  nothing new wrapped for them, and its RA agencies only what an agreement gives them.

A refusal raises before anything is sealed; the publisher audits it as a refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from broker.errors import TransferRefused

if TYPE_CHECKING:
    from broker.gateway.agency import AgencyContext
    from schemas.messages import MessageBody
    from schemas.transfer import TransferRecord

M = TypeVar("M", bound="MessageBody")


def follow_case(
    ctx: AgencyContext, message: M, in_progress: TransferRecord | None, owner: str | None
) -> M:
    """Route ``message`` by the rules above, given its case's transfer ``in_progress`` and
    the area that ``owner``s it after its last completed transfer (``CaseRegistry``'s
    ``open_for`` and ``owner``): returns it unchanged, or a copy moved to the area that
    now owns the case. Raises ``TransferRefused`` (``transfer.not-yet-owner``,
    ``transfer.case-moved``)."""
    if in_progress is not None and message.area == in_progress.to_area:
        raise TransferRefused(
            f"the case is moving from {in_progress.from_area} to {in_progress.to_area} "
            f"(transfer {in_progress.transfer_id}, {in_progress.state.value}); "
            f"{in_progress.from_area} owns it until the transfer completes",
            code="transfer.not-yet-owner",
        )
    if owner is None or owner == message.area:
        return message
    if owner in ctx.entry.areas:
        return message.model_copy(update={"area": owner})
    raise TransferRefused(
        f"the case moved from {message.area} to {owner}: {ctx.agency_id} does not operate "
        f"in {owner}, and {message.area}'s agencies no longer receive new messages about it",
        code="transfer.case-moved",
    )
