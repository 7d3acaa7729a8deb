"""Agreement documents: located checks, signatures, versions only forward, the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.agreements import (
    agreement_for_area,
    load_agreement,
    save_agreement,
    sign_agreement,
    template_data,
    verify_agreement,
)
from broker.agreements.check import check_text, parse_agreement
from broker.cli.isa import render_yaml
from broker.cli.main import main
from broker.crypto.keys import PrivateKey
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.trust.admin import governance_key
from broker.trust.directory import Directory
from broker.trust.keystore import Keystore
from broker.trust.provision import GOVERNANCE, DataPaths, load_governance_public, provision
from schemas.directory import KeyAlg
from schemas.isa import Agreement
from tests.support import PARTIES, SPECS

TODAY = date(2026, 11, 23)
# The template as `isa init` renders it, for two parties of every kind in the tests.
TEMPLATE_TEXT = render_yaml(
    {
        **template_data(),
        "id": "mappa-default.staffordshire",
        "areas": ["staffordshire"],
        "parties": [
            {
                "agency_id": "police.staffordshire",
                "role": "police",
                "lawful_basis": "DPA 2018 Part 3",
                "basis_detail": "CJA 2003 s325",
            },
            {
                "agency_id": "housing.stoke-on-trent",
                "role": "housing",
                "lawful_basis": "UK GDPR",
                "basis_detail": "Art 6(1)(e)",
            },
        ],
    }
)
PASS = "agreement test passphrase"  # noqa: S105 - a test deployment's


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[DataPaths, Directory]:
    paths = DataPaths(tmp_path / "d")
    directory = provision(paths, SPECS, passphrase=PASS.encode(), now=datetime.now(UTC))
    return paths, directory


@pytest.fixture
def agreement(deployment: tuple[DataPaths, Directory]) -> Agreement:
    _, directory = deployment
    return agreement_for_area("staffordshire", [directory.agency(a) for a in PARTIES])


@pytest.fixture
def text(agreement: Agreement) -> str:
    return render_yaml(agreement.model_dump(mode="json", exclude_defaults=True))


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def line_containing(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(lines_of(text)) if needle in line]
    return hits[nth]


def only_error(text: str, **kw: object) -> str:
    result = check_text(text, today=TODAY, **kw)  # type: ignore[arg-type]
    assert len(result.errors) == 1, [f.render("isa.yaml") for f in result.findings]
    return result.errors[0].render("isa.yaml")


# -- check: the document is valid, and each kind of fault is found where it is ----------------


def test_instantiated_template_is_valid(text: str, deployment: tuple[DataPaths, Directory]) -> None:
    result = check_text(text, today=TODAY, directory=deployment[1])
    assert result.ok
    assert result.agreement is not None
    assert result.agreement.id == "mappa-default.staffordshire"
    # The template has rules for roles the four parties do not hold: warned, once per role.
    roles = [f.message for f in result.warnings if "no party holds" in f.message]
    assert any("coordinator" in m for m in roles)


def test_misspelt_access_names_line_field_and_choices(text: str) -> None:
    target = line_containing(text, "role: housing, access: redacted")
    broken = text.replace("role: housing, access: redacted", "role: housing, access: ful", 1)
    index = next(i for i, r in enumerate(yaml.safe_load(text)["rules"]) if r["role"] == "housing")
    assert only_error(broken) == (
        f"isa.yaml:{target}: rules[{index}].access: 'ful' is not one of full, redacted, "
        "summary, none"
    )


def test_unknown_role_is_located(text: str) -> None:
    target = line_containing(text, "role: prison, access: full")
    broken = text.replace("role: prison, access: full", "role: prisn, access: full", 1)
    message = only_error(broken)
    assert message.startswith(f"isa.yaml:{target}: rules[")
    assert "'prisn' is not one of police, probation, prison" in message


def test_missing_and_unknown_fields(text: str) -> None:
    no_purpose = "\n".join(
        line for line in lines_of(text) if not line.startswith(("purpose:", "  Act 2003"))
    )
    result = check_text(no_purpose, today=TODAY)
    assert [f.render("isa.yaml") for f in result.errors] == [
        "isa.yaml:2: purpose: required field is missing"
    ]
    extra = text.replace("onward_sharing: prohibited", "onward_sharing: prohibited\ncolour: red")
    assert only_error(extra) == (
        f"isa.yaml:{line_containing(extra, 'colour')}: colour: unknown field "
        "(not part of an agreement)"
    )


def test_unknown_message_type(text: str) -> None:
    broken = text.replace(
        "{message_type: risk-assessment, role: probation",
        "{message_type: risk-asessment, role: probation",
        1,
    )
    line = line_containing(broken, "risk-asessment")
    assert only_error(broken).startswith(f"isa.yaml:{line}: rules[")
    assert only_error(broken).endswith("message_type: unknown message type 'risk-asessment'")


def test_duplicate_rule_points_at_the_second(text: str) -> None:
    rule = "  - {message_type: risk-assessment, role: police, access: full}"
    assert rule in text
    doubled = text.replace(rule, rule + "\n" + rule.replace("full", "summary"), 1)
    message = only_error(doubled)
    second = line_containing(doubled, "role: police, access: summary")
    assert message.startswith(f"isa.yaml:{second}: rules[")
    assert "two rules for risk-assessment to police" in message


def test_duplicate_publishers_entry(text: str) -> None:
    pub = "  - {message_type: risk-assessment, roles: [police, probation]}"
    assert pub in text
    doubled = text.replace(pub, pub + "\n" + pub, 1)
    assert "risk-assessment has two publishers entries" in only_error(doubled)


def test_redaction_set_rules(text: str) -> None:
    on_full = text.replace(
        "role: police, access: full}", "role: police, access: full, redaction: victim}", 1
    )
    assert "applies only to access 'redacted', not 'full'" in only_error(on_full)
    unknown = text.replace(
        "role: housing, access: redacted,", "role: housing, access: redacted, redaction: most,", 1
    )
    message = only_error(unknown)
    assert "unknown redaction set 'most'; known: standard, victim" in message
    assert message.startswith(f"isa.yaml:{line_containing(unknown, 'redaction: most')}:")
    named = text.replace(
        "role: housing, access: redacted,", "role: housing, access: redacted, redaction: victim,", 1
    )
    assert check_text(named, today=TODAY).ok


def test_dates(text: str) -> None:
    expired = check_text(text, today=date(2029, 1, 1))
    assert [f.render("isa.yaml") for f in expired.errors] == [
        f"isa.yaml:{line_containing(text, 'valid_until')}: valid_until: expired on 2028-12-31 "
        "(today is 2029-01-01): nothing may be shared under it"
    ]
    review = check_text(text, today=date(2028, 2, 1))
    assert review.ok
    assert any(f.loc == ("review_date",) for f in review.warnings)
    early = check_text(text, today=date(2025, 6, 1))
    assert early.ok
    assert any(f.loc == ("valid_from",) for f in early.warnings)
    backwards = text.replace("valid_from: '2026-01-01'", "valid_from: '2029-06-01'")
    assert "valid_until must be later than valid_from" in only_error(backwards)


def test_parties_against_the_directory(text: str, deployment: tuple[DataPaths, Directory]) -> None:
    directory = deployment[1]
    unknown = text.replace("agency_id: housing.stoke-on-trent", "agency_id: housing.nowhere")
    assert only_error(unknown, directory=directory) == (
        f"isa.yaml:{line_containing(unknown, 'housing.nowhere')}: parties[3].agency_id: "
        "housing.nowhere is not in the trust directory (version 1)"
    )
    wrong_role = text.replace("  role: housing\n", "  role: health\n")
    assert "is a housing agency in the directory, not health" in only_error(
        wrong_role, directory=directory
    )
    wrong_area = text.replace("- staffordshire", "- derbyshire")
    result = check_text(wrong_area, today=TODAY, directory=directory)
    assert len(result.errors) == len(PARTIES)
    assert all("none of the agreement's areas (derbyshire)" in f.message for f in result.errors)


def test_not_yaml_or_not_a_mapping() -> None:
    result = check_text("kind: mappa.isa\nrules: [unclosed\n", today=TODAY)
    assert result.errors[0].message.startswith("not valid YAML")
    assert result.errors[0].line is not None
    assert check_text("- a list\n", today=TODAY).errors[0].message == (
        "an agreement is a YAML mapping"
    )


def test_parse_agreement_raises_with_the_first_error(text: str) -> None:
    with pytest.raises(SchemaError) as err:
        parse_agreement(text.replace("version: 1", "version: 0"), today=TODAY)
    assert err.value.code == "isa.invalid"
    assert "version" in err.value.reason


# -- signing and versions ------------------------------------------------------------------------


def gov(paths: DataPaths) -> PrivateKey:
    key = governance_key(Keystore(paths.keys, PASS.encode()))
    assert key is not None
    return key


def test_signature_covers_the_whole_document(
    agreement: Agreement, deployment: tuple[DataPaths, Directory]
) -> None:
    paths, _ = deployment
    signed = sign_agreement(agreement, gov(paths))
    anchor = load_governance_public(paths)
    assert verify_agreement(signed.model_dump_json().encode(), governance_key=anchor) == agreement
    doc = json.loads(signed.model_dump_json())
    doc["document"]["rules"][0]["access"] = "summary"
    with pytest.raises(VerificationError) as err:
        verify_agreement(json.dumps(doc).encode(), governance_key=anchor)
    assert err.value.code == "verification.signature-invalid"
    other = sign_agreement(agreement, PrivateKey.generate(KeyAlg.ED25519))
    with pytest.raises(VerificationError) as err:
        verify_agreement(other, governance_key=anchor)
    assert err.value.code == "isa.wrong-signer"
    with pytest.raises(SchemaError) as malformed:
        verify_agreement(b'{"document": {}}', governance_key=anchor)
    assert malformed.value.code == "isa.malformed"


def test_versions_only_go_forward(
    agreement: Agreement, deployment: tuple[DataPaths, Directory]
) -> None:
    paths, _ = deployment
    key, anchor = gov(paths), load_governance_public(paths)
    with pytest.raises(ConfigurationError):
        load_agreement(paths, agreement.id, anchor)
    save_agreement(paths, sign_agreement(agreement, key), anchor)
    save_agreement(paths, sign_agreement(agreement, key), anchor)  # the same again: fine
    v2 = agreement.model_copy(update={"version": 2, "title": "Second edition"})
    save_agreement(paths, sign_agreement(v2, key), anchor)
    assert load_agreement(paths, agreement.id, anchor).title == "Second edition"
    with pytest.raises(VerificationError) as err:
        save_agreement(paths, sign_agreement(agreement, key), anchor)
    assert err.value.code == "isa.rollback"
    other_v2 = v2.model_copy(update={"title": "A rival second edition"})
    with pytest.raises(VerificationError) as err:
        save_agreement(paths, sign_agreement(other_v2, key), anchor)
    assert err.value.code == "isa.version-conflict"
    # An old signed file copied back over the current one is refused on load.
    (paths.agreements / f"{agreement.id}.json").write_text(
        sign_agreement(agreement, key).model_dump_json()
    )
    with pytest.raises(VerificationError) as err:
        load_agreement(paths, agreement.id, anchor)
    assert err.value.code == "isa.rollback"


# -- the CLI --------------------------------------------------------------------------------------


def isa(data_dir: Path, *args: str) -> int:
    return main(["isa", "--data-dir", str(data_dir), *args])


def test_cli_init_check_sign_show(
    deployment: tuple[DataPaths, Directory],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    paths, _ = deployment
    out = tmp_path / "isa.yaml"
    parties = [arg for a in PARTIES for arg in ("--party", a)]
    assert isa(paths.root, "init", "--area", "staffordshire", *parties, "--out", str(out)) == 0
    assert isa(paths.root, "check", str(out), "--today", "2026-11-23") == 0
    assert "is valid" in capsys.readouterr().out
    assert isa(paths.root, "check", str(out), "--today", "2026-11-23", "--strict") == 1

    broken = tmp_path / "broken.yaml"
    broken.write_text(out.read_text().replace("access: redacted", "access: ful", 1))
    capsys.readouterr()
    assert isa(paths.root, "check", str(broken)) == 1
    report = capsys.readouterr().out
    assert f"{broken}:" in report
    assert "'ful' is not one of full, redacted, summary, none" in report
    assert isa(paths.root, "sign", str(broken)) == 1
    assert "isa.invalid" in capsys.readouterr().err

    assert isa(paths.root, "sign", str(out)) == 0
    assert "version 1 signed and in force" in capsys.readouterr().out
    signed_file = paths.agreements / "mappa-default.staffordshire.json"
    assert isa(paths.root, "check", str(signed_file), "--today", "2026-11-23") == 0
    assert isa(paths.root, "show", "--id", "mappa-default.staffordshire") == 0
    shown = capsys.readouterr().out
    assert "risk-assessment" in shown
    lines = shown.splitlines()
    header = next(line for line in lines if line.startswith("message type"))
    row = next(line for line in lines if line.startswith("risk-assessment"))
    # Two headings ("message type", "published by") are two words each.
    # Housing sees a risk assessment redacted, and only while on the case team.
    assert row.split()[header.split().index("housing") - 2] == "C-R"
    assert isa(paths.root, "show", str(out), "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == "mappa-default.staffordshire"
    assert isa(paths.root, "show", str(signed_file), "--json") == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    # A signed file altered after signing is refused by check and show alike.
    forged = tmp_path / "forged.json"
    doc = json.loads(signed_file.read_text())
    doc["document"]["onward_sharing"] = "as-required-by-law"
    forged.write_text(json.dumps(doc))
    for command in ("check", "show"):
        assert isa(paths.root, command, str(forged)) == 1
        assert "verification.signature-invalid" in capsys.readouterr().err


def test_cli_sign_refuses_without_governance_key(
    deployment: tuple[DataPaths, Directory],
    text: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    paths, _ = deployment
    for held in (paths.keys / GOVERNANCE).iterdir():
        held.unlink()
    source = tmp_path / "isa.yaml"
    source.write_text(text)
    assert isa(paths.root, "sign", str(source)) == 1
    assert "no governance key" in capsys.readouterr().err


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_bad_access_is_reported_on_its_own_line(data: st.DataObject) -> None:
    """Whichever rule is broken, the error names that rule and the line it is on."""
    text = TEMPLATE_TEXT
    rule_lines = [n for n, line in enumerate(text.splitlines()) if "access: " in line]
    index = data.draw(st.integers(0, len(rule_lines) - 1))
    bad = data.draw(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).filter(
            lambda v: v not in {"full", "redacted", "summary", "none"}
        )
    )
    lines = text.splitlines()
    n = rule_lines[index]
    lines[n] = re.sub(r"access: \w+", f"access: {bad}", lines[n])
    result = check_text("\n".join(lines) + "\n", today=TODAY)
    [error] = result.errors
    assert error.line == n + 1
    assert error.field == f"rules[{index}].access"
    # (YAML reads some words, such as null or yes, as other types; the value is quoted
    # as the checker saw it.)
    assert error.message.endswith("is not one of full, redacted, summary, none")


def test_oversized_and_alias_bombs_are_refused_not_expanded() -> None:
    huge = "kind: mappa.isa\npurpose: '" + "x" * (1_048_576) + "'\n"
    assert "larger than" in check_text(huge, today=TODAY).errors[0].message
    bomb = ["a: &a [" + ",".join(["x" * 64] * 64) + "]"]
    for level in "bcdef":
        prev = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [" + ",".join([f"*{prev}"] * 16) + "]")
    result = check_text("\n".join(bomb) + "\n", today=TODAY)
    assert "too large" in result.errors[0].message
    recursive = check_text("kind: &k [*k]\n", today=TODAY)
    assert recursive.errors[0].message == "a YAML alias refers to itself"


def test_responsible_authority_under_uk_gdpr_is_warned(text: str) -> None:
    police_basis = (
        "- agency_id: police.staffordshire\n  role: police\n  lawful_basis: DPA 2018 Part 3"
    )
    assert police_basis in text
    changed = text.replace(police_basis, police_basis.replace("DPA 2018 Part 3", "UK GDPR"))
    result = check_text(changed, today=TODAY)
    assert result.ok
    [warning] = [f for f in result.warnings if f.loc == ("parties", 0, "lawful_basis")]
    assert warning.line == line_containing(changed, "lawful_basis: UK GDPR")
