"""An agency's transfer desk: send transfer steps, read the transfer topic, hand over.

One desk per agency, beside its gateway and sharing its store and outbox relay. Sending
a step checks it (``rules``), seals it for the co-ordinators and RA agencies of both
areas (and, for a completion, a summary for the receiving area's other parties),
records it in the case registry and queues it with its audit events in one
transaction. Reading applies the steps others send (``receiver``); when this agency is
the lead of a completed transfer it re-shares the case history (``handover``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError

from broker.crypto.encoding import jcs
from broker.errors import KeyUnavailable, MappaError, SchemaError, TransferRefused
from broker.gateway import AgencyGateway
from broker.gateway.cases import CaseRegistry
from broker.gateway.publish import CONTENT_TYPE_HEADER
from broker.gateway.receive import Handled, Handling
from broker.kafka.transport import KafkaTransport, PartitionReader
from broker.transfer.envelopes import STEP_PURPOSE, lawful_basis_text, seal_for_transfers
from broker.transfer.handover import Reshared, reshare_case
from broker.transfer.receiver import CASE_HOLDERS, TransferReceiver, own_area
from broker.transfer.rules import check_step, step_of
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import ViewKind
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
# What a desk remembers having handled between two poll_once calls.
BACKLOG_LIMIT = 1000


class TransferPending(KeyUnavailable):
    """Sent, not yet confirmed: retriable, and never a reason to send it again blindly."""

    code = "transfer.pending"


class TransferDesk:
    def __init__(
        self,
        gateway: AgencyGateway,
        transport: KafkaTransport,
        *,
        agreements: Mapping[str, Agreement],
    ) -> None:
        self.gateway = gateway
        self.ctx = gateway.ctx
        self.registry = CaseRegistry(self.ctx.store)
        self.receiver = TransferReceiver(self.ctx, self.registry)
        gateway.topic_receivers[self.ctx.topics.transfers] = self.receiver
        self._transport = transport
        # Each area's agreement: the handover follows the receiving area's.
        self._agreements = dict(agreements)
        self._reader: PartitionReader | None = None
        self._lock = asyncio.Lock()  # one poll at a time: a step waits while others read
        self._backlog: list[Handled] = []
        self.reshared: list[Reshared] = []

    @property
    def agency_id(self) -> str:
        return self.ctx.agency_id

    async def start(self) -> None:
        if self._reader is None:
            self._reader = await self._transport.reader(
                [self.ctx.topics.transfers], self.ctx.store.offsets()
            )

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    # -- reading ----------------------------------------------------------------------------
    async def poll_once(self, timeout_ms: int = 200) -> list[Handled]:
        """Read and apply what is on the topic; returns everything handled since the last
        call (including what was handled while a step of ours waited to be ordered)."""
        await self._poll(timeout_ms)
        out, self._backlog = self._backlog, []
        return out

    async def _poll(self, timeout_ms: int) -> list[Handled]:
        async with self._lock:
            if self._reader is None:
                raise RuntimeError(f"transfer desk {self.agency_id} not started")
            records = await self._reader.poll(timeout_ms=timeout_ms)
            try:
                with self.ctx.store.transaction():
                    handled = [self.receiver.handle(r) for r in records]
                    self.reshared += self._hand_over()
            except BaseException:
                await self._reader.rewind(self.ctx.store.offsets())
                raise
        await self.gateway.relay.flush()
        # Kept for the next poll_once; bounded, for a desk only ever driven by steps.
        self._backlog = [*self._backlog, *handled][-BACKLOG_LIMIT:]
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set (a service's background loop, beside the gateway's)."""
        while not stop.is_set():
            await self.poll_once()

    def _hand_over(self) -> list[Reshared]:
        """Re-share for every completed transfer this agency leads (idempotent)."""
        out: list[Reshared] = []
        for record in self.registry.records(state=TransferState.COMPLETED):
            if record.lead_agency != self.agency_id:
                continue
            agreement = self._agreements.get(record.to_area)
            if agreement is None:
                continue  # no agreement of the receiving area known here: nothing it allows
            out += reshare_case(
                self.ctx,
                self.registry,
                record,
                agreement=agreement,
                now=self.ctx.clock(),
                readers={self.ctx.topics.transfers: self.receiver},
            )
        return out

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
        return await self._follow_up(TransferAccept, transfer_id, user=user, reason=reason)

    async def refuse(self, transfer_id: str, *, user: str, reason: str) -> TransferRecord:
        return await self._follow_up(TransferRefuse, transfer_id, user=user, reason=reason)

    async def cancel(self, transfer_id: str, *, user: str, reason: str) -> TransferRecord:
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

    def _recipients(self, message: TransferControl) -> list[tuple[ViewKind, bytes, list[str]]]:
        directory = self.ctx.directory
        full = sorted(
            {
                a.agency_id
                for area in (message.from_area, message.to_area)
                # The sender too: it applies its own step when it comes back in order.
                for a in directory.agencies(area=area, roles=CASE_HOLDERS)
            }
        )
        views = [(ViewKind.FULL, jcs(message.model_dump(mode="json")), full)]
        if isinstance(message, TransferComplete):
            # Need to know: only the receiving case team's other members hear of it.
            parties = {p.agency_id for p in self.ctx.policy.agreement.parties}
            told = sorted(
                a.agency_id
                for a in directory.agencies(area=message.to_area)
                if a.role not in CASE_HOLDERS
                and a.agency_id in parties
                and a.agency_id in message.case_team
            )
            summary = message.model_copy(update={"reason": "case transferred", "open_actions": ()})
            views.append((ViewKind.SUMMARY, jcs(summary.model_dump(mode="json")), told))
        return views

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
                first = exc.errors()[0]
                raise SchemaError(
                    f"transfer step invalid at {'.'.join(str(p) for p in first['loc'])}: "
                    f"{first['msg']}",
                    code="transfer.invalid",
                ) from None
            state = check_step(
                ctx.directory,
                message,
                sender=self.agency_id,
                current=self.registry.get(message.transfer_id),
                open_transfer=self.registry.open_for(message.subject_ref),
                owner=self.registry.owner(message.subject_ref),
            )
            views = self._recipients(message)
            message_id, value = seal_for_transfers(
                ctx,
                now=now,
                area=message.from_area,
                message_type=step_of(message).message_type,
                schema_version=message.schema_version,
                subject_ref=message.subject_ref,
                purpose=f"{STEP_PURPOSE}{message.transfer_id}",
                isa=(agreement.id, agreement.version),
                views=views,
            )
        except MappaError as exc:
            with ctx.store.transaction():
                ctx.audit.emit(
                    AuditAct.REFUSAL,
                    Operation.PUBLISH,
                    Outcome.REFUSED,
                    area=own_area(ctx, message) if message else None,
                    subject_ref=subject_ref or (message.subject_ref if message else None),
                    message_type=step_of(message).message_type if message else None,
                    reason_code=exc.code,
                    reason=exc.reason,
                )
            await self.gateway.relay.flush()
            raise
        step = step_of(message)
        common: dict[str, Any] = {
            "area": own_area(ctx, message),
            "subject_ref": message.subject_ref,
            "message_id": message_id,
            "message_type": step.message_type,
            "isa_id": agreement.id,
            "isa_version": agreement.version,
            "purpose": f"{STEP_PURPOSE}{message.transfer_id}",
            "lawful_basis": lawful_basis_text(ctx.entry),
            "user": message.actor_user,
        }
        with ctx.store.transaction():
            ctx.store.enqueue(
                ctx.topics.transfers,
                value,
                key=message.subject_ref.encode(),
                headers=[CONTENT_TYPE_HEADER],
            )
            ctx.audit.emit(
                AuditAct.COLLECTION,
                Operation.PUBLISH,
                reason=f"transfer {message.transfer_id} {step.value} (to {state.value})",
                **common,
            )
            for kind, _, agencies in views:
                for agency in agencies:
                    ctx.audit.emit(
                        AuditAct.DISCLOSURE,
                        Operation.PUBLISH,
                        recipient=agency,
                        view=kind,
                        **common,
                    )
        await self.gateway.relay.flush()
        return await self._ordered(message_id, message.transfer_id)

    async def _ordered(self, message_id: str, transfer_id: str) -> TransferRecord:
        """Wait until our own step comes back off the topic and is applied.

        Every case holder, the sender included, applies the steps of one subject in the
        order of their partition, so all registries agree: a step that raced with
        another (a cancel against a completion) is refused everywhere, ours too."""
        deadline = time.monotonic() + ORDERING_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for h in await self._poll(timeout_ms=100):
                if h.message_id != message_id:
                    continue
                if h.handling is Handling.DELIVERED:
                    record = self.registry.get(transfer_id)
                    assert record is not None  # noqa: S101 - just applied
                    return record
                raise TransferRefused(
                    f"the step was refused when it came to be applied: {h.reason}",
                    code=h.reason_code or TransferRefused.code,
                )
        raise TransferPending(
            f"step {message_id} of transfer {transfer_id} was sent but not yet seen back "
            f"within {ORDERING_TIMEOUT_SECONDS}s; `mappa transfer status` will show it"
        )
