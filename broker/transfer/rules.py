"""The checks on one transfer step: known areas, the state machine, who may move.

The same checks run where a step is sent (so a bad step is never signed) and where it
is received (so a step from a compromised or confused adapter is refused). Every
refusal names what was wrong, with a stable ``transfer.*`` code.
"""

from __future__ import annotations

from datetime import date

from broker.areas import area as known_area
from broker.errors import ConfigurationError, MappaError, TransferRefused
from broker.trust.directory import Directory
from schemas.common import Role
from schemas.directory import AgencyEntry
from schemas.transfer import (
    MAY_SEND,
    TRANSITIONS,
    Side,
    TransferComplete,
    TransferControl,
    TransferRecord,
    TransferRequest,
    TransferState,
    TransferStep,
)


def step_of(message: TransferControl) -> TransferStep:
    return TransferStep(getattr(message, "step"))  # noqa: B009 - every concrete step has it


def coordinator_of(directory: Directory, area: str) -> AgencyEntry:
    found = directory.agencies(area=area, roles=(Role.COORDINATOR,))
    if not found:
        raise TransferRefused(
            f"area {area} has no MAPPA co-ordination unit in the trust directory: "
            "it cannot take part in a transfer",
            code="transfer.unknown-area",
        )
    return found[0]


def check_areas(directory: Directory, message: TransferControl) -> None:
    for code in (message.from_area, message.to_area):
        try:
            known_area(code)
        except ConfigurationError:
            raise TransferRefused(
                f"{code!r} is not one of the 42 MAPPA areas of England and Wales",
                code="transfer.unknown-area",
            ) from None
        coordinator_of(directory, code)


def _check_actor(
    step: TransferStep, actor: AgencyEntry, message: TransferControl, lead: str
) -> None:
    area_of = {Side.SENDING: message.from_area, Side.RECEIVING: message.to_area}
    for side, roles in MAY_SEND[step]:
        if area_of[side] not in actor.areas or actor.role not in roles:
            continue
        if side is Side.SENDING and actor.role is not Role.COORDINATOR and actor.agency_id != lead:
            continue
        return
    allowed = " or ".join(
        f"the {side.value} area's ({area_of[side]}) "
        + ("co-ordinator" if roles == (Role.COORDINATOR,) else "lead agency or co-ordinator")
        for side, roles in MAY_SEND[step]
    )
    raise TransferRefused(
        f"a transfer {step.value} must come from {allowed}; {actor.agency_id} is a "
        f"{actor.role.value} agency of {', '.join(actor.areas)}",
        code="transfer.wrong-actor",
    )


def check_team(directory: Directory, message: TransferComplete) -> None:
    for agency_id in message.case_team:
        try:
            entry = directory.active_agency(agency_id)
        except MappaError:
            entry = None
        if entry is None or message.to_area not in entry.areas:
            raise TransferRefused(
                f"case team member {agency_id} is not an active agency of {message.to_area}",
                code="transfer.bad-team",
            )


def check_request(
    directory: Directory,
    message: TransferRequest,
    *,
    open_transfer: TransferRecord | None,
    owner: str | None = None,
) -> None:
    if owner is not None and owner != message.from_area:
        raise TransferRefused(
            f"the case is managed by {owner} after an earlier transfer; only {owner} can "
            f"ask to move it, not {message.from_area}",
            code="transfer.not-owner",
        )
    if open_transfer is not None:
        raise TransferRefused(
            f"transfer {open_transfer.transfer_id} of this subject from "
            f"{open_transfer.from_area} to {open_transfer.to_area} is still "
            f"{open_transfer.state.value}; finish or cancel it before requesting another",
            code="transfer.already-open",
        )
    try:
        lead = directory.agency(message.lead_agency)
    except MappaError:
        lead = None
    if (
        lead is None
        or not lead.role.is_responsible_authority
        or message.from_area not in lead.areas
    ):
        raise TransferRefused(
            f"lead agency {message.lead_agency} must be a Responsible Authority agency of "
            f"{message.from_area}",
            code="transfer.bad-lead",
        )


def check_step(
    directory: Directory,
    message: TransferControl,
    *,
    sender: str,
    current: TransferRecord | None,
    open_transfer: TransferRecord | None,
    owner: str | None = None,
) -> TransferState:
    """Raise ``TransferRefused`` unless ``sender`` may make this step now; return the
    state the transfer moves to. ``current`` is the registry's record of this transfer
    id, ``open_transfer`` the subject's open transfer, if any."""
    step = step_of(message)
    if message.actor_agency != sender:
        raise TransferRefused(
            f"the step names {message.actor_agency} as its actor but was signed by {sender}",
            code="transfer.actor-mismatch",
        )
    check_areas(directory, message)
    actor = directory.agency(sender)
    if isinstance(message, TransferRequest):
        if current is not None:
            raise TransferRefused(
                f"transfer id {message.transfer_id} is already in use ({current.state.value})",
                code="transfer.duplicate-id",
            )
        check_request(directory, message, open_transfer=open_transfer, owner=owner)
        _check_actor(step, actor, message, message.lead_agency)
        return TRANSITIONS[(None, step)]
    if current is None:
        raise TransferRefused(
            f"transfer {message.transfer_id} was never requested: nothing to {step.value}",
            code="transfer.unknown",
        )
    if (current.subject_ref, current.from_area, current.to_area) != (
        message.subject_ref,
        message.from_area,
        message.to_area,
    ):
        raise TransferRefused(
            f"the {step.value} does not match transfer {current.transfer_id} "
            f"(subject or areas differ from the request)",
            code="transfer.mismatch",
        )
    after = TRANSITIONS.get((current.state, step))
    if after is None:
        raise TransferRefused(
            f"transfer {current.transfer_id} is {current.state.value}: "
            f"a {step.value} is not possible from there",
            code="transfer.invalid-transition",
        )
    _check_actor(step, actor, message, current.lead_agency)
    if isinstance(message, TransferComplete):
        check_team(directory, message)
    if isinstance(message, TransferComplete) and date.fromisoformat(
        message.completed_on
    ) < date.fromisoformat(current.move_date):
        raise TransferRefused(
            f"transfer {current.transfer_id} cannot complete on {message.completed_on}, "
            f"before the move date {current.move_date}",
            code="transfer.before-move-date",
        )
    return after


def check_notice(
    directory: Directory, message: TransferControl, *, sender: str, recipient: AgencyEntry
) -> TransferState:
    """A receiving-area agency outside the RA and co-ordination unit is told only of a
    completion (summary view), from its own area's co-ordinator: it needs that to know
    the handover items that follow are authorised."""
    if not isinstance(message, TransferComplete):
        raise TransferRefused(
            f"only a completion is notified in summary; got a {step_of(message).value}",
            code="transfer.invalid-transition",
        )
    if message.actor_agency != sender:
        raise TransferRefused(
            f"the step names {message.actor_agency} as its actor but was signed by {sender}",
            code="transfer.actor-mismatch",
        )
    check_areas(directory, message)
    actor = directory.agency(sender)
    _check_actor(TransferStep.COMPLETE, actor, message, message.lead_agency)
    check_team(directory, message)
    if message.to_area not in recipient.areas:
        raise TransferRefused(
            f"{recipient.agency_id} is not in {message.to_area}: a completion notice is "
            "for the receiving area's agencies",
            code="transfer.wrong-area",
        )
    return TransferState.COMPLETED
