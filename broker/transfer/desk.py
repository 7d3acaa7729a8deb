"""An agency's transfer desk: send transfer steps, and hand over a completed case.

One desk per agency, on its gateway: the desk plugs the transfer topic's rules
(``receiver``) into the gateway's one receiving path, so the gateway reads
``<ns>.transfers`` beside its area topics and applies the steps others send. Sending a
step checks it (``rules``), seals it for the co-ordinators and RA agencies of both
areas (and, for a completion, a summary for the receiving case team's other parties)
and queues it with its audit events in one transaction; the step takes effect when it
comes back off the topic in order. After every batch the gateway handles, the lead of
a completed transfer re-shares what it has not yet re-shared (``handover``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError

from broker.errors import KeyUnavailable, MappaError, SchemaError, TransferRefused, invalid
from broker.gateway import AgencyGateway
from broker.gateway.cases import CaseRegistry
from broker.gateway.handled import Handled, Handling
from broker.gateway.sealing import queue
from broker.transfer.envelopes import (
    STEP_PURPOSE,
    lawful_basis_text,
    seal_for_transfers,
    step_views,
)
from broker.transfer.handover import Reshared, reshare_case
from broker.transfer.receiver import TransferRules, own_area
from broker.transfer.rules import check_step, step_of
from schemas.audit import Operation
from schemas.isa import Agreement
from schemas.messages.base import PncId
from schemas.transfer import (
    TransferAccept,
    TransferCancel,
    TransferComplete,
    TransferControl,
    TransferRecord,
    TransferRefuse,
    TransferRequest,
    TransferState,
)

# How long a step waits to see itself ordered on the topic before reporting it pending.
ORDERING_TIMEOUT_SECONDS = 30
# The PNC id's shape (schemas.messages.base.PncId), checked before it is hashed.
_PNC_ID: TypeAdapter[str] = TypeAdapter(PncId)
# How long one poll waits while a step waits to come back.
ORDERING_POLL_MS = 100
# What becomes of a step when it comes back to be applied: taken, or refused there.
_OUTCOMES = (Handling.DELIVERED, Handling.REFUSED)


class TransferPending(KeyUnavailable):
    """Sent, not yet confirmed: retriable, and never a reason to send it again blindly."""

    code = "transfer.pending"


class TransferDesk:
    """An agency's transfer desk. Build it before its gateway starts reading."""

    def __init__(self, gateway: AgencyGateway, *, agreements: Mapping[str, Agreement]) -> None:
        self.gateway = gateway
        self.ctx = gateway.ctx
        self.registry = CaseRegistry(self.ctx.store)
        gateway.add_topic(
            self.ctx.topics.transfers, TransferRules(self.ctx, gateway.receiver, self.registry)
        )
        gateway.after_each_batch(self._hand_over)
        # Each area's agreement: the handover follows the receiving area's.
        self._agreements = dict(agreements)
        self.reshared: list[Reshared] = []

    @property
    def agency_id(self) -> str:
        return self.ctx.agency_id

    def _hand_over(self) -> None:
        """Re-share for every completed transfer this agency leads (idempotent); runs in
        the transaction of the gateway's batch."""
        for record in self.registry.records(state=TransferState.COMPLETED):
            if record.lead_agency != self.agency_id:
                continue
            agreement = self._agreements.get(record.to_area)
            if agreement is None:
                continue  # no agreement of the receiving area known here: nothing it allows
            self.reshared += reshare_case(
                self.ctx,
                self.registry,
                self.gateway.receiver,
                record,
                agreement=agreement,
                now=self.ctx.clock(),
            )

    # -- the steps --------------------------------------------------------------------------
    async def request(
        self,
        *,
        pnc_id: str,
        to_area: str,
        move_date: date,
        reason: str,
        user: str,
        open_actions: Sequence[str] = (),
        lead_agency: str | None = None,
        registered_sex_offender: bool = False,
    ) -> TransferRecord:
        """Ask ``to_area`` to take the case over (this agency's area gives it). Returns
        the record once the step is applied; raises ``SchemaError`` (``transfer.invalid``),
        ``TransferRefused`` (``transfer.*``, audited) or ``TransferPending``."""
        ctx = self.ctx
        try:
            _PNC_ID.validate_python(pnc_id)
        except ValidationError:
            raise SchemaError(
                "pnc_id must be a PNC id such as 2011/0456789K", code="transfer.invalid"
            ) from None
        subject_ref = ctx.subject_key.reference(pnc_id)
        return await self._send(
            lambda: TransferRequest(
                transfer_id=str(uuid.uuid4()),
                subject_ref=subject_ref,
                from_area=ctx.entry.areas[0],
                to_area=to_area,
                move_date=move_date.isoformat(),
                reason=reason,
                open_actions=tuple(open_actions),
                lead_agency=lead_agency or ctx.agency_id,
                actor_agency=ctx.agency_id,
                actor_user=user,
                requested_on=ctx.clock().date().isoformat(),
                registered_sex_offender=registered_sex_offender,
            ),
            subject_ref=subject_ref,
        )

    async def accept(self, transfer_id: str, *, user: str, reason: str) -> TransferRecord:
        """The receiving co-ordinator accepts. Returns and raises as ``request``."""
        return await self._follow_up(TransferAccept, transfer_id, user=user, reason=reason)

    async def refuse(self, transfer_id: str, *, user: str, reason: str) -> TransferRecord:
        """The receiving co-ordinator refuses. Returns and raises as ``request``."""
        return await self._follow_up(TransferRefuse, transfer_id, user=user, reason=reason)

    async def cancel(self, transfer_id: str, *, user: str, reason: str) -> TransferRecord:
        """Withdraw a requested or accepted transfer. Returns and raises as ``request``."""
        return await self._follow_up(TransferCancel, transfer_id, user=user, reason=reason)

    async def complete(
        self,
        transfer_id: str,
        *,
        user: str,
        reason: str = "receiving area has taken the case over",
        completed_on: date | None = None,
        address_notified_on: date | None = None,
        case_team: Sequence[str] = (),
    ) -> TransferRecord:
        """The receiving co-ordinator records the take-over, naming the receiving case
        team. Returns and raises as ``request``."""
        on = completed_on or self.ctx.clock().date()
        return await self._follow_up(
            TransferComplete,
            transfer_id,
            user=user,
            reason=reason,
            completed_on=on.isoformat(),
            address_notified_on=address_notified_on.isoformat() if address_notified_on else None,
            case_team=tuple(case_team),
        )

    async def _follow_up(
        self,
        model: type[TransferControl],
        transfer_id: str,
        *,
        user: str,
        reason: str,
        **extra: str | tuple[str, ...] | None,
    ) -> TransferRecord:
        current = self.registry.get(transfer_id)
        subject_ref = current.subject_ref if current else None

        def build() -> TransferControl:
            if current is None:
                raise TransferRefused(
                    f"transfer {transfer_id} was never requested (or not to this agency): "
                    "nothing to act on",
                    code="transfer.unknown",
                )
            # The step-specific fields (a completion's dates) come in ``extra``.
            return model(
                transfer_id=transfer_id,
                subject_ref=current.subject_ref,
                from_area=current.from_area,
                to_area=current.to_area,
                move_date=current.move_date,
                reason=reason,
                open_actions=current.open_actions,
                lead_agency=current.lead_agency,
                actor_agency=self.agency_id,
                actor_user=user,
                **extra,  # type: ignore[arg-type]
            )

        return await self._send(build, subject_ref=subject_ref)

    async def _send(
        self, build: Callable[[], TransferControl], *, subject_ref: str | None
    ) -> TransferRecord:
        ctx = self.ctx
        now = ctx.clock()
        agreement = ctx.policy.agreement
        message: TransferControl | None = None
        try:
            try:
                message = build()
            except ValidationError as exc:
                raise invalid(exc, "transfer step", code="transfer.invalid") from None
            state = check_step(
                ctx.directory,
                message,
                sender=self.agency_id,
                current=self.registry.get(message.transfer_id),
                open_transfer=self.registry.open_for(message.subject_ref),
                owner=self.registry.owner(message.subject_ref),
            )
            sealed = seal_for_transfers(
                ctx,
                now=now,
                area=message.from_area,
                message_type=step_of(message).message_type,
                schema_version=message.schema_version,
                subject_ref=message.subject_ref,
                purpose=f"{STEP_PURPOSE}{message.transfer_id}",
                isa=(agreement.id, agreement.version),
                views=step_views(ctx, message),
            )
        except MappaError as exc:
            ctx.audit.refusal(
                Operation.PUBLISH,
                exc,
                area=own_area(ctx, message) if message else None,
                subject_ref=subject_ref or (message.subject_ref if message else None),
                message_type=step_of(message).message_type if message else None,
            )
            await self.gateway.relay.flush()
            raise
        step = step_of(message)
        common: dict[str, Any] = {
            "area": own_area(ctx, message),
            "subject_ref": message.subject_ref,
            "message_type": step.message_type,
            "isa_id": agreement.id,
            "isa_version": agreement.version,
            "purpose": f"{STEP_PURPOSE}{message.transfer_id}",
            "lawful_basis": lawful_basis_text(ctx.entry),
            "user": message.actor_user,
        }
        # Listen before the step can go out: whoever polls the gateway (the background
        # poller, another request's relay) may read it back and apply it before this
        # coroutine runs again, and the outcome must not be missed.
        seen: list[Handled] = []
        topic = ctx.topics.transfers

        def outcome(h: Handled) -> None:
            # Only the step applied or refused on the transfers topic; a receipt or a
            # redelivery of the same message id is not its outcome.
            if h.message_id == sealed.message_id and h.topic == topic and h.handling in _OUTCOMES:
                seen.append(h)

        stop_listening = self.gateway.on_handled(outcome)
        try:
            queue(
                ctx,
                [sealed],
                key=message.subject_ref.encode(),
                operation=Operation.PUBLISH,
                collection_reason=f"transfer {message.transfer_id} {step.value} (to {state.value})",
                **common,
            )
            await self.gateway.relay.flush()
            return await self._ordered(sealed.message_id, sealed.digest, message.transfer_id, seen)
        finally:
            stop_listening()

    def _settled_in_store(self, message_id: str, digest: str) -> Handled | None:
        """Our step's outcome as this agency's store records it, whichever process
        applied it: another process may hold the same store (`mappa serve` running while
        `mappa transfer` acts), read the step first and apply it, so that this gateway
        only ever sees it as a redelivery. None while nobody has applied it."""
        store = self.ctx.store
        topic = self.ctx.topics.transfers
        if store.seen_digest(self.agency_id, message_id) == digest:
            return Handled(Handling.DELIVERED, topic, message_id, self.agency_id, None)
        refused = store.deadletters.recall(self.agency_id, message_id, digest)
        if refused is not None:
            return Handled(
                Handling.REFUSED, topic, message_id, self.agency_id, None,
                reason_code=refused.reason_code,
                reason=f"refused as {refused.reason_code} (see `mappa deadletter list`)",
            )  # fmt: skip
        return None

    async def _ordered(
        self, message_id: str, digest: str, transfer_id: str, seen: list[Handled]
    ) -> TransferRecord:
        """Wait until our own step comes back off the topic and is applied (``seen``, filled
        by the listener ``_send`` registered before sending, or the store's record of it,
        ``_settled_in_store``).

        Every case holder, the sender included, applies the steps of one subject in the
        order of their partition, so all registries agree: a step that raced with
        another (a cancel against a completion) is refused everywhere, ours too."""
        deadline = time.monotonic() + ORDERING_TIMEOUT_SECONDS
        # Whoever polls the gateway (this loop, or its background poller) applies it.
        while not seen and time.monotonic() < deadline:
            if (settled := self._settled_in_store(message_id, digest)) is not None:
                seen.append(settled)
                break
            await self.gateway.poll_once(timeout_ms=ORDERING_POLL_MS)
        # Applied by another process on this store wins over our gateway's late refusal of
        # the same step (it read the step too, just after, and found it in use): it did
        # take effect. Looked up again only when not already known to be applied.
        if not seen or seen[0].handling is not Handling.DELIVERED:
            settled = self._settled_in_store(message_id, digest)
            if settled is not None and settled.handling is Handling.DELIVERED:
                seen.insert(0, settled)
        if seen and seen[0].handling is Handling.DELIVERED:
            record = self.registry.get(transfer_id)
            assert record is not None  # noqa: S101 - just applied
            return record
        if seen:
            raise TransferRefused(
                f"the step was refused when it came to be applied: {seen[0].reason}",
                code=seen[0].reason_code or TransferRefused.code,
            )
        raise TransferPending(
            f"step {message_id} of transfer {transfer_id} was sent but not yet seen back "
            f"within {ORDERING_TIMEOUT_SECONDS}s; `mappa transfer status` will show it"
        )
