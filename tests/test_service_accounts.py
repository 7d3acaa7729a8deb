"""API credentials are service accounts: the audit names the account, and the named user
it acts for (``X-Mappa-On-Behalf-Of``) only where the agency's agreement allows that and
the user is an active user of that agency who may see message content. Every refusal is
a 403 ``auth.on-behalf-refused``, one message for all, audited in the agency's log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.roles import Role
from broker.identity.users import UserStore
from broker.kafka.transport import KafkaTransport
from schemas.isa import Agreement
from tests.support import HOUSING, POLICE
from tests.test_api import JUSTIFICATION, Api, arms_record, running_api

PASSWORD = "correct horse battery staple"  # noqa: S105 - the test users'
# username: (agency, role); "h.gone" is disabled once added.
USERS = {
    "h.officer": (HOUSING, Role.AGENCY_USER),
    "h.gone": (HOUSING, Role.AGENCY_USER),
    "h.ig": (HOUSING, Role.IG_OFFICER),
    "ppu.officer": (POLICE, Role.AGENCY_USER),
}
ON_BEHALF = "X-Mappa-On-Behalf-Of"


def housing_may_act_for_users(agreement: Agreement) -> Agreement:
    parties = tuple(
        p.model_copy(update={"service_accounts_act_for_users": p.agency_id == HOUSING})
        for p in agreement.parties
    )
    return agreement.model_copy(update={"parties": parties})


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, transport: KafkaTransport
) -> AsyncIterator[Api]:
    where = tmp_path_factory.mktemp("service-accounts")
    async with running_api(where, transport, tailor=housing_may_act_for_users) as running_one:
        add_users(running_one.world.deployment.settings.data_dir)
        yield running_one


def add_users(data_dir: Path) -> None:
    with IdentityDatabase(identity_path(data_dir)) as database:
        users = UserStore(database)
        now = datetime.now(UTC)
        for username, (agency, role) in USERS.items():
            users.add(username, agency=agency, role=role, password=PASSWORD, actor="test", now=now)
        users.disable("h.gone", actor="test", now=now)


async def housing_entries(api: Api) -> list[dict[str, Any]]:
    """Every event the ledger holds for housing, as the officer's query gives them."""
    await api.world.sync_ledger()
    page = await api.client.post(
        "/governance/query",
        json={"agency": HOUSING, "limit": "500"},
        headers=api.auth("officer"),
    )
    assert page.status_code == 200, page.text
    entries: list[dict[str, Any]] = page.json()["entries"]
    return entries


async def test_acting_for_a_named_user_is_audited_with_both(api: Api) -> None:
    message_id = await api.published()
    url = f"/v1/agencies/{HOUSING}/inbox/{message_id}"
    headers = api.auth(HOUSING) | {ON_BEHALF: "h.officer"}
    opened = await api.client.post(
        f"{url}/open", json={"justification": JUSTIFICATION}, headers=headers
    )
    assert opened.status_code == 200, opened.text
    acked = await api.client.post(f"{url}/ack", headers=headers)
    assert acked.json()["acknowledged_by"] == f"h.officer via {api.service(HOUSING)}"
    audited = [e["user"] for e in await housing_entries(api)]
    assert f"h.officer via {api.service(HOUSING)}" in audited


async def test_without_on_behalf_the_service_account_alone_is_named(api: Api) -> None:
    message_id = await api.published()
    url = f"/v1/agencies/{HOUSING}/inbox/{message_id}"
    opened = await api.client.post(
        f"{url}/open", json={"justification": JUSTIFICATION}, headers=api.auth(HOUSING)
    )
    assert opened.status_code == 200, opened.text
    acked = await api.client.post(f"{url}/ack", headers=api.auth(HOUSING))
    assert acked.json()["acknowledged_by"] == api.service(HOUSING)


@pytest.mark.parametrize(
    ("agency", "named"),
    [
        (HOUSING, "nobody.here"),  # no such user
        (HOUSING, "h.gone"),  # disabled
        (HOUSING, "h.ig"),  # an IG officer never sees message content
        (HOUSING, "ppu.officer"),  # another agency's user
        (POLICE, "ppu.officer"),  # the agreement does not let police act for its users
        (HOUSING, "H.OFFICER"),  # names are exact
    ],
)
async def test_acting_for_someone_not_allowed_is_refused_and_audited(
    api: Api, agency: str, named: str
) -> None:
    before = await housing_entries(api)
    submitted = await api.client.post(
        f"/v1/agencies/{agency}/records",
        json={"record": arms_record(), "purpose": "risk management"},
        headers=api.auth(agency) | {ON_BEHALF: named},
    )
    assert submitted.status_code == 403, submitted.text
    assert submitted.json()["error"] == "auth.on-behalf-refused"
    assert named not in submitted.text
    if agency == HOUSING:
        new = [e for e in await housing_entries(api) if e not in before]
        assert [(e["outcome"], e["reason_code"], e["user"]) for e in new] == [
            ("refused", "auth.on-behalf-refused", api.service(HOUSING))
        ]


async def test_an_on_behalf_name_out_of_bounds_is_a_422(api: Api) -> None:
    answer = await api.client.post(
        f"/v1/agencies/{HOUSING}/records",
        json={"record": arms_record(), "purpose": "risk management"},
        headers=api.auth(HOUSING) | {ON_BEHALF: "h" * 101},
    )
    assert (answer.status_code, answer.json()["error"]) == (422, "request.invalid"), answer.text
