"""The ledger gathering its witnesses' cosignatures (C2SP tlog-witness, as the client).

After the ledger signs a checkpoint, ``Witnessing.gather`` asks each witness the policy
names, and this deployment can reach, to cosign it: with the size the ledger believes
the witness cosigned last (its largest kept cosignature, 0 if none) and the consistency
proof from that size, from the ledger's own stored nodes. A witness that answers 409
with another size is asked once more from that size (one proof, however far behind it
was). Each line returned is checked against the policy's key for that witness before it
is kept (``cosignatures``). A witness that is down, refuses, or answers garbage is
logged and skipped: it never holds up appending or signing, and catches up at the next
checkpoint. A refusal that is an alarm (rollback, fork) is logged as an error; the
witness itself keeps and audits it.

Witnesses in this process (``clients``) are asked as the checkpoint is signed. Witnesses
in other processes (``remote``: ``broker.witness.http_client``, an agency's gateway over
HTTP) are asked off the appending path: each on a thread of its own that takes the
latest checkpoint handed to it (a checkpoint signed while it is still asking replaces
any it has not started on), each request bounded in time by the client's timeouts. So a
witness slow or down never holds up the ledger's appending, its signing, or its event
loop; it catches up with the next checkpoint, with one proof.

``witnessed_note`` serves a checkpoint with its cosignature lines after the ledger's
own signature (signed-note: more signature lines on the same note).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from broker.errors import MappaError
from broker.ledger import merkle
from broker.ledger.log import EntryLog
from broker.witness.cosignature import check_cosignature, with_cosignatures
from broker.witness.policy import Policy
from broker.witness.witness import WitnessConflict
from schemas.common import format_timestamp

log = logging.getLogger(__name__)
# How long closing waits for a remote witness's request in flight (the client's own
# timeouts bound it too); its thread is a daemon, so a process never waits on it longer.
CLOSE_WAIT_SECONDS = 10.0


class WitnessClient(Protocol):
    """One witness as the ledger reaches it: ``add_checkpoint`` returns its cosignature
    lines, or raises ``WitnessConflict`` (its size differs), ``WitnessRefusal`` (it
    refused), or anything else when it cannot be reached."""

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]: ...


def consistency_proof(log_: EntryLog, old_size: int, size: int) -> list[bytes]:
    """The consistency proof from the tree of ``old_size`` entries to that of ``size``,
    from stored nodes (empty from 0, and between equal sizes). Raises ``KeyError`` if a
    node it needs is not stored."""
    if old_size in (0, size):
        return []
    ranges = merkle.consistency_ranges(old_size, size)
    return merkle.assemble(ranges, log_.nodes(merkle.nodes_for(ranges)))


class Witnessing:
    """Gathers and serves cosignatures for the ledger in ``log_``, under ``policy``, from
    ``clients`` (in this process, asked as each checkpoint is signed) and ``remote``
    (elsewhere, asked on threads of their own: the module's docstring, reading and
    keeping through ``remote_log``, else ``log_``), by witness name; witnesses the policy
    does not name are never asked. ``close`` stops the threads."""

    def __init__(
        self,
        *,
        log_: EntryLog,
        policy: Policy,
        clients: Mapping[str, WitnessClient],
        remote: Mapping[str, WitnessClient] | None = None,
        remote_log: EntryLog | None = None,
    ) -> None:
        self._log = log_
        # The remote witnesses' threads read and keep on a connection of their own where
        # given: never inside the appending thread's transaction (PostgreSQL shares one
        # connection's transaction between the threads that use it).
        self._remote_log = remote_log or log_
        # One remote thread keeps a line at a time: on PostgreSQL two transactions on one
        # connection from two threads would nest, out of order.
        self._keeping = threading.Lock()
        self.policy = policy
        self._clients = {w.name: clients[w.name] for w in policy.witnesses if w.name in clients}
        far = remote or {}
        self._remote = {
            w.name: RemoteWitness(w.name, far[w.name], self._ask_and_keep)
            for w in policy.witnesses
            if w.name in far and w.name not in self._clients
        }

    def gather(self, size: int, note: str, at: datetime) -> list[str]:
        """Ask every witness in this process to cosign ``note`` (the checkpoint of
        ``size``) and keep each valid line; hand it to each remote witness's thread;
        returns the names of those in this process that cosigned. Raises nothing but what
        keeping a line raises (the ledger's database)."""
        lines = {}
        for name, client in self._clients.items():
            line = self._ask(self._log, name, client, size, note)
            if line is not None:
                lines[name] = line
        self._log.cosignatures.add(size, lines, time=format_timestamp(at))
        for remote in self._remote.values():
            remote.offer(size, note, at)
        signed = list(lines)
        # With remote witnesses, their answers are still to come: nothing to say yet.
        if not self._remote and len(signed) < self.policy.threshold:
            log.warning(
                "checkpoint %d cosigned by %d witnesses of %d; the policy needs %d",
                size, len(signed), len(self.policy.witnesses), self.policy.threshold,
            )  # fmt: skip
        return signed

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds (each) for the remote witnesses to have answered
        every checkpoint handed to them; True if they all have. Raises nothing."""
        return all(remote.settle(timeout) for remote in self._remote.values())

    def close(self) -> None:
        """Stop asking the remote witnesses (a request in flight ends within its
        timeout). Idempotent; raises nothing."""
        for remote in self._remote.values():
            remote.close()

    def _ask_and_keep(self, name: str, client: WitnessClient, job: Offered) -> None:
        log_ = self._remote_log
        line = self._ask(log_, name, client, job.size, job.note)
        if line is not None:
            with self._keeping:
                log_.cosignatures.add(job.size, {name: line}, time=format_timestamp(job.at))

    def _ask(
        self, log_: EntryLog, name: str, client: WitnessClient, size: int, note: str
    ) -> str | None:
        """``name``'s valid cosignature line on ``note``, or None (logged why); the size
        it holds and the proof from it are read from ``log_``."""
        old = min(log_.cosignatures.latest_size(name), size)
        vkey = self.policy.entry(name).verifier_key
        for attempt in (1, 2):
            try:
                lines = client.add_checkpoint(old, consistency_proof(log_, old, size), note)
            except WitnessConflict as exc:
                if attempt == 2 or not 0 <= exc.size <= size:
                    log.warning("witness %s holds size %d; checkpoint %d not cosigned",
                                name, exc.size, size)  # fmt: skip
                    return None
                old = exc.size
                continue
            except MappaError as exc:
                alarm = (
                    " (an alarm: the witness keeps and audits it)"
                    if getattr(exc, "alarm", False)
                    else ""
                )
                log.warning("witness %s refused checkpoint %d: %s%s", name, size, exc.code, alarm)
                return None
            except Exception as exc:  # noqa: BLE001 - a witness down never stops the ledger
                log.warning("witness %s not reached for checkpoint %d (%s): it catches up later",
                            name, size, type(exc).__name__)  # fmt: skip
                return None
            for line in lines:
                try:
                    check_cosignature(note + line, vkey)
                except MappaError:
                    continue
                return line
            log.warning("witness %s answered without a valid cosignature", name)
            return None
        return None

    def witnessed_note(self, size: int, note: str) -> str:
        """``note`` (the checkpoint of ``size``) with the cosignature lines kept for it."""
        return witnessed_note(self._log, size, note)


@dataclass(frozen=True)
class Offered:
    """A checkpoint handed to a remote witness: its size, note and signing time."""

    size: int
    note: str
    at: datetime


class RemoteWitness:
    """One witness in another process, asked by ``ask`` on a daemon thread of its own:
    ``offer`` hands it a checkpoint and returns at once; a checkpoint it has not started
    on is replaced by the next one offered (the witness catches up with one proof)."""

    def __init__(
        self,
        name: str,
        client: WitnessClient,
        ask: Callable[[str, WitnessClient, Offered], None],
    ) -> None:
        self.name = name
        self._client = client
        self._ask = ask
        self._changed = threading.Condition()
        self._pending: Offered | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"witness {name}", daemon=True)
        self._thread.start()

    def offer(self, size: int, note: str, at: datetime) -> None:
        """Have the witness asked to cosign the checkpoint of ``size``, soon."""
        with self._changed:
            self._pending = Offered(size, note, at)
            self._changed.notify_all()

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until nothing offered is left unasked."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or (self._pending is None and not self._busy), timeout
            )

    def close(self) -> None:
        """Stop after the request in flight, if any (waiting up to ``CLOSE_WAIT_SECONDS``),
        and close the client if it has ``close``."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT_SECONDS)
        closing = getattr(self._client, "close", None)
        if callable(closing):
            closing()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or self._pending is not None)
                if self._closed:
                    return
                job, self._pending, self._busy = self._pending, None, True
            try:
                if job is not None:  # always, after wait_for: says so to the type checker
                    self._ask(self.name, self._client, job)
            except Exception as exc:  # noqa: BLE001 - keeping a line failed: next time
                log.warning("witness %s: its cosignature was not kept (%s)", self.name,
                            type(exc).__name__)  # fmt: skip
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


def witnessed_note(log_: EntryLog, size: int, note: str) -> str:
    """``note`` with every cosignature line kept for the checkpoint of ``size``
    (unchecked: whoever relies on it checks it against the policy)."""
    return with_cosignatures(note, list(log_.cosignatures.at(size).values()))


def witness_summary(log_: EntryLog, policy: Policy | None, size: int, note: str) -> dict[str, Any]:
    """What an officer is shown of the witnesses of the checkpoint ``note`` (of ``size``):
    ``witnessed_note`` (with its cosignature lines), ``witnesses`` (the names whose
    cosignature verifies against ``policy``, in its order; none without a policy),
    ``witness_count`` (how many the policy names), ``threshold`` and ``witnessed``
    (whether the policy is met). Without a policy, the counts are 0 and ``witnessed``
    False: nothing says whom to believe."""
    full = witnessed_note(log_, size, note)
    if policy is None:
        return {"witnessed_note": full, "witnesses": [], "witness_count": 0, "threshold": 0,
                "witnessed": False}  # fmt: skip
    names = policy.cosigners(full)
    return {
        "witnessed_note": full,
        "witnesses": list(names),
        "witness_count": len(policy.witnesses),
        "threshold": policy.threshold,
        "witnessed": len(names) >= policy.threshold,
    }
