"""schemathesis against the API's own OpenAPI document: generated requests, valid and
invalid, with real credentials and real message ids, on a real broker. No 5xx, and
every response conforms to the document (status, content type, body schema).

The app runs exactly as `mappa serve` runs it (the same composition and the same
runtime: its own broker connection, gateways polling in the background) inside
schemathesis's in-process ASGI client."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from agency_adapters.registry import adapter_for
from broker.agreements import agreement_for_area
from broker.api.compose import application
from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.api.limits import FailureLimiter
from broker.api.models import ARMS_EXAMPLE
from broker.api.runtime import ServeConfig, deployment_backend
from broker.gateway.agency import utc_now
from broker.settings import Settings
from broker.trust.provision import DataPaths, provision
from tests.support import (
    AREA,
    HOUSING,
    PARTIES,
    POLICE,
    PRISON,
    PROBATION,
    SPECS,
    seed_case_team_on_disk,
)

SERVED = (POLICE, PROBATION, PRISON, HOUSING)
EXAMPLES_PER_STRATEGY = 8
AGENCY_PATHS = {
    "/v1/agencies/{agency_id}/records",
    "/v1/agencies/{agency_id}/inbox",
    "/v1/agencies/{agency_id}/inbox/{message_id}",
    "/v1/agencies/{agency_id}/inbox/{message_id}/ack",
    "/v1/agencies/{agency_id}/inbox/{message_id}/open",
    "/v1/agencies/{agency_id}/messages/{message_id}/deliveries",
    "/v1/agencies/{agency_id}/messages/{message_id}/corrections",
    "/v1/agencies/{agency_id}/inbox/erasures",
}
# Liveness and readiness: no token, no parameters.
HEALTH_PATHS = {"/healthz", "/readyz"}
TRANSFER_PATHS = {
    "/v1/agencies/{agency_id}/transfers",
    "/v1/agencies/{agency_id}/transfers/overdue",
    "/v1/agencies/{agency_id}/transfers/{transfer_id}",
    "/v1/agencies/{agency_id}/transfers/{transfer_id}/accept",
    "/v1/agencies/{agency_id}/transfers/{transfer_id}/refuse",
    "/v1/agencies/{agency_id}/transfers/{transfer_id}/cancel",
    "/v1/agencies/{agency_id}/transfers/{transfer_id}/complete",
}
# A transfer this deployment never saw: every step on it is refused (404), quickly.
UNKNOWN_TRANSFER = "00000000-0000-4000-8000-00000000abcd"


@dataclass
class Target:
    schema: Any
    tokens: dict[str, str]
    message_id: str


@pytest.fixture
def target(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Target]:
    config = Settings(
        data_dir=tmp_path / "data",
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        kafka_bootstrap=kafka_bootstrap,
    )
    passphrase = secrets.token_urlsafe(18).encode()
    directory = provision(DataPaths(config.data_dir), SPECS, passphrase=passphrase, now=utc_now())
    seed_case_team_on_disk(config.data_dir, passphrase, PARTIES)
    store = CredentialStore(credentials_path(config.data_dir))
    tokens = {a: store.issue(CredentialKind.AGENCY, a, now=utc_now()).token for a in SERVED}
    tokens["officer"] = store.issue(CredentialKind.OFFICER, "igo.1", now=utc_now()).token
    store.close()
    serve = ServeConfig(
        settings=config,
        passphrase=passphrase,
        agreement=agreement_for_area(AREA, [directory.agency(a) for a in PARTIES]),
        adapter_for=adapter_for,
        agencies=SERVED,
    )
    app = application(lambda: deployment_backend(serve))
    # schemathesis sends many wrong credentials from one address; past the failure ration
    # (tests/hostile/test_limits.py) every one would be a 429, not the 401 it checks for.
    app.state.auth_failures = FailureLimiter(allowed=10**9)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        with asgi.get_client(app) as client:  # type: ignore[arg-type]  # typed for dicts
            submitted = client.post(
                f"/v1/agencies/{POLICE}/records",
                json={"record": ARMS_EXAMPLE, "purpose": "risk management"},
                headers={"Authorization": f"Bearer {tokens[POLICE]}"},
            )
            assert submitted.status_code == 201, submitted.text
            message_id = submitted.json()["message_id"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the background pollers deliver it
                got = client.get(
                    f"/v1/agencies/{HOUSING}/inbox/{message_id}",
                    headers={"Authorization": f"Bearer {tokens[HOUSING]}"},
                )
                if got.status_code == 200:
                    break
                time.sleep(0.05)
            assert got.status_code == 200, got.text
        yield Target(schema, tokens, message_id)
    finally:
        asgi.shutdown_lifespans()  # stops pollers, gateways, stores, the app's broker client


def strategies(target: Target, operation: Any) -> st.SearchStrategy[Any]:
    names = {p.name for p in operation.path_parameters}
    if operation.path in HEALTH_PATHS:
        return st.one_of(
            operation.as_strategy(),
            operation.as_strategy(headers={"Authorization": f"Bearer {target.tokens[HOUSING]}"}),
        )
    if operation.path.startswith("/governance"):
        officer = {"Authorization": f"Bearer {target.tokens['officer']}"}
        not_officer = {"Authorization": f"Bearer {target.tokens[HOUSING]}"}
        return st.one_of(
            operation.as_strategy(headers=officer),
            operation.as_strategy(GenerationMode.NEGATIVE, headers=officer),
            operation.as_strategy(headers=not_officer),
        )
    options = []
    for agency in (POLICE, HOUSING):
        headers = {"Authorization": f"Bearer {target.tokens[agency]}"}
        fixed = {"agency_id": agency} | (
            {"message_id": target.message_id} if "message_id" in names else {}
        )
        if "transfer_id" in names:
            fixed["transfer_id"] = UNKNOWN_TRANSFER
        options += [
            operation.as_strategy(path_parameters=fixed, headers=headers),
            operation.as_strategy(path_parameters={"agency_id": agency}, headers=headers),
            operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
        ]
    # Someone else's credential on the same paths.
    options.append(
        operation.as_strategy(
            path_parameters={"agency_id": HOUSING},
            headers={"Authorization": f"Bearer {target.tokens[PROBATION]}"},
        )
    )
    return st.one_of(options)


def excluded(operation: Any) -> list[Any]:
    """A record's shape is its adapter's (police ARMS, housing, ...) and a cursor is
    opaque: the document leaves both open on purpose, so a schema-valid record or cursor
    may still be refused with a 422 that names the problem. Elsewhere the document is
    exact, and schema-valid requests must be accepted."""
    if operation.path.endswith(("/records", "/inbox")):
        return [schemathesis.checks.positive_data_acceptance]
    # A justification must say why in words (broker/gateway/justification.py), which no
    # JSON Schema pattern says for every script: a schema-valid one may be refused with
    # a 422 naming the rule, and audited.
    if operation.path.endswith("/open"):
        return [schemathesis.checks.positive_data_acceptance]
    # An entry, tree size or checkpoint the ledger does not (yet) have is a 404 or 422
    # naming it: what is acceptable depends on the ledger's state, not only the schema.
    if operation.path.startswith("/governance/"):
        return [schemathesis.checks.positive_data_acceptance]
    # Whether a well-formed transfer step is accepted depends on the transfer's state and
    # the caller's role (404, 403, 409, 422 each name why), not only on the schema.
    if "/transfers" in operation.path:
        return [schemathesis.checks.positive_data_acceptance]
    # A correction's record is its adapter's, and only the sender may correct; a message
    # named for erasure must be held and past retention (403, 404, 422 each name why).
    if operation.path.endswith(("/corrections", "/erasures")):
        return [schemathesis.checks.positive_data_acceptance]
    return []


# schemathesis's own strategies draw from `random` internally, which Hypothesis flags;
# the warning is about the tool's code, not ours.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_api_conforms_to_its_openapi_and_never_5xx(target: Target) -> None:
    operations = [result.ok() for result in target.schema.get_all_operations()]
    paths = {o.path for o in operations}
    assert {p for p in paths if not p.startswith("/governance")} == (
        AGENCY_PATHS | TRANSFER_PATHS | HEALTH_PATHS
    )
    assert "/governance/query" in paths
    for operation in operations:
        # The success path and a wrong credential, every time, not left to chance.
        for case, status in explicit_cases(target, operation):
            response = case.call_and_validate(excluded_checks=excluded(operation))
            if status is None:
                assert response.status_code < 500, (operation.label, response.text)
            else:
                assert response.status_code == status, (operation.label, response.text)

        @given(case=strategies(target, operation))
        @settings(
            # Transfer routes share one thin shape; fewer examples keep the suite quick.
            max_examples=EXAMPLES_PER_STRATEGY * (2 if "/transfers" in operation.path else 7),
            deadline=None,
            database=None,
            derandomize=True,  # the same examples on every run: CI is reproducible
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(excluded_checks=excluded(case.operation))

        run()


def governance_cases(target: Target, operation: Any) -> list[tuple[Any, int | None]]:
    """An officer is served (any status but a 5xx: an empty ledger may have no checkpoint
    yet); an agency's credential is refused."""
    path = {"seq": 0} if operation.path_parameters else {}
    return [
        (
            operation.Case(path_parameters=path, headers={"Authorization": f"Bearer {token}"}),
            expected,
        )
        for token, expected in ((target.tokens["officer"], None), (target.tokens[HOUSING], 403))
    ]


def explicit_cases(target: Target, operation: Any) -> list[tuple[Any, int | None]]:
    if operation.path.startswith("/governance"):
        return governance_cases(target, operation)
    if operation.path in HEALTH_PATHS:
        # The service is running and caught up: alive, and ready.
        return [(operation.Case(), 200)]
    names = {p.name for p in operation.path_parameters}
    path = {"message_id": target.message_id} if "message_id" in names else {}
    if "transfer_id" in names:
        path["transfer_id"] = UNKNOWN_TRANSFER
    body: dict[str, Any] = {}
    who, status = HOUSING, 200
    if "/transfers" in operation.path:
        status = 404 if "transfer_id" in names else 200
        if operation.method.upper() == "POST":
            body = {"reason": "tenancy allocation panel"}
            if "transfer_id" not in names:  # a request to an area nobody serves here
                body |= {
                    "pnc_id": "2011/0456789K",
                    "to_area": "west-mercia",
                    "move_date": "2026-12-24",
                }
                status = 422
    if operation.path.endswith("/records"):
        who, status = POLICE, 201
        body = {"record": ARMS_EXAMPLE, "purpose": "risk management"}
    elif operation.path.endswith("/corrections"):
        who, status = POLICE, 201  # the sender corrects its message
        body = {"record": ARMS_EXAMPLE, "purpose": "risk management", "reason": "level review"}
    elif operation.path.endswith("/erasures"):
        body = {"dry_run": False}  # nothing is past retention yet: nothing is erased
    elif operation.path.endswith("/deliveries"):
        who = POLICE  # the sender of the message; to anyone else it is a 404
    elif operation.path.endswith("/open"):
        body = {"justification": "tenancy allocation panel, case 17"}
    with_body = {"body": body, "media_type": "application/json"} if body else {}
    cases: list[tuple[Any, int | None]] = []
    for token, expected in ((target.tokens[who], status), (target.tokens[PROBATION], 403)):
        case = operation.Case(
            path_parameters={"agency_id": who, **path},
            headers={"Authorization": f"Bearer {token}"},
            **with_body,
        )
        cases.append((case, expected))
    return cases
