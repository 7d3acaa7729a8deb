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

``witnessed_note`` serves a checkpoint with its cosignature lines after the ledger's
own signature (signed-note: more signature lines on the same note).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
    ``clients`` (by witness name; witnesses the policy does not name are never asked)."""

    def __init__(
        self, *, log_: EntryLog, policy: Policy, clients: Mapping[str, WitnessClient]
    ) -> None:
        self._log = log_
        self.policy = policy
        self._clients = {w.name: clients[w.name] for w in policy.witnesses if w.name in clients}

    def gather(self, size: int, note: str, at: datetime) -> list[str]:
        """Ask every reachable witness to cosign ``note`` (the checkpoint of ``size``);
        keep each valid line; returns the names of those that cosigned. Raises nothing
        but what keeping a line raises (the ledger's database)."""
        lines = {}
        for name, client in self._clients.items():
            line = self._ask(name, client, size, note)
            if line is not None:
                lines[name] = line
        self._log.cosignatures.add(size, lines, time=format_timestamp(at))
        signed = list(lines)
        if len(signed) < self.policy.threshold:
            log.warning(
                "checkpoint %d cosigned by %d witnesses of %d; the policy needs %d",
                size, len(signed), len(self.policy.witnesses), self.policy.threshold,
            )  # fmt: skip
        return signed

    def _ask(self, name: str, client: WitnessClient, size: int, note: str) -> str | None:
        """``name``'s valid cosignature line on ``note``, or None (logged why)."""
        old = min(self._log.cosignatures.latest_size(name), size)
        vkey = self.policy.entry(name).verifier_key
        for attempt in (1, 2):
            try:
                lines = client.add_checkpoint(old, consistency_proof(self._log, old, size), note)
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
        return with_cosignatures(note, list(self._log.cosignatures.at(size).values()))


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
