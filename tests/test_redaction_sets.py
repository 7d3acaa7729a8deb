"""Named redaction sets on top of the Sensitive field marks."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.common import Role, ViewKind, from_data
from schemas.isa import Access, ShareRule
from schemas.messages import RiskAssessment, derive_view, view_fields, view_model
from schemas.messages.base import REDACTION_SETS, Sensitivity, redaction_set, sensitivity_of
from tests.support import risk_assessment

SENSITIVE = {"victims", "health_notes", "intelligence_source"}


def test_standard_is_the_default_and_removes_every_sensitive_field() -> None:
    assert view_fields(RiskAssessment, ViewKind.REDACTED) == view_fields(
        RiskAssessment, ViewKind.REDACTED, "standard"
    )
    assert not SENSITIVE & view_fields(RiskAssessment, ViewKind.REDACTED)
    assert REDACTION_SETS["standard"] == frozenset(Sensitivity)


@pytest.mark.parametrize("name", sorted(REDACTION_SETS))
def test_each_set_removes_exactly_its_categories(name: str) -> None:
    kept = view_fields(RiskAssessment, ViewKind.REDACTED, name)
    for field in RiskAssessment.model_fields:
        category = sensitivity_of(RiskAssessment, field)
        assert (field in kept) == (category is None or category not in REDACTION_SETS[name])
    body = derive_view(risk_assessment(), ViewKind.REDACTED, name)
    assert set(body) <= kept
    view_model(RiskAssessment, ViewKind.REDACTED, name).model_validate_json(json.dumps(body))


def test_a_view_model_refuses_what_its_set_removes() -> None:
    narrow = derive_view(risk_assessment(), ViewKind.REDACTED, "victim")
    assert narrow["health_notes"] == "Community mental health team."
    assert "victims" not in narrow
    with pytest.raises(ValidationError) as err:
        view_model(RiskAssessment, ViewKind.REDACTED, "standard").model_validate_json(
            json.dumps(narrow)
        )
    assert {e["type"] for e in err.value.errors()} == {"extra_forbidden"}


def test_summary_and_full_ignore_the_set() -> None:
    for name in REDACTION_SETS:
        assert view_fields(RiskAssessment, ViewKind.SUMMARY, name) == view_fields(
            RiskAssessment, ViewKind.SUMMARY
        )
        assert view_model(RiskAssessment, ViewKind.FULL, name) is RiskAssessment


def test_unknown_set_is_refused_everywhere() -> None:
    with pytest.raises(ValueError, match="unknown redaction set 'most'"):
        redaction_set("most")
    with pytest.raises(ValueError, match="unknown redaction set"):
        view_fields(RiskAssessment, ViewKind.REDACTED, "most")
    with pytest.raises(ValidationError, match="unknown redaction set"):
        ShareRule(
            message_type="risk-assessment",
            role=Role.HOUSING,
            access=Access.REDACTED,
            redaction="most",
        )
    rule = from_data(
        ShareRule, {"message_type": "risk-assessment", "role": "housing", "access": "redacted"}
    )
    assert rule.redaction_set == "standard"
