"""An agency's gateway onto the broker: publish, receive, consult, relay.

The agency-specific adapters in ``agency_adapters`` wrap one of these and map
their agency's own record formats to canonical messages and back.

One reader serves every topic the gateway reads: its area topics, and any topic
another part plugged its rules into before the gateway started (the transfer desk's
``<ns>.transfers``). ``async with gateway:`` starts the reader and stops it on exit.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from broker.errors import INFRASTRUCTURE_FAILURES, MappaError, PolicyDenied, SchemaError
from broker.gateway.agency import AgencyContext
from broker.gateway.audit import header_fields
from broker.gateway.group_commit import GroupCommit
from broker.gateway.handled import Handled
from broker.gateway.justification import (
    JUSTIFICATION_MISSING,
    justification_problem,
    normalised,
)
from broker.gateway.lifecycle import Lifecycle
from broker.gateway.publish import GroundsChanged, Publisher, PublishResult
from broker.gateway.receive import Opened, Receiver, TopicRules
from broker.gateway.relay import OutboxRelay, ResendPolicy
from broker.gateway.sealing_pool import Sealer, SealHere
from broker.gateway.store import InboxItem, OutboxRow
from broker.gateway.tracking import LEDGER, Tracked, age
from broker.kafka.parts import AsyncPart
from broker.kafka.reading import KeptReader
from broker.kafka.transport import KafkaTransport, PartitionReader, RecordRejected, TransportError
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import Classification
from schemas.messages import MessageBody

log = logging.getLogger(__name__)
# Records handled in one transaction: small enough that the workers prepare the next
# chunk while the loop handles this one, large enough that a commit is a small share.
HANDLE_CHUNK = 64
# How often a gateway looks for what nobody receipted in time: a due time is minutes
# away at the least, so a second's lateness does not matter, and the query is indexed.
RESEND_CHECK_SECONDS = 1.0
# How often a publication is decided again when what it was decided on keeps changing
# before its commit (broker.gateway.publish.GroundsChanged).
MAX_DECISIONS = 3


class AgencyGateway(AsyncPart):
    """One agency's way onto Kafka, with only its own keys (``ctx``)."""

    def __init__(
        self, ctx: AgencyContext, transport: KafkaTransport, *, sealer: Sealer | None = None
    ) -> None:
        self.ctx = ctx
        self._transport = transport
        self.publisher = Publisher(ctx)
        # Publications seal here, or in the deployment's worker pool, and commit in groups
        # (with the relay's marking of what it sent).
        self.sealer: Sealer = sealer or SealHere()
        self.commits = GroupCommit(ctx.store)
        self.receiver = Receiver(ctx)
        self.relay = OutboxRelay(
            ctx.store,
            transport,
            ResendPolicy.from_settings(ctx.settings),
            ctx.clock,
            on_set_aside=self._audit_set_aside,
            correlation=ctx.correlation,
            commits=self.commits,
        )
        # One poll at a time: a background poller and a caller waiting for its own
        # message (a transfer step) both poll.
        self._reading = KeptReader(f"gateway {ctx.agency_id}", self._open_reader, ctx.store.offsets)
        self._after_batch: list[Callable[[], None]] = []
        self._next_resend_check = datetime.min.replace(tzinfo=UTC)
        self._listeners: list[Callable[[Handled], None]] = []

    def _audit_set_aside(self, row: OutboxRow, error: RecordRejected) -> None:
        """Audit an outbox row the broker refuses for good (the relay set it aside). Not
        for a row of the audit topic itself: an audit event about an audit event that
        cannot be sent could meet the same fate; the relay's log line reports those."""
        ctx = self.ctx
        if row.topic == ctx.topics.audit:
            return
        ctx.audit.refusal(
            Operation.PUBLISH,
            error,
            reason=f"outbox row {row.seq} for {row.topic} ({len(row.value)} bytes) set aside: "
            f"{error.reason}",
        )

    @property
    def transport(self) -> KafkaTransport:
        """The connection this gateway sends through (as its agency's own principal where
        credentials are held per principal)."""
        return self._transport

    @property
    def agency_id(self) -> str:
        """The id of the agency this gateway acts for."""
        return self.ctx.agency_id

    @property
    def topics(self) -> list[str]:
        """What the gateway reads: its role's topic in each of its areas, the receipts
        topic, and every topic with rules of its own."""
        ctx = self.ctx
        own = {ctx.topics.for_role(area, ctx.entry.role) for area in ctx.entry.areas}
        return sorted(own | {ctx.topics.receipts} | set(self.receiver.topics_with_rules))

    def add_topic(self, topic: str, rules: TopicRules) -> None:
        """Also read ``topic``, by ``rules``. Raises ``RuntimeError`` once reading."""
        if self._reading.reading:
            raise RuntimeError(f"gateway {self.agency_id} is reading: add topics before start")
        self.receiver.add_rules(topic, rules)

    def after_each_batch(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every batch of records, inside the batch's transaction (so
        what it writes stands or falls with what the batch did)."""
        self._after_batch.append(hook)

    def on_handled(self, listener: Callable[[Handled], None]) -> Callable[[], None]:
        """Call ``listener`` with every record handled from now on, whoever polled it;
        returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def start(self) -> None:
        """Start reading where the store says it stopped, and send what the outbox holds.
        Idempotent. Raises ``TransportError`` when the transport is not started or the
        outbox cannot be sent (a reader already started stays started)."""
        await self._reading.start()
        await self.relay.flush()

    async def reread(self) -> None:
        """The broker was replaced under this gateway (the embedded one restarted with an
        empty log): read again from where the new log begins, and send again at once
        what no recipient has receipted yet. If the new reader cannot be opened yet, the
        next poll opens it. Raises ``TransportError`` then."""
        await self._reading.reread()
        try:
            await self.relay.flush()
        except TransportError as exc:  # the next poll's relay sends it
            log.info("%s: relay after the broker's restart: %s", self.agency_id, exc)

    async def _open_reader(self) -> PartitionReader:
        store, cluster = self.ctx.store, self._transport.cluster_id
        known = store.broker_cluster()
        if known != cluster:
            if known is not None:
                log.warning(
                    "%s: the broker is another cluster (%s, was %s): reading every topic again "
                    "from its beginning, and sending again what nobody has receipted",
                    self.agency_id,
                    cluster,
                    known,
                )
                with store.transaction():
                    self.relay.requeue_unreceipted(self.ctx.clock())
            store.forget_offsets()
            store.set_broker_cluster(cluster)
        return await self._transport.reader(
            self.topics, store.offsets(), on_lost=store.forget_offsets
        )

    async def stop(self) -> None:
        """Stop reading. Idempotent; the store stays open (the deployment closes it)."""
        await self._reading.stop()

    async def publish(
        self,
        message: MessageBody,
        *,
        purpose: str,
        user: str | None = None,
        classification: Classification = Classification.OFFICIAL_SENSITIVE,
        on_queued: Callable[[PublishResult], None] | None = None,
        relay: bool = True,
    ) -> PublishResult:
        """Authorise and lay out ``message`` (``Publisher.prepare``), seal it with the
        gateway's sealer (off the event loop where a worker pool seals), queue it with its
        audit records in a transaction shared with concurrent publications (each in a
        savepoint of its own), and answer once that transaction is durable; then relay,
        unless ``relay`` is false. If a transfer step, a case team or the agreement
        changed meanwhile, it is decided again. Returns the publication. ``on_queued``
        is called as ``Publisher.commit`` says. Raises the publisher's errors (see
        ``Publisher.prepare`` for which are audited as a refusal) or ``TransportError``
        (the envelopes are queued and go with the next relay)."""
        publisher = self.publisher
        for attempt in itertools.count(1):
            prepared = publisher.prepare(
                message, purpose=purpose, user=user, classification=classification
            )
            sealing = await self.sealer.seal(self.ctx, prepared.sealable, prepared.events)
            try:
                result = await self.commits.run(
                    functools.partial(publisher.commit, prepared, sealing, on_queued=on_queued)
                )
                break
            except GroundsChanged as exc:
                # Decided again on what holds now; a case cannot move this often.
                if attempt == MAX_DECISIONS:
                    message_id = prepared.result.message_id
                    self.ctx.audit.refusal(
                        Operation.PUBLISH, exc, message_id=message_id, **prepared.audit
                    )
                    raise
        publisher.published(prepared, prepared.sent(sealing))
        if relay:
            await self.relay.flush()
        return result

    async def poll_once(self, timeout_ms: int = 200) -> list[Handled]:
        """Read one batch and handle each record by its topic's rules; tell the
        listeners; relay. Returns what became of each record.

        The batch is handled in chunks of ``HANDLE_CHUNK`` records, each in one
        transaction (group commit; the after-batch hooks in the last): the workers
        prepare every chunk at once (``broker.gateway.preparing``), and the loop handles
        each as soon as its own is ready, while they prepare the next. If a chunk fails,
        nothing of it is kept and the reader goes back to the stored offsets, so its
        records and those after it are read again, and the failure is raised; the chunks
        before it stand, their offsets stored with them. Raises ``RuntimeError`` before
        ``start``, and ``TransportError`` if the relay fails (the batch is kept)."""
        handled: list[Handled] = []
        async with self._reading.batch(timeout_ms) as records:
            # An empty batch writes nothing: no transaction (a quiet reader polls often).
            chunks = [records[i : i + HANDLE_CHUNK] for i in range(0, len(records), HANDLE_CHUNK)]
            envelopes = [[r for r in c if r.topic != self.ctx.topics.receipts] for c in chunks]
            preparing = [asyncio.ensure_future(self.sealer.prepare(self.ctx, e)) for e in envelopes]
            try:
                for n, (chunk, mine, ahead) in enumerate(
                    zip(chunks, envelopes, preparing, strict=True)
                ):
                    prepared = await ahead
                    with self.receiver.preparing(mine, prepared), self.ctx.store.transaction():
                        handled += [self.receiver.handle(r) for r in chunk]
                        if n == len(chunks) - 1:
                            for hook in self._after_batch:
                                self._run_after_batch(hook)
            finally:
                for ahead in preparing:
                    ahead.cancel()
        for listener in list(self._listeners):
            for h in handled:
                listener(h)
        self.resend_overdue()
        await self.relay.flush()
        return handled

    def _run_after_batch(self, hook: Callable[[], None]) -> None:
        """One after-batch step, undone on its own if it fails for a reason that is not
        the database's: the batch's records stand (never read again and again for a
        step's fault), and the step, idempotent, runs again after the next batch."""
        try:
            with self.ctx.store.savepoint():
                hook()
        except INFRASTRUCTURE_FAILURES:
            raise
        except Exception as exc:  # noqa: BLE001 - the batch stands: see the docstring
            log.error(  # noqa: TRY400 - no traceback: it may quote a record
                "%s: an after-batch step failed (%s); it runs again after the next batch",
                self.agency_id,
                type(exc).__name__,
            )

    def resend_overdue(self) -> None:
        """At most every ``RESEND_CHECK_SECONDS``: queue again what nobody receipted in
        time, and report (audit, log) what was given up as undeliverable."""
        ctx = self.ctx
        now = ctx.clock()
        if now < self._next_resend_check:
            return
        self._next_resend_check = now + timedelta(seconds=RESEND_CHECK_SECONDS)
        with ctx.store.transaction():
            for row in self.relay.requeue_overdue(now):
                self._undeliverable(row, now)

    def _undeliverable(self, row: Tracked, now: datetime) -> None:
        ctx = self.ctx
        waited = age(row, now)
        if row.recipient == LEDGER:
            # An audit event about an audit event the ledger never took would meet the
            # same fate: the operator hears of it in the log instead.
            log.error(
                "%s: audit event %s never acknowledged by the ledger after %d sends over %s; "
                "given up",
                ctx.agency_id,
                row.message_id,
                row.attempts + 1,
                waited,
            )
            return
        log.warning(
            "%s: message %s undeliverable to %s: no receipt after %d sends over %s",
            ctx.agency_id,
            row.message_id,
            row.recipient,
            row.attempts + 1,
            waited,
        )
        ctx.audit.emit(
            AuditAct.DISCLOSURE,
            Operation.PUBLISH,
            Outcome.UNDELIVERABLE,
            **row.audit_fields(),
            message_id=row.message_id,
            recipient=row.recipient,
            reason_code="delivery.undeliverable",
            reason=f"no receipt after {row.attempts + 1} sends over {waited}",
        )

    async def consult(
        self, message_id: str, *, user: str, justification: str, sender: str | None = None
    ) -> Opened:
        """Open a delivered message for a person: ``sender``'s message ``message_id``, or
        without a sender the one message held with that id. Writes a consultation audit
        record; every refusal (no justification, unknown or ambiguous message, failed
        checks) is audited too. Returns the opened message. Raises ``PolicyDenied``
        (``consult.justification-missing``: fewer than ``MIN_JUSTIFICATION_CHARS``
        non-blank characters; ``consult.justification-invalid``: not a justification as
        ``broker.gateway.justification`` defines one), ``SchemaError``
        (``consult.not-found``: not in the inbox), ``AmbiguousMessage``
        (``inbox.ambiguous``: no sender given, and several senders' messages have the id),
        or the ``MappaError`` of a check the stored message no longer passes (see
        ``Receiver.reopen``). Raises ``TransportError`` if the audit record, kept either
        way, cannot be relayed: it then takes the place of the refusal or the result."""
        ctx = self.ctx
        item: InboxItem | None = None
        problem = justification_problem(justification)
        given = normalised(justification)
        try:
            item = ctx.store.inbox_item(message_id, sender=sender)
            if problem is not None:
                raise PolicyDenied(problem.reason, code=problem.code)
            if item is None:
                raise SchemaError(
                    f"no message {message_id} in {self.agency_id}'s inbox",
                    code="consult.not-found",
                )
            opened = self.receiver.reopen(item, now=ctx.clock(), at_consultation=True)
        except MappaError as exc:
            ctx.audit.refusal(
                Operation.CONSULT,
                exc,
                user=user,
                message_id=message_id if item else None,
                subject_ref=item.subject_ref if item else None,
                # Too short is kept as given, to show what was offered; text that is
                # not a justification (invisible, reordered) is not repeated in the log.
                justification=(given or None)
                if problem is None or problem.code == JUSTIFICATION_MISSING
                else None,
            )
            await self.relay.flush()
            raise
        h = opened.verified.header
        with ctx.store.transaction():
            ctx.audit.emit(
                AuditAct.CONSULTATION,
                Operation.CONSULT,
                user=user,
                justification=given,
                lawful_basis=h.lawful_basis,
                view=opened.view,
                **header_fields(h),
            )
        await self.relay.flush()
        return opened

    # -- lifecycle (s62 alteration and erasure; see broker.gateway.lifecycle) ------------------
    @property
    def lifecycle(self) -> Lifecycle:
        """Correction, erasure and re-share records, over this gateway's publisher."""
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
        """Publish a correction that supersedes an earlier message (an "alteration"), then
        relay, whether or not it was refused; returns the publication. Raises as
        ``Lifecycle.correct`` does, or ``TransportError`` if the relay fails."""
        try:
            return self.lifecycle.correct(
                original_message_id, corrected, purpose=purpose, user=user, reason=reason
            )
        finally:
            await self.relay.flush()

    async def erase_expired(
        self,
        *,
        now: datetime | None = None,
        user: str | None = None,
        message_ids: Sequence[str] | None = None,
    ) -> list[InboxItem]:
        """Erase inbox items past the agreement's retention (all, or ``message_ids``; an
        "erasure" record each, naming ``user``), then relay; returns the erased items.
        Raises as ``Lifecycle.erase_expired`` does, or ``TransportError`` if the relay
        fails (the erasure stands)."""
        try:
            return self.lifecycle.erase_expired(now=now, user=user, message_ids=message_ids)
        finally:
            await self.relay.flush()
