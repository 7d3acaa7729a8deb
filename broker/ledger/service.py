"""The ledger service: reads ``mappa.audit``, verifies each event, appends, signs a checkpoint.

Each poll is one batch: events that verify are appended in arrival order in one
transaction; events that do not (bad signature, unknown agency, malformed) are
kept in ``rejected`` with the reason, never dropped. Verifying one record is the
ledger's one boundary: any exception on it, not only ``MappaError``, rejects that
record (an unforeseen one as ``record.unprocessable``, its reason naming the
exception's type only) and the batch goes on; only a database that cannot be used
just now (``INFRASTRUCTURE_FAILURES``) fails the batch. After a batch that grew the
log, the service signs a checkpoint over the new tree head. A batch that fails (the
database away or locked) is read again: the reader goes back to the stored offsets.

After each batch the ledger tells each agency which of its events it holds (appended
now, or before: a re-sent copy) and which it refused, in a signed ``LedgerReceipt``
on the receipts topic. An agency keeps each event, and sends it again, until the
ledger has said so; a receipt lost on the way is answered again when the event comes
again, so the ledger's own sending need not be durable.

Before it signs, the ledger proves the new head from its stored data (``self_watch``,
``watch``); when it cannot, it signs nothing, raises an alarm and halts: it appends and
reads nothing more (its offsets stay put: nothing is skipped) until a start finds the
ledger intact again. It also verifies itself whole every ``verify_every`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from broker.crypto.keys import PrivateKey
from broker.errors import INFRASTRUCTURE_FAILURES, MappaError, Unprocessable
from broker.gateway.audit import verify_event
from broker.gateway.receipts import ledger_receipt_record
from broker.kafka.parts import AsyncPart
from broker.kafka.reading import KeptReader
from broker.kafka.transport import KafkaTransport, PartitionReader, Record
from broker.ledger.alarms import Alarm
from broker.ledger.checkpoint import CheckpointSigner
from broker.ledger.self_watch import SelfWatch, halted_error
from broker.ledger.store import Item, LedgerStore
from broker.ledger.witnessing import Witnessing
from broker.trust.directory import Directory
from schemas.common import AGENCY_ID_PATTERN, UUID_PATTERN, format_timestamp
from schemas.receipt import MAX_RECEIPTED_EVENTS, LedgerReceipt, RefusedEvent

log = logging.getLogger(__name__)
_AGENCY_ID = re.compile(AGENCY_ID_PATTERN)
_UUID = re.compile(UUID_PATTERN)


class LedgerService(AsyncPart):
    """The ledger's reader of the audit topic. ``async with service:`` reads from where
    the store says it stopped and stops reading on exit; ``handle_batch`` appends
    without Kafka (tests feed records straight in)."""

    def __init__(
        self,
        *,
        store: LedgerStore,
        directory: Directory,
        transport: KafkaTransport,
        topic: str,
        signer: CheckpointSigner | None = None,
        clock: Callable[[], datetime] | None = None,
        receipts: tuple[str, PrivateKey] | None = None,
        verify_every: float = 0.0,
    ) -> None:
        self.store = store
        self.directory = directory
        self.signer = signer
        self._clock = clock
        self._transport = transport
        self._topic = topic
        # Where and with which key to receipt each batch; None: no receipts (tests).
        self._receipts = receipts
        # One poll at a time: a reread (the broker replaced) waits for the poll.
        self._reading = KeptReader("ledger", self._open_reader, store.offsets)
        self._held: dict[str, list[str]] = defaultdict(list)
        self._refused: dict[str, list[RefusedEvent]] = defaultdict(list)
        # Who cosigns each checkpoint (``witnessing``); None: nobody is asked (set by the
        # deployment when it holds a witness policy).
        self.witnessing: Witnessing | None = None
        # The ledger watching itself before each checkpoint, and halting on a failure
        # (``self_watch``); a service that signs nothing has nothing to watch.
        self.watch = (
            SelfWatch(store=store, signer=signer, clock=clock)
            if signer is not None and clock is not None
            else None
        )
        # Seconds between scheduled whole-ledger verifies (0: none), and the task running them.
        self._verify_every = verify_every
        self._verifying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading the audit topic where the store says it stopped (from its
        beginning if the broker is another cluster than the one read before), and the
        scheduled verify. Halted (an alarm open), it first verifies the whole ledger and
        runs only if it is intact; else it holds, reading nothing. Idempotent."""
        if self.watch is not None:
            self.watch.go_on()
            if self.watch.halted is not None:
                await asyncio.to_thread(self.watch.resume_if_intact)
            if self._verify_every > 0 and self._verifying is None:
                self._verifying = asyncio.create_task(self._verify_on_schedule(self.watch))
        await self._reading.start()

    @property
    def halted(self) -> Alarm | None:
        """The open alarm that halts this ledger, if any (``self_watch``)."""
        return self.watch.halted if self.watch is not None else None

    async def _verify_on_schedule(self, watch: SelfWatch) -> None:
        """Verify the whole ledger every ``verify_every`` seconds until stopped; a verify
        that finds it tampered raises the alarm (``SelfWatch.verify``)."""
        while True:
            await asyncio.sleep(self._verify_every)
            try:
                await asyncio.to_thread(watch.verify)
            except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
                log.warning("ledger: the scheduled verify did not finish (%s)", type(exc).__name__)

    async def reread(self) -> None:
        """The broker was replaced under the ledger: read from where the new log begins
        (events held already are recognised by their id, and receipted again). If the
        new reader cannot be opened yet, the next poll opens it."""
        await self._reading.reread()

    async def _open_reader(self) -> PartitionReader:
        store, cluster = self.store, self._transport.cluster_id
        known = store.broker_cluster()
        if known != cluster:
            if known is not None:
                log.warning(
                    "ledger: the broker is another cluster (%s, was %s): reading the audit "
                    "topic again from its beginning",
                    cluster,
                    known,
                )
            store.forget_offsets()
            store.set_broker_cluster(cluster)
        return await self._transport.reader(
            [self._topic], store.offsets(), on_lost=store.forget_offsets
        )

    async def stop(self) -> None:
        """Stop reading and the scheduled verify. Idempotent; the store stays open (its
        owner closes it)."""
        task, self._verifying = self._verifying, None
        if task is not None:
            if self.watch is not None:
                self.watch.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._reading.stop()

    def _verified(self, record: Record) -> Item | None:
        """The record's verified event to append, or None: it was rejected (kept with
        the reason, its read offset moved past it). Raises only
        ``INFRASTRUCTURE_FAILURES``."""
        at = (record.topic, record.partition, record.offset)
        try:
            signed = verify_event(record.value, self.directory, received_ms=record.timestamp_ms)
        except INFRASTRUCTURE_FAILURES:
            raise
        except MappaError as exc:
            self._reject(record.value, at, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - the boundary: rejected, never stuck
            log.error(  # noqa: TRY400 - no traceback: it may quote the record
                "audit record at %s could not be processed (%s)", at, type(exc).__name__
            )
            self._reject(record.value, at, Unprocessable.of(exc))
            return None
        self._held[signed.event.agency].append(signed.event.event_id)
        return (signed, record.value, at)

    def _reject(self, raw: bytes, at: tuple[str, int, int], exc: MappaError) -> None:
        log.warning("audit record refused at %s: %s", at, exc.code)
        self.store.reject(raw, at=at, code=exc.code, reason=exc.reason)
        claimed = _claimed(raw)
        if claimed is not None:
            self._refused[claimed[0]].append(
                RefusedEvent(event_id=claimed[1], reason_code=exc.code)
            )

    def handle(self, record: Record) -> None:
        """Verify and append one record (or keep it as rejected), without a checkpoint.
        Raises ``VerificationError`` (``ledger.halted``), touching nothing, while halted."""
        if (alarm := self.halted) is not None:
            raise halted_error(alarm)
        item = self._verified(record)
        if item is not None:
            self.store.append_batch([item])

    def handle_batch(self, records: list[Record]) -> int:
        """Verify each record; append those that verify in one transaction, keep the
        others as rejected with the reason; sign a checkpoint if the log grew. Returns
        how many entries were added. What it held and refused waits for
        ``send_receipts`` (until the next batch). Raises ``VerificationError``
        (``directory.expired``), touching no record, while the directory is expired:
        ``poll_once`` then reads the batch again. Raises ``VerificationError``
        (``ledger.halted``), touching no record, while halted, and after appending if the
        watch before the checkpoint fails (which halts it): what was appended is kept,
        unsigned, and the rest is read again once it runs."""
        self._held.clear()
        self._refused.clear()
        if (alarm := self.halted) is not None:
            raise halted_error(alarm)
        if records:
            # Held, not refused, while the directory is expired: it may miss revocations,
            # and what it would refuse for good may pass once a newer version is here.
            self.directory.check_current(self._clock() if self._clock else datetime.now(UTC))
        items = [i for i in (self._verified(r) for r in records) if i is not None]
        added = self._append(items) if items else 0
        if added:
            self.checkpoint()
        return added

    def _append(self, items: list[Item]) -> int:
        """Append verified events in one transaction; if that fails for a reason that is
        not the database's, one at a time, rejecting any that cannot be appended (so no
        one event holds the batch back). Returns how many were added."""
        try:
            return self.store.append_batch(items)
        except INFRASTRUCTURE_FAILURES:
            raise
        except Exception as exc:  # noqa: BLE001 - found out one at a time below
            log.error(  # noqa: TRY400 - no traceback: it may quote an event
                "a batch of %d events failed (%s): one at a time", len(items), type(exc).__name__
            )
        added = 0
        for item in items:
            try:
                added += self.store.append_batch([item])
            except INFRASTRUCTURE_FAILURES:
                raise
            except Exception as exc:  # noqa: BLE001 - the boundary: rejected, never stuck
                signed, raw, at = item
                self._held[signed.event.agency].remove(signed.event.event_id)
                if at is not None:  # None: fed straight in, not read from Kafka
                    self._reject(raw, at, Unprocessable.of(exc))
        return added

    def checkpoint(self) -> str | None:
        """Sign the current tree head unless it is already signed; returns the note.
        Raises ``VerificationError`` (``ledger.halted``), signing nothing, while halted or
        if the stored data does not prove the head (``SelfWatch.before_signing``)."""
        if self.signer is None or self._clock is None:
            return None
        size = self.store.tree_size
        latest = self.store.latest_checkpoint()
        if latest is not None and latest[0] >= size:
            return latest[2]
        root = self.store.tree_root()
        if self.watch is not None:  # proves the head from the stored data, or halts
            self.watch.before_signing(size, root)
        time = format_timestamp(self._clock())
        note = self.signer.sign(size, root, time, self.store.index_digest)
        self.store.add_checkpoint(size, time, note)
        if self.witnessing is not None:  # a witness down or refusing holds nothing up
            self.witnessing.gather(size, note, self._clock())
        return note

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Read one batch, ``handle_batch`` it and receipt it; returns how many records
        were read. A batch that fails is read again from the stored offsets (and the
        failure raised). Halted, it reads nothing (0 after ``timeout_ms``): its offsets
        stay where they are. Raises ``RuntimeError`` before ``start()``."""
        if self.halted is not None:
            await asyncio.sleep(timeout_ms / 1000)
            return 0
        async with self._reading.batch(timeout_ms) as records:
            try:
                # Off the event loop: a database that makes the batch wait (its write lock
                # held elsewhere, a server slow to answer) must not stall the agencies
                # served beside the ledger. The store is safe to share between threads.
                await asyncio.to_thread(self.handle_batch, records)
            except BaseException:
                self._held.clear()
                self._refused.clear()
                raise
        await self.send_receipts()
        return len(records)

    async def send_receipts(self) -> int:
        """Send the receipts of what was handled since the last call: per agency, the
        events held and refused. Best effort: an event whose receipt is lost comes again,
        and is receipted then. Returns how many receipts went."""
        held, refused = dict(self._held), dict(self._refused)
        self._held.clear()
        self._refused.clear()
        if self._receipts is None or self._clock is None:
            return 0
        topic, key = self._receipts
        at, size = format_timestamp(self._clock()), self.store.size()
        values = []
        for agency in sorted(held.keys() | refused.keys()):
            ids, nays = held.get(agency, []), refused.get(agency, [])
            for start in range(0, max(len(ids), len(nays)), MAX_RECEIPTED_EVENTS):
                end = start + MAX_RECEIPTED_EVENTS
                receipt = LedgerReceipt(
                    agency=agency,
                    held=tuple(ids[start:end]),
                    refused=tuple(nays[start:end]),
                    tree_size=size,
                    time=at,
                )
                values.append(ledger_receipt_record(receipt, key))
        if not values:
            return 0
        results = await self._transport.send_many([(topic, value, None, ()) for value in values])
        failed = [e for e in results if e is not None]
        if failed:
            log.warning("%d ledger receipts not sent (they go again with the events): %s",
                        len(failed), failed[0])  # fmt: skip
        return len(values) - len(failed)

    async def catch_up(self, size: int, *, within: float) -> int:
        """Poll until the log holds ``size`` entries or ``within`` seconds have passed;
        returns how many it holds (a caller that needs them all says what is missing)."""
        deadline = time.monotonic() + within
        while self.store.size() < size and time.monotonic() < deadline:
            await self.poll_once(timeout_ms=50)
        return self.store.size()


def _claimed(raw: bytes) -> tuple[str, str] | None:
    """The agency and event id a refused record claims, to tell that agency its event
    was refused; None if it claims none. Unverified: the claimed agency verifies the
    ledger's receipt and matches the id against what it sent itself."""
    try:
        event = json.loads(raw)["event"]
        agency, event_id = event["agency"], event["event_id"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if (
        isinstance(agency, str)
        and isinstance(event_id, str)
        and _AGENCY_ID.fullmatch(agency)
        and _UUID.fullmatch(event_id)
    ):
        return agency, event_id
    return None
