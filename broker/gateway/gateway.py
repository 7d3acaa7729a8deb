"""An agency's gateway onto the broker: publish, receive, consult, relay.

The agency-specific adapters in ``agency_adapters`` wrap one of these and map
their agency's own record formats to canonical messages and back.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from broker.errors import MappaError, PolicyDenied, SchemaError
from broker.gateway.agency import AgencyContext
from broker.gateway.lifecycle import Lifecycle
from broker.gateway.publish import Publisher, PublishResult
from broker.gateway.receive import Handled, Opened, Receiver
from broker.gateway.relay import OutboxRelay
from broker.gateway.store import InboxItem
from broker.kafka.transport import KafkaTransport, PartitionReader
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import Classification, parse_timestamp
from schemas.messages import MessageBody

# A consultation must say why; "x" is not a reason an inquiry would accept.
MIN_JUSTIFICATION_CHARS = 10
# "Blank" as JSON Schema's regex (ECMA-262 \s) has it, which is how the API documents the
# rule; Python's str.strip() would also strip control characters such as U+001F.
BLANK = "".join(
    (
        " \t\n\v\f\r\u00a0\u1680",
        *map(chr, range(0x2000, 0x200B)),
        "\u2028\u2029\u202f\u205f\u3000\ufeff",
    )
)


class AgencyGateway:
    def __init__(
        self, ctx: AgencyContext, transport: KafkaTransport, *, topics: list[str] | None = None
    ) -> None:
        self.ctx = ctx
        self._transport = transport
        self.topics = topics or sorted(
            {ctx.topics.for_role(area, ctx.entry.role) for area in ctx.entry.areas}
        )
        self.publisher = Publisher(ctx)
        self.receiver = Receiver(ctx)
        # Receivers for topics with their own rules (the transfer desk's, for its topic),
        # so a consultation re-verifies an item the way it was received.
        self.topic_receivers: dict[str, Receiver] = {}
        self.relay = OutboxRelay(ctx.store, transport)
        self._reader: PartitionReader | None = None

    @property
    def agency_id(self) -> str:
        return self.ctx.agency_id

    async def start(self) -> None:
        if self._reader is None:
            self._reader = await self._transport.reader(self.topics, self.ctx.store.offsets())
        await self.relay.flush()

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    async def publish(
        self,
        message: MessageBody,
        *,
        purpose: str,
        user: str | None = None,
        classification: Classification = Classification.OFFICIAL_SENSITIVE,
    ) -> PublishResult:
        result = self.publisher.publish(
            message, purpose=purpose, user=user, classification=classification
        )
        await self.relay.flush()
        return result

    async def poll_once(self, timeout_ms: int = 200) -> list[Handled]:
        if self._reader is None:
            raise RuntimeError(f"gateway {self.agency_id} not started")
        records = await self._reader.poll(timeout_ms=timeout_ms)
        try:
            # One transaction per batch (group commit); all or nothing.
            with self.ctx.store.transaction():
                handled = [self.receiver.handle(r) for r in records]
        except BaseException:
            await self._reader.rewind(self.ctx.store.offsets())
            raise
        await self.relay.flush()
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()

    async def consult(self, message_id: str, *, user: str, justification: str) -> Opened:
        """Open a delivered message for a person. Writes a consultation audit record;
        every refusal (no justification, unknown message, failed checks) is audited too."""
        ctx = self.ctx
        item = ctx.store.inbox_item(message_id)
        try:
            if len(justification.strip(BLANK)) < MIN_JUSTIFICATION_CHARS:
                raise PolicyDenied(
                    f"a justification of at least {MIN_JUSTIFICATION_CHARS} characters is "
                    "required to open a record",
                    code="consult.justification-missing",
                )
            if item is None:
                raise SchemaError(
                    f"no message {message_id} in {self.agency_id}'s inbox",
                    code="consult.not-found",
                )
            # Re-verified from the stored bytes: the local database is not trusted either.
            receiver = self.topic_receivers.get(item.topic, self.receiver)
            verified = receiver.verify(
                item.envelope, topic=item.topic, record_time=parse_timestamp(item.received_at)
            )
            opened = receiver.open_verified(verified, today_from=ctx.clock(), at_consultation=True)
        except MappaError as exc:
            with ctx.store.transaction():
                ctx.audit.emit(
                    AuditAct.REFUSAL,
                    Operation.CONSULT,
                    Outcome.REFUSED,
                    user=user,
                    message_id=message_id if item else None,
                    subject_ref=item.subject_ref if item else None,
                    justification=justification.strip(BLANK) or None,
                    reason_code=exc.code,
                    reason=exc.reason,
                )
            await self.relay.flush()
            raise
        h = opened.verified.header
        with ctx.store.transaction():
            ctx.audit.emit(
                AuditAct.CONSULTATION,
                Operation.CONSULT,
                user=user,
                justification=justification,
                area=h.area,
                subject_ref=h.subject_ref,
                message_id=h.message_id,
                message_type=h.message_type,
                isa_id=h.isa_id,
                isa_version=h.isa_version,
                purpose=h.purpose,
                lawful_basis=h.lawful_basis,
                view=opened.view,
            )
        await self.relay.flush()
        return opened

    # -- lifecycle (s62 alteration and erasure; see broker.gateway.lifecycle) ------------------
    @property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.ctx, self.publisher)

    async def correct(
        self,
        original_message_id: str,
        corrected: MessageBody,
        *,
        purpose: str,
        user: str,
        reason: str,
    ) -> PublishResult:
        """Publish a correction that supersedes an earlier message (an "alteration")."""
        try:
            return self.lifecycle.correct(
                original_message_id, corrected, purpose=purpose, user=user, reason=reason
            )
        finally:
            await self.relay.flush()

    async def erase_expired(self, *, now: datetime | None = None) -> list[InboxItem]:
        """Erase inbox items past the agreement's retention (an "erasure" record each)."""
        erased = self.lifecycle.erase_expired(now=now)
        await self.relay.flush()
        return erased
