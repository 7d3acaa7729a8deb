"""Transfer rules without a broker: the state machine, who may move, routing, deadlines."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker.errors import TransferRefused
from broker.gateway.cases import CaseRegistry
from broker.gateway.store import AgencyStore
from broker.transfer.deadlines import deadlines, overdue
from broker.transfer.rules import check_notice, check_step
from broker.trust.directory import Directory
from broker.trust.provision import DataPaths, provision
from schemas.common import from_data
from schemas.transfer import (
    TRANSFER_MESSAGE,
    TransferAccept,
    TransferCancel,
    TransferComplete,
    TransferControl,
    TransferRecord,
    TransferRefuse,
    TransferRequest,
    TransferState,
)
from tests.two_areas import (
    COORD_A,
    COORD_B,
    FROM,
    HOUSING_A,
    HOUSING_B,
    POLICE_A,
    POLICE_B,
    PROBATION_A,
    SPECS,
    TO,
)

SUBJECT = "ab" * 32
TID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Directory:
    root = tmp_path_factory.mktemp("transfer-rules")
    return provision(
        DataPaths(root), SPECS, passphrase=secrets.token_bytes(16), now=datetime.now(UTC)
    )


def fields(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transfer_id": TID,
        "subject_ref": SUBJECT,
        "from_area": FROM,
        "to_area": TO,
        "move_date": "2026-12-24",
        "reason": "moving",
        "lead_agency": PROBATION_A,
        "actor_agency": PROBATION_A,
        "actor_user": "po.1",
    }
    base.update(over)
    return base


def request(**over: Any) -> TransferRequest:
    data = fields(requested_on="2026-12-18", registered_sex_offender=True)
    data.update(over)
    return TransferRequest(**data)


def record(state: TransferState, **over: Any) -> TransferRecord:
    data: dict[str, Any] = {
        "transfer_id": TID,
        "subject_ref": SUBJECT,
        "from_area": FROM,
        "to_area": TO,
        "state": state,
        "lead_agency": PROBATION_A,
        "registered_sex_offender": True,
        "requested_on": "2026-12-18",
        "move_date": "2026-12-24",
        "reason": "moving",
        "requested_by": PROBATION_A,
        "updated_at": "2026-12-18T10:00:00.000Z",
        "last_step_by": PROBATION_A,
    }
    data.update(over)
    return TransferRecord(**data)


def step(directory: Directory, message: TransferControl, current: TransferRecord | None) -> str:
    try:
        return check_step(
            directory,
            message,
            sender=message.actor_agency,
            current=current,
            open_transfer=current if current and current.state.is_open else None,
        ).value
    except TransferRefused as exc:
        return exc.code


# -- the messages ---------------------------------------------------------------------------


def test_messages_round_trip_through_json_by_their_step() -> None:
    original = request()
    parsed = TRANSFER_MESSAGE.validate_json(original.model_dump_json())
    assert parsed == original
    assert isinstance(parsed, TransferRequest)


@pytest.mark.parametrize(
    "over",
    [
        {"to_area": FROM},  # a move within one area is not a transfer
        {"transfer_id": "not-a-uuid"},
        {"subject_ref": "2011/0456789K"},  # the plain PNC id never appears
        {"to_area": "Not An Area"},
    ],
)
def test_malformed_messages_are_rejected(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        from_data(TransferAccept, fields(**over))


# -- the state machine and who may move -----------------------------------------------------


def test_the_happy_path_moves_through_each_state(directory: Directory) -> None:
    assert step(directory, request(), None) == "requested"
    accept = TransferAccept(**fields(actor_agency=COORD_B))
    assert step(directory, accept, record(TransferState.REQUESTED)) == "accepted"
    complete = TransferComplete(**fields(actor_agency=COORD_B), completed_on="2026-12-24")
    assert step(directory, complete, record(TransferState.ACCEPTED)) == "completed"


@pytest.mark.parametrize(
    ("state", "model", "actor", "code"),
    [
        (None, TransferAccept, COORD_B, "transfer.unknown"),
        (TransferState.ACCEPTED, TransferAccept, COORD_B, "transfer.invalid-transition"),
        (TransferState.REQUESTED, TransferComplete, COORD_B, "transfer.invalid-transition"),
        (TransferState.COMPLETED, TransferCancel, COORD_A, "transfer.invalid-transition"),
        (TransferState.REFUSED, TransferAccept, COORD_B, "transfer.invalid-transition"),
        (TransferState.REQUESTED, TransferAccept, COORD_A, "transfer.wrong-actor"),
        (TransferState.REQUESTED, TransferAccept, POLICE_B, "transfer.wrong-actor"),
        (TransferState.REQUESTED, TransferRefuse, HOUSING_B, "transfer.wrong-actor"),
        (TransferState.REQUESTED, TransferCancel, POLICE_A, "transfer.wrong-actor"),  # not lead
        (TransferState.ACCEPTED, TransferComplete, COORD_A, "transfer.wrong-actor"),
        (TransferState.REQUESTED, TransferCancel, PROBATION_A, "cancelled"),
        (TransferState.ACCEPTED, TransferCancel, COORD_B, "cancelled"),
        (TransferState.REQUESTED, TransferRefuse, COORD_B, "refused"),
    ],
)
def test_each_move_is_allowed_only_from_its_state_and_actor(
    directory: Directory,
    state: TransferState | None,
    model: type[TransferControl],
    actor: str,
    code: str,
) -> None:
    extra: dict[str, Any] = {"completed_on": "2026-12-24"} if model is TransferComplete else {}
    message = model(**fields(actor_agency=actor), **extra)
    current = record(state) if state else None
    assert step(directory, message, current) == code


def test_requests_are_checked(directory: Directory) -> None:
    assert step(directory, request(to_area="atlantis"), None) == "transfer.unknown-area"
    # Birmingham is a real area, but nobody there is in this directory.
    assert step(directory, request(to_area="west-midlands"), None) == "transfer.unknown-area"
    assert step(directory, request(lead_agency=HOUSING_A), None) == "transfer.bad-lead"
    assert step(directory, request(lead_agency="police.nowhere"), None) == "transfer.bad-lead"
    assert step(directory, request(actor_agency=POLICE_B), None) == "transfer.wrong-actor"
    # An RA agency requests only as the lead; the co-ordinator may name any RA lead.
    assert step(directory, request(actor_agency=POLICE_A), None) == "transfer.wrong-actor"
    assert step(directory, request(actor_agency=COORD_A), None) == "requested"
    assert step(directory, request(), record(TransferState.CANCELLED)) == "transfer.duplicate-id"
    other = request(transfer_id=str(uuid.uuid4()))
    open_one = record(TransferState.ACCEPTED)
    with pytest.raises(TransferRefused, match="still accepted") as exc:
        check_step(directory, other, sender=PROBATION_A, current=None, open_transfer=open_one)
    assert exc.value.code == "transfer.already-open"
    # After a completed move only the new owning area may move the case again.
    with pytest.raises(TransferRefused) as moved:
        check_step(directory, other, sender=PROBATION_A, current=None, open_transfer=None, owner=TO)
    assert moved.value.code == "transfer.not-owner"


def test_signer_must_be_the_named_actor(directory: Directory) -> None:
    with pytest.raises(TransferRefused) as exc:
        check_step(directory, request(), sender=POLICE_A, current=None, open_transfer=None)
    assert exc.value.code == "transfer.actor-mismatch"


def test_steps_must_match_the_request(directory: Directory) -> None:
    accept = TransferAccept(**fields(actor_agency=COORD_B, subject_ref="cd" * 32))
    assert step(directory, accept, record(TransferState.REQUESTED)) == "transfer.mismatch"


def test_completion_not_before_the_move_date(directory: Directory) -> None:
    early = TransferComplete(**fields(actor_agency=COORD_B), completed_on="2026-12-23")
    assert step(directory, early, record(TransferState.ACCEPTED)) == "transfer.before-move-date"


def test_the_receiving_case_team_must_be_of_the_receiving_area(directory: Directory) -> None:
    done = TransferComplete(
        **fields(actor_agency=COORD_B), completed_on="2026-12-24", case_team=(HOUSING_A,)
    )
    assert step(directory, done, record(TransferState.ACCEPTED)) == "transfer.bad-team"
    ok = done.model_copy(update={"case_team": (HOUSING_B, POLICE_B)})
    assert step(directory, ok, record(TransferState.ACCEPTED)) == "completed"


def test_completion_notice_rules(directory: Directory) -> None:
    hb = directory.agency(HOUSING_B)
    done = TransferComplete(**fields(actor_agency=COORD_B), completed_on="2026-12-24")
    assert check_notice(directory, done, sender=COORD_B, recipient=hb) is TransferState.COMPLETED
    cases: list[tuple[TransferControl, str, str]] = [
        (TransferAccept(**fields(actor_agency=COORD_B)), COORD_B, "transfer.invalid-transition"),
        (done, COORD_A, "transfer.actor-mismatch"),
        (
            TransferComplete(**fields(actor_agency=COORD_A), completed_on="2026-12-24"),
            COORD_A,
            "transfer.wrong-actor",
        ),
    ]
    for message, sender, code in cases:
        with pytest.raises(TransferRefused) as exc:
            check_notice(directory, message, sender=sender, recipient=hb)
        assert exc.value.code == code
    with pytest.raises(TransferRefused) as exc:
        check_notice(directory, done, sender=COORD_B, recipient=directory.agency(HOUSING_A))
    assert exc.value.code == "transfer.wrong-area"


# -- the registry ---------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[AgencyStore, CaseRegistry]]:
    store = AgencyStore(tmp_path / "a.sqlite")
    try:
        yield store, CaseRegistry(store)
    finally:
        store.close()


def test_registry_follows_the_steps(registry: tuple[AgencyStore, CaseRegistry]) -> None:
    store, reg = registry
    at = "2026-12-18T10:00:00.000Z"
    with pytest.raises(RuntimeError):
        reg.apply(request(), TransferState.REQUESTED, at=at)  # outside a transaction
    with store.transaction():
        reg.apply(request(), TransferState.REQUESTED, at=at)
    assert reg.owner(SUBJECT) is None
    opened = reg.open_for(SUBJECT)
    assert opened is not None
    assert opened.requested_on == "2026-12-18"
    with store.transaction():
        reg.apply(TransferAccept(**fields(actor_agency=COORD_B)), TransferState.ACCEPTED, at=at)
        done = TransferComplete(
            **fields(actor_agency=COORD_B), completed_on="2026-12-24", address_notified_on=None
        )
        rec = reg.apply(done, TransferState.COMPLETED, at=at)
    assert rec.completed_on == "2026-12-24"
    assert rec.registered_sex_offender
    assert reg.open_for(SUBJECT) is None
    assert reg.owner(SUBJECT) == TO
    assert [r.state for r in reg.records()] == [TransferState.COMPLETED]
    assert reg.records(state=TransferState.REQUESTED) == []


def test_registry_learns_a_completion_from_its_notice(
    registry: tuple[AgencyStore, CaseRegistry],
) -> None:
    store, reg = registry
    done = TransferComplete(**fields(actor_agency=COORD_B), completed_on="2026-12-24")
    with store.transaction():
        rec = reg.apply(done, TransferState.COMPLETED, at="2026-12-24T10:00:00.000Z")
    assert rec.requested_on is None
    assert reg.owner(SUBJECT) == TO


# -- deadlines (fixed dates across Christmas 2026 and New Year 2027) ------------------------


def test_probation_deadline_counts_working_days_across_bank_holidays() -> None:
    # From Friday 18 December 2026: Christmas (Fri 25), Boxing Day (Sat 26, substitute
    # Mon 28) and New Year's Day (Fri 1 Jan) do not count: due Wednesday 20 January,
    # where 20 weekdays alone would give Friday 15 January.
    [probation, rso] = deadlines(record(TransferState.ACCEPTED))
    assert probation.kind == "probation-transfer"
    assert probation.due == date(2027, 1, 20)
    assert not probation.overdue(date(2027, 1, 20))
    assert probation.overdue(date(2027, 1, 21))
    # The RSO must notify within 3 (calendar) days of the move on Thursday 24 December.
    assert rso.kind == "rso-address-notification"
    assert rso.due == date(2026, 12, 27)


def test_overdue_report_lists_what_is_late_and_nothing_else() -> None:
    late = record(TransferState.ACCEPTED)
    on_time = record(
        TransferState.COMPLETED,
        transfer_id=str(uuid.uuid4()),
        completed_on="2027-01-04",
        address_notified_on="2026-12-26",
    )
    cancelled = record(TransferState.CANCELLED, transfer_id=str(uuid.uuid4()))
    no_rso = record(
        TransferState.REQUESTED, transfer_id=str(uuid.uuid4()), registered_sex_offender=False
    )
    report = overdue([late, on_time, cancelled, no_rso], date(2027, 1, 22))
    assert [(o.record.transfer_id, o.deadline.kind) for o in report] == [
        (TID, "rso-address-notification"),
        (TID, "probation-transfer"),
        (no_rso.transfer_id, "probation-transfer"),
    ]
    assert report[0].days_over == 26
    assert report[1].days_over == 2  # Thursday 21 and Friday 22 January
    assert "probation-transfer due 2027-01-20, 2 working days overdue" in report[1].line()
    assert overdue([late], date(2026, 12, 27)) == []
    late_done = record(
        TransferState.COMPLETED, completed_on="2027-01-25", address_notified_on="2026-12-24"
    )
    [met_late, _] = deadlines(late_done)
    assert met_late.late()
    assert overdue([late_done], date(2027, 2, 1)) == []


# -- routing follows the case ---------------------------------------------------------------


def routed(store: AgencyStore, areas: tuple[str, ...], area: str) -> str:
    from types import SimpleNamespace
    from typing import cast

    from broker.gateway.agency import AgencyContext
    from broker.gateway.routing import follow_case
    from tests.two_areas import risk_assessment

    ctx = cast(
        AgencyContext,
        SimpleNamespace(store=store, entry=SimpleNamespace(areas=areas), agency_id="prison.x"),
    )
    try:
        registry = CaseRegistry(store)
        message = risk_assessment(area)
        return follow_case(ctx, message, registry.open_for(SUBJECT), registry.owner(SUBJECT)).area
    except TransferRefused as exc:
        return exc.code


def test_routing_before_during_and_after_a_transfer(
    registry: tuple[AgencyStore, CaseRegistry],
) -> None:
    store, reg = registry
    at = "2026-12-18T10:00:00.000Z"
    assert routed(store, (FROM,), FROM) == FROM  # no transfer known
    with store.transaction():
        reg.apply(request(), TransferState.REQUESTED, at=at)
    assert routed(store, (FROM,), FROM) == FROM  # the sending area owns it until completion
    assert routed(store, (TO,), TO) == "transfer.not-yet-owner"
    with store.transaction():
        reg.apply(TransferAccept(**fields(actor_agency=COORD_B)), TransferState.ACCEPTED, at=at)
        done = TransferComplete(**fields(actor_agency=COORD_B), completed_on="2026-12-24")
        reg.apply(done, TransferState.COMPLETED, at=at)
    assert routed(store, (TO,), TO) == TO
    assert routed(store, (FROM,), FROM) == "transfer.case-moved"
    # An agency working in both areas (a prison) is moved to the case's new area.
    assert routed(store, (FROM, TO), FROM) == TO
