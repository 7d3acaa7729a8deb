"""The API's parts without a broker: credentials, the error mapping, the OpenAPI
document and the `mappa api` commands."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.agreements import read_agreement, sign_agreement
from broker.api.app import openapi_json
from broker.api.auth import NotFound, ServiceStarting
from broker.api.compose import application
from broker.api.credentials import (
    MAX_LIFETIME,
    AccessDenied,
    AuthenticationFailed,
    CredentialInfo,
    CredentialKind,
    CredentialStore,
)
from broker.api.errors import status_for
from broker.api.operations import decode_cursor
from broker.cli.api import documentation_only
from broker.cli.main import main
from broker.cli.serve import adapter_choice, default_agreement
from broker.crypto.keys import PrivateKey
from broker.errors import (
    ConfigurationError,
    DecryptionError,
    KeyUnavailable,
    MappaError,
    NotAddressed,
    PolicyDenied,
    ReplayError,
    SchemaError,
    StoreUnavailable,
    VerificationError,
)
from broker.gateway.agency import utc_now
from broker.kafka.transport import TransportError
from broker.trust.provision import DataPaths, provision
from schemas.common import parse_timestamp
from schemas.directory import KeyAlg
from tests.support import HOUSING, SPECS

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CredentialStore]:
    credentials = CredentialStore(tmp_path / "creds.sqlite")
    yield credentials
    credentials.close()


def test_a_token_authenticates_as_its_principal_only(store: CredentialStore) -> None:
    issued = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW, label="housing system")
    assert issued.token not in repr(issued)
    principal = store.authenticate(issued.token, now=NOW)
    assert (principal.kind, principal.name) == (CredentialKind.AGENCY, HOUSING)
    officer = store.issue(CredentialKind.OFFICER, "igo.smith", now=NOW)
    assert store.authenticate(officer.token, now=NOW).kind is CredentialKind.OFFICER
    assert [c.principal for c in store.list()] == [HOUSING, "igo.smith"]


def test_only_the_hash_is_stored(store: CredentialStore) -> None:
    issued = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW)
    store.close()
    raw = store.path.read_bytes()
    secret = issued.token.split("_", 2)[2]  # the id has no "_"; the secret may
    assert secret.encode() not in raw
    assert hashlib.sha256(issued.token.encode()).hexdigest().encode() in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_every_bad_token_gets_the_same_refusal(store: CredentialStore) -> None:
    token = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW).token
    mappa, token_id, secret = token.split("_", 2)
    prefix = f"{mappa}_{token_id}"
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in (
        "",
        "x",
        f"{prefix}_{flipped}",  # right id, wrong secret
        "mappa_0123456789abcdef_" + secret,  # unknown id
        token + "x",
        token[:-1],
        token * 4,  # too long to be one
        token.upper(),
    ):
        with pytest.raises(AuthenticationFailed) as caught:
            store.authenticate(bad, now=NOW)
        assert str(caught.value) == "the bearer credential is missing, invalid or revoked"
    credential_id = prefix.split("_")[1]
    assert store.revoke(credential_id, now=NOW)
    with pytest.raises(AuthenticationFailed):
        store.authenticate(token, now=NOW)


def test_a_token_stops_at_its_expiry(store: CredentialStore) -> None:
    token = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW, lifetime=timedelta(hours=1)).token
    [info] = store.list()
    assert info.expires_at == "2026-11-23T13:00:00.000Z"
    assert store.authenticate(token, now=NOW + timedelta(minutes=59)).name == HOUSING
    assert info.state(NOW + timedelta(minutes=59)) == "active"
    for late in (NOW + timedelta(hours=1), NOW + timedelta(days=400)):
        with pytest.raises(AuthenticationFailed) as caught:
            store.authenticate(token, now=late)
        assert str(caught.value) == "the bearer credential is missing, invalid or revoked"
    assert info.state(NOW + timedelta(hours=1)) == "expired"


@pytest.mark.parametrize("lifetime", [timedelta(0), timedelta(seconds=-1), MAX_LIFETIME * 2])
def test_a_lifetime_out_of_bounds_is_refused(store: CredentialStore, lifetime: timedelta) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        store.issue(CredentialKind.AGENCY, HOUSING, now=NOW, lifetime=lifetime)
    assert caught.value.code == "auth.invalid-lifetime"
    assert store.list() == []


def test_rotation_hands_over_within_the_grace_period(store: CredentialStore) -> None:
    old = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW, label="housing system", actor="a")
    new = store.rotate(
        old.info.credential_id, now=NOW, grace=timedelta(hours=1), actor="os:ops@host"
    )
    assert (new.info.principal, new.info.label) == (HOUSING, "housing system")
    assert new.info.replaces == old.info.credential_id
    assert new.info.issued_by == "os:ops@host"
    # Both work during the grace period; the old one stops at its end.
    in_grace = NOW + timedelta(minutes=30)
    assert store.authenticate(old.token, now=in_grace).credential_id == old.info.credential_id
    assert store.authenticate(new.token, now=in_grace).credential_id == new.info.credential_id
    with pytest.raises(AuthenticationFailed):
        store.authenticate(old.token, now=NOW + timedelta(hours=1))
    assert store.authenticate(new.token, now=NOW + timedelta(days=89)).name == HOUSING
    # A rotated-away credential cannot be rotated again once it has stopped.
    with pytest.raises(AuthenticationFailed) as caught:
        store.rotate(old.info.credential_id, now=NOW + timedelta(hours=2))
    assert caught.value.code == "auth.no-such-credential"


def test_rotation_without_grace_revokes_at_once(store: CredentialStore) -> None:
    old = store.issue(CredentialKind.AGENCY, HOUSING, now=NOW)
    store.rotate(old.info.credential_id, now=NOW, actor="os:ops@host")
    with pytest.raises(AuthenticationFailed):
        store.authenticate(old.token, now=NOW)
    [first, successor] = store.list()
    assert (first.revoked_at, first.revoked_by) == ("2026-11-23T12:00:00.000Z", "os:ops@host")
    for bad in ("0123456789abcdef", old.info.credential_id):
        with pytest.raises(AuthenticationFailed) as caught:
            store.rotate(bad, now=NOW)
        assert caught.value.code == "auth.no-such-credential"
    with pytest.raises(AuthenticationFailed) as caught:
        store.rotate(successor.credential_id, now=NOW, grace=MAX_LIFETIME)
    assert caught.value.code == "auth.invalid-lifetime"


def test_a_store_from_before_expiry_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE credentials (credential_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "principal TEXT NOT NULL, token_sha256 TEXT NOT NULL, label TEXT, "
            "issued_at TEXT NOT NULL, revoked_at TEXT)"
        )
        token = "mappa_0123456789abcdef_" + "A" * 43
        digest = hashlib.sha256(token.encode()).hexdigest()
        db.execute(
            "INSERT INTO credentials VALUES ('0123456789abcdef', 'agency', ?, ?, NULL, "
            "'2026-11-01T00:00:00.000Z', NULL)",
            (HOUSING, digest),
        )
    db.close()
    store = CredentialStore(path)
    try:
        [info] = store.list()
        assert info.expires_at == "2027-01-30T00:00:00.000Z"  # 90 days after issue
        assert store.authenticate(token, now=NOW).name == HOUSING
        with pytest.raises(AuthenticationFailed):
            store.authenticate(token, now=datetime(2027, 1, 30, tzinfo=UTC))
    finally:
        store.close()


def test_principal_names_are_checked(store: CredentialStore) -> None:
    for bad in ("", "Police.X", "a b", "x" * 101, "../etc"):
        with pytest.raises(AuthenticationFailed, match="not a valid"):
            store.issue(CredentialKind.OFFICER, bad, now=NOW)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AuthenticationFailed("x"), 401),
        (AccessDenied("x"), 403),
        (PolicyDenied("x"), 403),
        (PolicyDenied("x", code="policy.agreement-expired"), 403),
        (PolicyDenied("x", code="consult.justification-missing"), 422),
        (SchemaError("x"), 422),
        (SchemaError("x", code="consult.not-found"), 404),
        (NotFound("x"), 404),
        (NotAddressed("x"), 404),
        (VerificationError("x"), 409),
        (DecryptionError("x"), 409),
        (ReplayError("x"), 409),
        (KeyUnavailable("x"), 503),
        (TransportError("x"), 503),
        (ServiceStarting("x"), 503),
        (StoreUnavailable("x"), 503),
        (SchemaError("x", code="request.idempotency-key-invalid"), 400),
        (SchemaError("x", code="request.idempotency-key-reused"), 422),
        (ConfigurationError("x"), 500),
        (MappaError("x"), 400),
    ],
)
def test_status_for_each_error_kind(error: MappaError, status: int) -> None:
    assert status_for(error) == status


def test_cursor_decoding_refuses_what_it_did_not_make() -> None:
    for bad in ("", "!!!!", "bm90IGpzb24", "WzFd", "WzEsMl0", "x" * 401):
        with pytest.raises(SchemaError) as caught:
            decode_cursor(bad)
        assert caught.value.code == "request.invalid-cursor"
    assert decode_cursor("WyJhIiwiYiJd") == ("a", "b")


def test_checked_in_openapi_has_not_drifted() -> None:
    generated = openapi_json(application(documentation_only))
    checked_in = (ROOT / "docs/openapi.json").read_text()
    assert checked_in == generated, "docs/openapi.json is stale: run `make openapi`"
    paths = json.loads(checked_in)["paths"]
    # Every route needs a token but liveness and readiness, which a probe calls without one.
    open_paths = {"/healthz", "/readyz"}
    assert open_paths <= paths.keys()
    assert all(
        "mappaToken" in str(op["security"])
        for path, ops in paths.items()
        if path not in open_paths
        for op in ops.values()
    )
    assert not any("security" in op for path in open_paths for op in paths[path].values())


def test_the_cli_prints_the_same_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "openapi"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs/openapi.json").read_text()


def test_token_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d"
    assert main(["api", "--data-dir", str(data), "token", "list"]) == 1  # no deployment yet
    assert "mappa keys init" in capsys.readouterr().err
    provision(DataPaths(data), SPECS, passphrase=b"pass phrase for tests", now=utc_now())
    base = ["api", "--data-dir", str(data), "token"]
    assert main([*base, "issue", "--agency", HOUSING]) == 0
    token = capsys.readouterr().out.strip()
    assert main([*base, "issue", "--agency", "nobody.here"]) == 1
    assert "nobody.here" in capsys.readouterr().err
    assert main([*base, "issue", "--officer", "igo.smith", "--json", "--label", "IG"]) == 0
    officer = json.loads(capsys.readouterr().out)
    assert officer["kind"] == "officer"
    assert main([*base, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["principal"]) for r in listed] == [
        ("agency", HOUSING),
        ("officer", "igo.smith"),
    ]
    assert token not in json.dumps(listed)
    assert main([*base, "revoke", officer["credential_id"]]) == 0
    assert main([*base, "revoke", officer["credential_id"]]) == 1
    capsys.readouterr()
    assert main([*base, "list"]) == 0
    text = capsys.readouterr().out
    assert "revoked" in text
    assert "active" in text


def test_token_lifetimes_and_rotation_on_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    provision(DataPaths(data), SPECS, passphrase=b"pass phrase for tests", now=utc_now())
    base = ["api", "--data-dir", str(data), "token"]
    assert main([*base, "issue", "--agency", HOUSING, "--expires", "12h", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    lives = parse_timestamp(first["expires_at"]) - parse_timestamp(first["issued_at"])
    assert lives == timedelta(hours=12)
    assert first["issued_by"].startswith("os:")
    soon = (utc_now() + timedelta(days=3)).date().isoformat()
    assert main([*base, "issue", "--agency", HOUSING, "--expires", soon, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expires_at"] == f"{soon}T00:00:00.000Z"
    for bad in ("0d", "12", "1y", "2001-01-01", "400d", "-1h", "12h "):
        assert main([*base, "issue", "--agency", HOUSING, "--expires", bad]) in (1, 2), bad
        [err] = capsys.readouterr().err.splitlines()
        assert "--expires" in err or "at most 397 days" in err, bad
    assert main([*base, "rotate", first["credential_id"], "--grace", "1h", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["replaces"] == first["credential_id"]
    assert second["token"] != first.get("token")
    # Rotated with no grace: the old one is revoked, by whom the list says.
    assert main([*base, "rotate", second["credential_id"]]) == 0
    capsys.readouterr()
    assert main([*base, "list", "--json"]) == 0
    listed = {r["credential_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed[second["credential_id"]]["state"] == "revoked"
    assert listed[second["credential_id"]]["revoked_by"].startswith("os:")
    assert listed[first["credential_id"]]["state"] == "active"  # in its hour of grace
    assert main([*base, "rotate", second["credential_id"]]) == 1
    assert capsys.readouterr().err.strip().startswith("mappa: auth.no-such-credential:")


def test_serve_configuration_errors(tmp_path: Path) -> None:
    assert adapter_choice(["a.b=housing"]) == {"a.b": "housing"}
    for bad in ("a.b", "=x", "a.b="):
        with pytest.raises(ConfigurationError, match="AGENCY=KIND"):
            adapter_choice([bad])
    paths = DataPaths(tmp_path / "d")
    provision(paths, SPECS, passphrase=b"pass phrase for tests", now=utc_now())
    agreement = default_agreement(paths, None)
    assert agreement.areas == ("staffordshire",)
    assert len(agreement.parties) == len(SPECS)
    with pytest.raises(ConfigurationError, match="fewer than two"):
        default_agreement(paths, "cheshire")
    document = tmp_path / "isa.json"
    document.write_text(agreement.model_dump_json())
    assert read_agreement(document) == agreement
    # A signed agreement, as `mappa isa sign` writes it, is read for its document.
    signed = sign_agreement(agreement, PrivateKey.generate(KeyAlg.ED25519))
    document.write_text(signed.model_dump_json())
    assert read_agreement(document) == agreement
    document.write_text(json.dumps({**agreement.model_dump(mode="json"), "version": 0}))
    with pytest.raises(ConfigurationError, match="version"):
        read_agreement(document)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_agreement(tmp_path / "missing.yaml")


def test_an_unreadable_expiry_is_expired_for_list_and_login_alike() -> None:
    # ``CredentialInfo.state`` decides expiry as ``authenticate`` does (``_before``): a
    # stored expiry that cannot be read is past, never an error when listing.
    info = CredentialInfo(
        "0123456789abcdef", CredentialKind.AGENCY, HOUSING, None, "2026-11-23T12:00:00.000Z",
        None, "not a time",
    )  # fmt: skip
    assert info.state(NOW) == "expired"
