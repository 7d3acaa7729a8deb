"""Every message type: its example validates, and each lesser view loses what it must."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.common import ViewKind, from_data
from schemas.messages import CATALOGUE, derive_view, type_version, view_model
from schemas.messages.base import ALWAYS_KEPT, in_summary, sensitivity_of
from schemas.messages.examples import example, example_data

WIRE_NAMES = {
    "eligibility-notified",
    "level-referral",
    "level-set",
    "meeting-minutes",
    "risk-assessment",
    "risk-management-plan-updated",
    "rso-notification-recorded",
    "notification-breach-outcome",
    "civil-order-made",
    "licence-conditions-set",
    "release-scheduled",
    "breach-recall",
    "area-transfer",
    "disclosure-decision",
    "victim-views",
    "serious-further-offence",
    "exit-from-mappa",
}
# Every domain type carries something a redacted view removes; the case team (a
# product message: who is active on the case) carries nothing sensitive.
TYPES = sorted(WIRE_NAMES)


def test_catalogue_holds_every_domain_type_under_its_wire_name() -> None:
    assert set(CATALOGUE) == WIRE_NAMES | {"case-team"}
    assert all(type_version(m) == 1 for m in CATALOGUE.values())


@pytest.mark.parametrize("message_type", TYPES)
def test_redacted_view_drops_every_sensitive_field(message_type: str) -> None:
    model = CATALOGUE[message_type]
    message = example(message_type)
    sensitive = {n for n in model.model_fields if sensitivity_of(model, n)}
    assert sensitive, f"{message_type} has nothing a redacted view removes"
    full = derive_view(message, ViewKind.FULL)
    redacted = derive_view(message, ViewKind.REDACTED)
    # The example fills every sensitive field, so the full view really carries them.
    assert all(full[n] not in (None, []) for n in sensitive)
    assert set(redacted) == set(full) - sensitive
    view_model(model, ViewKind.REDACTED).model_validate_json(
        message.model_dump_json(include=set(redacted))
    )


@pytest.mark.parametrize("message_type", TYPES)
def test_summary_keeps_the_marked_fields_and_nothing_sensitive(message_type: str) -> None:
    model = CATALOGUE[message_type]
    message = example(message_type)
    summary = derive_view(message, ViewKind.SUMMARY)
    redacted = derive_view(message, ViewKind.REDACTED)
    marked = {n for n in model.model_fields if in_summary(model, n)}
    assert marked, f"{message_type} has an empty summary"
    assert set(summary) == ALWAYS_KEPT | marked
    assert set(summary) < set(redacted)
    assert not {n for n in summary if sensitivity_of(model, n)}


@pytest.mark.parametrize("message_type", TYPES)
@pytest.mark.parametrize("kind", [ViewKind.REDACTED, ViewKind.SUMMARY])
def test_lesser_views_refuse_a_richer_body(message_type: str, kind: ViewKind) -> None:
    message = example(message_type)
    richer = ViewKind.FULL if kind is ViewKind.REDACTED else ViewKind.REDACTED
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        view_model(CATALOGUE[message_type], kind).model_validate(
            derive_view(message, richer), strict=False
        )


def changed(message_type: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(example_data(message_type))
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("message_type", "changes", "fragment"),
    [
        ("eligibility-notified", {"category": 2}, "makes a category 1 offender, not 2"),
        ("eligibility-notified", {"sentence_date": "2020-01-01"}, "before conviction_date"),
        (
            "eligibility-notified",
            {"basis": "other-dangerous-offender", "category": 3},
            "notification_period applies only",
        ),
        ("level-referral", {"requested_level": 1}, "level 2 or 3"),
        ("level-referral", {"requested_level": 4}, "requested_level"),
        ("level-set", {"next_review": "2026-06-20"}, "next_review must be after"),
        ("meeting-minutes", {"level": 1}, "level 2 and 3 cases only"),
        ("meeting-minutes", {"next_meeting": "2026-06-01"}, "next_meeting must be after"),
        ("meeting-minutes", {"attending": []}, "attending"),
        ("risk-management-plan-updated", {"review_by": "2026-06-01"}, "review_by must be"),
        ("risk-management-plan-updated", {"actions": []}, "actions"),
        ("rso-notification-recorded", {"category": 2}, "category 1 offenders only"),
        ("rso-notification-recorded", {"notification": "foreign-travel"}, "travel details"),
        (
            "rso-notification-recorded",
            {"notification": "weekly-no-fixed-abode"},
            "only with no fixed abode",
        ),
        ("rso-notification-recorded", {"home_address": None}, "home_address is required"),
        (
            "rso-notification-recorded",
            {"home_address": {"line1": "x", "town": "y", "postcode": "nope"}},
            "postcode",
        ),
        ("notification-breach-outcome", {"court": None}, "names the court"),
        (
            "notification-breach-outcome",
            {"outcome": "caution", "sentence": None},
            "not given by a court",
        ),
        ("civil-order-made", {"expires_on": "2020-01-01"}, "expires_on must be after"),
        ("civil-order-made", {"order": "asbo"}, "order"),
        ("licence-conditions-set", {"licence_end": "2026-01-01"}, "licence_end must be"),
        (
            "licence-conditions-set",
            {"curfew": {"start": "25:00", "end": "07:00", "address": None}},
            "curfew",
        ),
        ("breach-recall", {"recall_type": None}, "names the recall type"),
        ("breach-recall", {"breach_of": "order"}, "recall is for breach of licence"),
        (
            "breach-recall",
            {"event": "returned-to-custody", "establishment": None},
            "names the establishment",
        ),
        ("area-transfer", {"to_area": "staffordshire"}, "to_area must differ"),
        ("area-transfer", {"transfer_due_by": "2027-01-01"}, "cannot be before move_date"),
        ("area-transfer", {"stage": "accepted"}, "names the receiving lead"),
        ("disclosure-decision", {"what_disclosed": None}, "says what is disclosed"),
        ("disclosure-decision", {"decision": "do-not-disclose"}, "nothing is disclosed"),
        ("victim-views", {"victims": []}, "victims"),
        ("serious-further-offence", {"charged_on": "2027-01-01"}, "cannot be before"),
        ("exit-from-mappa", {"reason": "bored"}, "reason"),
        ("risk-assessment", {"risk_to": ["children"] * 6}, "risk_to"),
    ],
)
def test_incoherent_messages_are_refused(
    message_type: str, changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        from_data(CATALOGUE[message_type], changed(message_type, **changes))


def test_examples_are_valid_as_given() -> None:
    for message_type in TYPES:
        from_data(CATALOGUE[message_type], changed(message_type))
