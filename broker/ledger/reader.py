"""What an information-governance officer can ask of the ledger, in one object.

The CLI (``mappa audit``) and the governance HTTP endpoints are thin faces over
this: queries (paged, each row optionally with its inclusion proof), a proof for
one entry, consistency between two checkpoints, the latest signed checkpoint,
SAR / ICO exports, the records the ledger refused, and a full integrity check.
Everything returned is JSON-ready; hashes are standard base64, as in checkpoints.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from broker.crypto.encoding import b64encode
from broker.crypto.keys import PublicKey
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.ledger import merkle
from broker.ledger.checkpoint import (
    VerifiedCheckpoint,
    ledger_origin,
    open_checkpoint,
    verifier_key,
)
from broker.ledger.integrity import (
    STOP_POLL,
    IntegrityReport,
    Progress,
    Stopped,
    VerifyIncomplete,
    never_stopped,
    verify_ledger,
)
from broker.ledger.integrity_all import DEFAULT_MAX_PROBLEMS, FullReport, verify_all
from broker.ledger.query import AuditQuery, QueryError, parse_query, to_csv, to_json
from broker.ledger.store import LedgerStore
from broker.ledger.witnessing import witness_summary
from broker.observe.durations import Durations
from broker.settings import Settings
from broker.trust.keystore import Keystore
from broker.trust.provision import DataPaths, load_governance_public, load_ledger_public
from broker.witness.policy import Policy, load_policy

ExportFormat = Literal["csv", "json"]
# An export walks every page; this bounds one export (a SAR is far smaller).
MAX_EXPORT_ROWS = 1_000_000
# Sequence numbers are 64-bit signed integers in SQLite and PostgreSQL: ``after`` is
# compared with ``after + 1``, which must still fit.
MAX_AFTER = 2**63 - 2
# The years a ledger time may name: beyond them a zone offset overflows the calendar, and
# no audit event was or will be written there.
MIN_YEAR, MAX_YEAR = 1900, 2200
# A subject is searched by its plain PNC id (``schemas.messages.base.PncId``), which the
# subject key hashes as ASCII after stripping and upper-casing.
_PNC_ID = re.compile(r"[0-9]{2,4}/[0-9]{1,7}[A-Z]")
# The refusal of a proof or query row the ledger cannot vouch for (docs/audit-ledger.md).
UNVOUCHED = "ledger.unvouched"
# A verify run's report: ``IntegrityReport`` or ``FullReport``.
_Report = TypeVar("_Report", IntegrityReport, FullReport)
# Filters that name identifiers: printable ASCII only. ``user`` is a person's name and
# may be any printable text.
_ASCII_FILTERS = ("subject", "subject_ref", "agency", "agreement")
# Unicode categories that print nothing: controls, format characters (bidirectional
# overrides, zero-width), surrogates, private use and unassigned code points.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _checked(query: AuditQuery) -> AuditQuery:
    """``query`` if every value is one the ledger can be asked about. Raises
    ``QueryError`` (``audit.query-invalid``) naming the first that is not: an identifier
    that is not printable ASCII, a user name with a character that prints nothing, a
    subject that is not a PNC id, a time outside ``MIN_YEAR``..``MAX_YEAR`` or an
    ``after`` past ``MAX_AFTER``."""
    for name in _ASCII_FILTERS:
        value = getattr(query, name)
        if value is not None and not (value.isascii() and value.isprintable()):
            raise QueryError(f"bad query parameter {name!r}: only printable ASCII is allowed")
    if query.user is not None and any(unicodedata.category(c) in _INVISIBLE for c in query.user):
        raise QueryError("bad query parameter 'user': it holds a character that prints nothing")
    if query.subject is not None and not _PNC_ID.fullmatch(query.subject.strip().upper()):
        raise QueryError("bad query parameter 'subject': expected a PNC id such as 2011/0456789K")
    for name in ("since", "until"):
        # A ledger timestamp, its year first (not padded before year 1000).
        moment = getattr(query, name)
        if moment is not None and not MIN_YEAR <= int(moment.split("-", 1)[0]) <= MAX_YEAR:
            raise QueryError(
                f"bad query parameter {name!r}: expected a time in the years "
                f"{MIN_YEAR} to {MAX_YEAR}"
            )
    if query.after > MAX_AFTER:
        raise QueryError(f"bad query parameter 'after': at most {MAX_AFTER}")
    return query


def checked_query(params: Mapping[str, Any]) -> AuditQuery:
    """``parse_query(params)`` held to the bounds of ``_checked``. Raises ``QueryError``
    (``audit.query-invalid``) for a bad parameter, a time whose zone takes it off the
    calendar included."""
    try:
        return _checked(parse_query(params))
    except OverflowError:
        # A time such as 9999-12-31T23:59:59-23:59 is past year 9999 in UTC.
        raise QueryError(
            f"bad query parameter: a time is outside the years {MIN_YEAR} to {MAX_YEAR}"
        ) from None


class LedgerReader:
    """What an officer can ask of the ledger in ``store``, whose checkpoints are signed by
    ``public_key`` for ``origin`` (see the module). ``subject_ref`` turns a plain PNC id
    into the subject's keyed hash. Raises ``ConfigurationError`` (``config.invalid``)
    unless ``public_key`` is an Ed25519 key."""

    # The governance-signed witness policy its checkpoints are shown against (None: no
    # policy, so no witnesses are shown as trusted); set by whoever opens the reader.
    witness_policy: Policy | None = None

    def __init__(
        self,
        *,
        store: LedgerStore,
        public_key: PublicKey,
        origin: str,
        subject_ref: Callable[[str], str],
    ) -> None:
        self.store = store
        self.origin = origin
        self.verifier_key = verifier_key(origin, public_key)
        self._subject_ref = subject_ref
        # Held while a verify runs. A verify runs a worker process per core: concurrent
        # requests take turns rather than start a set each.
        self.verifying = threading.Lock()
        # Each verify's duration by outcome (intact, tampered, incomplete), whoever asked
        # (the governance API, the console's jobs): for the metrics.
        self.verify_durations = Durations()

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, size: int | None = None) -> VerifiedCheckpoint:
        """The latest signed checkpoint (or the one of ``size``), verified before it is
        shown. Raises ``SchemaError`` (``audit.no-checkpoint``) if there is none, and
        ``VerificationError`` (``ledger.checkpoint-invalid``) if it does not verify."""
        row = self.store.latest_checkpoint() if size is None else self.store.checkpoint_at(size)
        if row is None:
            what = "no checkpoint yet" if size is None else f"no checkpoint of size {size}"
            raise SchemaError(f"the ledger has {what}", code="audit.no-checkpoint")
        return open_checkpoint(row[2], self.verifier_key, origin=self.origin)

    def checkpoint_json(self, size: int | None = None) -> dict[str, Any]:
        """``checkpoint(size)`` as JSON: origin, tree size, root hash, time, the note and
        the verifier key to check it with. Raises as ``checkpoint`` does."""
        cp = self.checkpoint(size)
        return {
            "origin": self.origin,
            "tree_size": cp.size,
            "root_hash": b64encode(cp.root),
            "time": cp.time,
            "note": cp.note,
            "verifier_key": self.verifier_key,
            **witness_summary(self.store, self.witness_policy, cp.size, cp.note),
        }

    # -- proofs -----------------------------------------------------------------------------
    def inclusion(self, seq: int, size: int) -> dict[str, Any]:
        """The inclusion proof of entry ``seq`` in the tree of the first ``size`` entries:
        the entry's recorded leaf hash and the proof's hashes, built from stored nodes.
        Raises ``ValueError`` unless ``0 <= seq < size``, and ``KeyError`` if a node the
        proof needs is not stored (``verify`` says why)."""
        ranges = merkle.inclusion_ranges(seq, size)
        keys = merkle.nodes_for(ranges) | {(0, seq)}
        nodes = self.store.nodes(keys)
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": b64encode(nodes[(0, seq)]),
            "hashes": [b64encode(h) for h in merkle.assemble(ranges, nodes)],
        }

    def proof(self, seq: int, *, size: int | None = None) -> dict[str, Any]:
        """Inclusion proof of entry ``seq`` in the tree of a signed checkpoint (default: the
        latest), with that checkpoint and the entry's signed bytes so all can be re-checked,
        and the witnesses that cosigned it (``witness_summary``'s fields).
        Raises as ``checkpoint`` does, ``QueryError`` (``audit.query-invalid``) if the
        checkpoint does not cover the entry or the entry is not stored, and
        ``VerificationError`` (``ledger.unvouched``) if the ledger cannot vouch for it (an
        open alarm reaches it, or its stored bytes differ from its recorded hash)."""
        cp = self.checkpoint(size)
        if not 0 <= seq < cp.size:
            raise QueryError(
                f"entry {seq} is not covered by the checkpoint of size {cp.size}"
                + (" (it may not have been checkpointed yet)" if seq >= cp.size else "")
            )
        entry = self.store.entry(seq)
        if entry is None:
            raise QueryError(f"entry {seq} is not in the ledger; run `mappa audit verify`")
        self._vouch([seq])
        inclusion = self.inclusion(seq, cp.size)
        if b64encode(merkle.leaf_hash(entry["signed"])) != inclusion["leaf_hash"]:
            raise VerificationError(
                f"entry {seq} is not the entry appended at that position (its stored bytes "
                "differ from its recorded hash); run `mappa audit verify`",
                code=UNVOUCHED,
            )
        return {
            **inclusion,
            "entry": entry["signed"].decode("utf-8", "replace"),
            "checkpoint": cp.note,
            "verifier_key": self.verifier_key,
            # Who cosigned the checkpoint the proof is against, as ``checkpoint_json``.
            **witness_summary(self.store, self.witness_policy, cp.size, cp.note),
        }

    def consistency(self, size1: int, size2: int | None = None) -> dict[str, Any]:
        """The consistency proof from the checkpoint of ``size1`` to the one of ``size2``
        (default: the latest), with both checkpoints and the verifier key. Raises as
        ``checkpoint`` does, and ``QueryError`` (``audit.query-invalid``) if the first is
        the newer."""
        old = self.checkpoint(size1)
        new = self.checkpoint(size2)
        if old.size > new.size:
            raise QueryError(f"checkpoint {old.size} is newer than checkpoint {new.size}")
        ranges = merkle.consistency_ranges(old.size, new.size)
        proof = merkle.assemble(ranges, self.store.nodes(merkle.nodes_for(ranges)))
        return {
            "size1": old.size,
            "size2": new.size,
            "hashes": [b64encode(h) for h in proof],
            "checkpoint1": old.note,
            "checkpoint2": new.note,
            "verifier_key": self.verifier_key,
        }

    def _vouch(self, seqs: list[int]) -> None:
        """Raise ``VerificationError`` (``ledger.unvouched``) if an alarm is open (the
        ledger halted, ``alarms``) and does not vouch for every entry of ``seqs``: those
        at or past its first bad entry, or all when it names none."""
        alarm = self.store.alarms.open()
        if alarm is None:
            return
        bad = [s for s in seqs if not alarm.vouches_for(s)]
        if bad:
            where = "" if alarm.first_bad_entry is None else f" from entry {alarm.first_bad_entry}"
            raise VerificationError(
                f"the ledger cannot vouch for entry {bad[0]}: its {alarm.kind} raised an alarm"
                f"{where} at {alarm.time}; see `mappa audit verify`",
                code=UNVOUCHED,
            )

    def alarms(self) -> list[dict[str, Any]]:
        """Every alarm the ledger's watch or scheduled verify raised, oldest first (and
        each ``cleared`` row that lifted one), as JSON."""
        return [a.to_json() for a in self.store.alarms.all()]

    # -- queries ----------------------------------------------------------------------------
    def _subject(self, query: AuditQuery) -> str | None:
        if query.subject is not None:
            return self._subject_ref(query.subject)
        return query.subject_ref

    def query(self, params: Mapping[str, Any] | AuditQuery) -> dict[str, Any]:
        """One page of matching entries, oldest first: ``entries``, and ``next_after`` to
        continue the walk (None on the last page); with ``proofs``, each checkpointed
        row's inclusion proof and the latest ``checkpoint``. Raises ``QueryError``
        (``audit.query-invalid``) for a bad parameter (see ``checked_query``), and
        ``VerificationError`` (``ledger.unvouched``) if an open alarm reaches a row."""
        query = _checked(params) if isinstance(params, AuditQuery) else checked_query(params)
        rows = self.store.select(
            query.filters(self._subject(query)),
            since=query.since,
            until=query.until,
            after_seq=query.after,
            limit=query.limit,
        )
        self._vouch([row["seq"] for row in rows])
        page: dict[str, Any] = {
            "entries": rows,
            "next_after": rows[-1]["seq"] if len(rows) == query.limit else None,
        }
        if query.proofs:
            latest = self.store.latest_checkpoint()
            size = 0 if latest is None else latest[0]
            for row in rows:
                if row["seq"] < size:
                    row["proof"] = self.inclusion(row["seq"], size)
            page["checkpoint"] = None if latest is None else latest[2]
        return page

    def subject_ref_of(self, params: Mapping[str, Any]) -> str | None:
        """The keyed hash of the subject ``params`` name (by PNC id or by hash), or None
        if they name none. Raises ``QueryError`` (``audit.query-invalid``) as ``query``
        does."""
        return self._subject(checked_query(params))

    def export(self, params: Mapping[str, Any], fmt: ExportFormat) -> str:
        """Every matching entry (all pages) as CSV or as one JSON document, for a subject
        access request or for the Information Commissioner. Raises ``QueryError``
        (``audit.query-invalid``) for a bad parameter or more than ``MAX_EXPORT_ROWS``."""
        query = checked_query({**params, "after": None, "limit": None})
        rows: list[dict[str, Any]] = []
        after = -1
        while True:
            page = self.query(query.model_copy(update={"after": after, "limit": 1000}))
            rows += page["entries"]
            if page["next_after"] is None:
                break
            if len(rows) >= MAX_EXPORT_ROWS:
                raise QueryError(f"more than {MAX_EXPORT_ROWS} rows: narrow the query")
            after = page["next_after"]
        if fmt == "csv":
            return to_csv(rows)
        described = query.model_dump(mode="json", exclude_none=True, exclude={"after", "limit"})
        described.pop("subject", None)  # the plain PNC id stays out of the export
        latest = self.store.latest_checkpoint()
        return to_json(
            {
                "kind": "mappa.audit-export",
                "query": described,
                "subject_ref": self._subject(query),
                "count": len(rows),
                "entries": rows,
                "checkpoint": None if latest is None else latest[2],
                "verifier_key": self.verifier_key,
            }
        )

    def rejected(self) -> list[dict[str, Any]]:
        """The records the ledger refused, oldest first: where each was read, its reason
        code and reason, its SHA-256 (``digest``, hex) and its size in ``bytes``; the
        ledger keeps nothing more of them."""
        return [
            {k: v for k, v in r.items() if k != "size"} | {"bytes": r["size"]}
            for r in self.store.rejected()
        ]

    def verify_all(
        self,
        *,
        max_problems: int = DEFAULT_MAX_PROBLEMS,
        progress: Progress | None = None,
        stopped: Stopped | None = None,
    ) -> FullReport:
        """Every problem of the log in one pass, at most ``max_problems`` (``verify_all``),
        one run at a time as ``verify``; returns the report. Raises ``ValueError`` for a
        cap out of range, and ``VerifyIncomplete`` as ``verify`` does."""
        stop = stopped or never_stopped
        return self._one_run(
            lambda: verify_all(
                self.store,
                verifier_key=self.verifier_key,
                origin=self.origin,
                max_problems=max_problems,
                progress=progress,
                stopped=stop,
            ),
            stop,
        )

    def verify(
        self, *, progress: Progress | None = None, stopped: Stopped | None = None
    ) -> IntegrityReport:
        """The whole log recomputed and held to its checkpoints, one run at a time (see
        ``verify_ledger``, which tells ``progress`` the entries hashed and asks
        ``stopped`` whether to go on); returns the report. Raises ``VerifyIncomplete``
        (``audit.verify-incomplete``) if a worker process fails, or if ``stopped()``
        turns true, while it waits for another run or while it runs."""
        stop = stopped or never_stopped
        return self._one_run(
            lambda: verify_ledger(
                self.store,
                verifier_key=self.verifier_key,
                origin=self.origin,
                progress=progress,
                stopped=stop,
            ),
            stop,
        )

    def _one_run(self, run: Callable[[], _Report], stop: Stopped) -> _Report:
        """``run()`` when no other verify runs through this reader, timed by outcome."""
        # Another run may hold the lock for minutes: a stop is heard while waiting too.
        while not self.verifying.acquire(timeout=STOP_POLL):
            if stop():
                raise VerifyIncomplete("verify was stopped before it began")
        started, outcome = time.monotonic(), "incomplete"
        try:
            report = run()
            outcome = "intact" if report.intact else "tampered"
            return report
        finally:
            self.verify_durations.add(time.monotonic() - started, outcome)
            self.verifying.release()


def open_ledger_reader(settings: Settings, passphrase: Callable[[], bytes]) -> LedgerReader:
    """A reader on a deployment's ledger without the rest of the deployment (the officer's
    CLI). The subject key is unsealed only when a query names a subject by PNC id.
    Raises ``ConfigurationError`` (``config.invalid``) if the ledger's public key or its
    SQLite database is missing, or the database cannot be opened (see ``LedgerStore``)."""
    paths = DataPaths(settings.data_dir)
    public = load_ledger_public(paths)
    if settings.database_url is None and not paths.ledger.exists():
        raise ConfigurationError(f"no audit ledger at {paths.ledger}")

    def subject_ref(pnc_id: str) -> str:
        return Keystore(paths.keys, passphrase()).load_subject_key().reference(pnc_id)

    reader = LedgerReader(
        # Read-only: an officer may verify a copy, or a ledger they may not write.
        store=LedgerStore(settings.database_url or paths.ledger, read_only=True),
        public_key=public,
        origin=ledger_origin(settings.topic_namespace),
        subject_ref=subject_ref,
    )
    if paths.governance_pub.exists():
        reader.witness_policy = load_policy(paths.root, load_governance_public(paths))
    return reader
