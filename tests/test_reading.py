"""A part's kept reader never skips a record because a step in between failed: a failed
batch is read again from the stored offsets, also when those offsets could not be read
at the moment of the failure (the reader is then reopened from them at the next poll)."""

from __future__ import annotations

import uuid

import pytest

from broker.errors import StoreUnavailable
from broker.kafka.reading import KeptReader
from broker.kafka.transport import KafkaTransport, Offsets, PartitionReader, Record


class Failing(Exception):
    """What a batch's handling raised."""


async def test_a_failed_batch_is_read_again_even_when_the_offsets_are_unavailable(
    transport: KafkaTransport,
) -> None:
    topic = f"t{uuid.uuid4().hex[:12]}.reading"
    await transport.ensure_topics([topic], partitions=1)
    for n in range(3):
        await transport.send(topic, f"record {n}".encode(), key=b"k")

    stored: Offsets = {}
    store_down = False

    def offsets() -> Offsets:
        if store_down:
            raise StoreUnavailable("the store is locked")
        return dict(stored)

    async def open_reader() -> PartitionReader:
        return await transport.reader([topic], offsets())

    reader = KeptReader("test", open_reader, offsets)
    with pytest.raises(RuntimeError, match="not started"):
        async with reader.batch(100):
            pass
    await reader.start()
    try:

        async def read_all() -> list[Record]:
            records: list[Record] = []
            for _ in range(20):
                async with reader.batch(100) as got:
                    records += got
                if records and not got:
                    break
            return records

        assert [r.value for r in await read_all()] == [b"record 0", b"record 1", b"record 2"]
        # A batch fails with nothing stored: the reader goes back to the beginning.
        with pytest.raises(Failing):
            async with reader.batch(100):
                raise Failing
        assert [r.value for r in await read_all()] == [b"record 0", b"record 1", b"record 2"]
        # The first record kept; a batch fails while the store cannot say so: the reader
        # is dropped, and the next poll opens one where the store says.
        stored = {(topic, 0): 1}
        store_down = True
        with pytest.raises(Failing):
            async with reader.batch(100):
                raise Failing
        store_down = False
        assert [r.value for r in await read_all()] == [b"record 1", b"record 2"]
    finally:
        await reader.stop()
