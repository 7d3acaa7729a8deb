"""The ledger's search index: postings per append batch, sealed by a digest chain.

An officer finds entries by subject, agency, user, act, agreement or outcome. Instead
of one index row per entry per field (six B-tree inserts an entry), each append batch
writes one *posting* per distinct value: ``(segment, key, batch first seq) -> the
entries of the batch that carry it``, where ``key`` is the first 8 bytes of
``SHA-256(field 0x1F value)`` as a signed integer (small keys keep the index small;
two values sharing a key only widen the candidates, which a query re-checks against
each signed event). Time ranges are answered from each batch's earliest and latest
event time.

The index is a copy of what the signed events say, so it must not be editable
unseen: removing a posting would hide an entry from a subject access request. Each
batch's postings and time range are hashed into a chain,

    D(batch) = SHA-256("mappa-ledger-index/v1 chain" || D(previous) || C(batch))
    C(batch) = SHA-256("mappa-ledger-index/v1 batch" || first || count ||
                       min time || max time || "key offsets" lines sorted by key)

and every signed checkpoint carries the chain value at its size (``index`` line), so
``verify`` recomputes the chain from the stored postings and holds it to the
checkpoints, as it does the Merkle root. The chain value after each batch is also
stored with the batch, so a mismatch names the batch.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # verify's worker processes import this module: keep them light
    from schemas.audit import AuditEvent

# The fields a posting can be looked up by.
POSTED = ("subject_ref", "user", "isa_id", "agency", "act", "outcome")
# Postings are filed by segment of the log (``first_seq >> SEGMENT_BITS``) and looked
# up a segment at a time, so each append only touches the index pages of the newest
# segment (random keys all over the index would make every batch rewrite most of it).
SEGMENT_BITS = 16
GENESIS = hashlib.sha256(b"mappa-ledger-index/v1 genesis").digest()
_DOMAIN = b"mappa-ledger-index/v1"
_U64 = struct.Struct(">QQ")


@functools.lru_cache(maxsize=1 << 17)
def posting_key(field: str, value: str) -> int:
    """The key ``value`` of ``field`` is posted under: the first 8 bytes of
    ``SHA-256(field 0x1F value)`` as a signed big-endian integer."""
    digest = hashlib.sha256(f"{field}\x1f{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def decode_offsets(text: str) -> list[int]:
    """A posting's offsets from its text (decimals separated by spaces). Raises
    ``ValueError`` if the text is anything else."""
    return [int(o) for o in text.split(" ")]


@dataclass(frozen=True)
class BatchIndex:
    """One append batch's index (see ``build``): its entries' range and time range, and
    its postings."""

    first_seq: int
    count: int
    min_time: str
    max_time: str
    # Each posting as "key offsets", by key: what the content hash covers, and how the
    # postings are handed to the database.
    lines: list[str]


def build(first_seq: int, events: Sequence[AuditEvent]) -> BatchIndex:
    """The postings and time range of the events appended from ``first_seq`` on (one
    event at least: raises ``ValueError`` for none).

    On the append path of every event, so it is written for speed: a field at a time,
    grouped and keyed by the interpreter's C loops where the field's values allow it."""
    fields: list[dict[str, Any]] = [e.__dict__ for e in events]
    text = list(map(str, range(len(fields))))
    merged: dict[int, str] = {}
    for name in POSTED:
        occurring = _occurrences(list(map(operator.itemgetter(name), fields)), text)
        occurring.pop(None, None)
        # str(): act and outcome are StrEnums; their text is the value.
        keys = list(map(posting_key, itertools.repeat(name), map(str, occurring)))
        if len(set(keys)) == len(keys) and merged.keys().isdisjoint(keys):
            merged.update(zip(keys, occurring.values(), strict=True))
            continue
        for k, offsets in zip(keys, occurring.values(), strict=True):
            if k in merged:  # two values sharing a key (rare) share a posting
                both = {*decode_offsets(merged[k]), *decode_offsets(offsets)}
                merged[k] = " ".join(map(str, sorted(both)))
            else:
                merged[k] = offsets
    times = [row["time"] for row in fields]
    lines = [f"{k} {merged[k]}" for k in sorted(merged)]
    return BatchIndex(first_seq, len(fields), min(times), max(times), lines)


# Up to this many distinct values, a field is grouped by one C-speed pass per value.
_FEW = 8


def _occurrences(column: Sequence[Any], text: list[str]) -> dict[Any, str]:
    """Each distinct value of a column with where it occurs: its offsets' text, in order."""
    last = dict(zip(column, text, strict=True))
    if len(last) == len(column):  # every value once: subjects, mostly
        return last
    if len(last) <= _FEW:  # a handful of values: agency, act, outcome, ...
        return {
            v: " ".join(itertools.compress(text, map(operator.eq, column, itertools.repeat(v))))
            for v in last
        }
    groups: dict[Any, list[str]] = {}
    for value, offset in zip(column, text, strict=True):
        found = groups.get(value)
        if found is None:
            groups[value] = [offset]
        else:
            found.append(offset)
    return {v: " ".join(offsets) for v, offsets in groups.items()}


def chain(previous: bytes, batch: BatchIndex) -> bytes:
    """The chain value after ``batch``, from the one before it: ``link`` of its
    ``content_hash``."""
    return link(
        previous,
        content_hash(
            first_seq=batch.first_seq,
            count=batch.count,
            min_time=batch.min_time,
            max_time=batch.max_time,
            lines="\n".join(batch.lines),
        ),
    )


def content_hash(*, first_seq: int, count: int, min_time: str, max_time: str, lines: str) -> bytes:
    """A batch's index content: its range, time range and postings, one ``key offsets``
    line each (decimal key, a space, decimal offsets: no line reads two ways), by key."""
    h = hashlib.sha256(_DOMAIN + b" batch")
    h.update(_U64.pack(first_seq, count))
    h.update(f"{min_time}\x1f{max_time}\x1e".encode())
    h.update(lines.encode())
    return h.digest()


def link(previous: bytes, content: bytes) -> bytes:
    """The chain value after a batch (content hashes are computed a chunk per process)."""
    return hashlib.sha256(_DOMAIN + b" chain" + previous + content).digest()


def orphan(first: int | None) -> str:
    """What verify says of postings no batch holds, from entry ``first`` (if known)."""
    where = "" if first is None else f" for entries from {first}"
    return f"the search index has postings{where} that no batch holds"
