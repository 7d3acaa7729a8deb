"""The annual report on the real broker (issue 20; docs/statistics.md).

A small world holds one subject per edge case the definitions must settle; it is
published through the agencies' gateways on the embedded broker, and the report the
co-ordination unit computes from its store is checked cell by cell against the tables
worked out by hand below. The two published areas' tables are reproduced from
generated data in ``test_published_tables_are_reproduced``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
import shutil
import sqlite3
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.cli.main import main
from broker.cli.offline import offline_gateway
from broker.settings import Settings
from broker.statistics.annual import AnnualTables, ReportYear, annual_tables
from broker.statistics.generate import coordinator, provision_world, publish_plan
from broker.statistics.held import REPORT_TYPES, NotACoordinator, annual_report
from broker.statistics.plan import Plan, PlannedMessage, PlannedTransfer
from broker.trust.provision import DataPaths
from schemas.common import Role, from_data
from schemas.messages import CATALOGUE, MessageBody

pytestmark = pytest.mark.annual_report

AREA, NEIGHBOUR = "staffordshire", "west-mercia"
YEAR = ReportYear.parse("2013-14")
POLICE, PROBATION, PRISON, UNIT = Role.POLICE, Role.PROBATION, Role.PRISON, Role.COORDINATOR
BASIS = {
    1: "notification-requirements",
    2: "violent-sentence-12-months-or-more",
    3: "other-dangerous-offender",
}


class Person:
    """A fictional subject and builders of its messages."""

    def __init__(self, n: int, category: int) -> None:
        self.pnc = f"2005/{n:07d}T"
        self.category = category
        self.subject = {
            "pnc_id": self.pnc,
            "name": f"Test Person {chr(65 + n)}",
            "date_of_birth": "1975-01-01",
        }

    def body(self, message_type: str, level: int = 1, /, **fields: Any) -> MessageBody:
        return from_data(
            CATALOGUE[message_type],
            {"subject": self.subject, "area": AREA, "category": self.category, "level": level}
            | fields,
        )

    def eligible(self, sentenced: str, *, release: str | None = None) -> PlannedMessage:
        fields: dict[str, Any] = {
            "basis": BASIS[self.category],
            "index_offence": "an index offence",
            "conviction_date": sentenced,
            "sentence": "a sentence",
            "sentence_date": sentenced,
            "earliest_release_date": release,
        }
        if self.category == 1:
            fields["notification_period"] = "indefinite"
        sender = POLICE if self.category == 1 else PROBATION
        return PlannedMessage(sender, self.body("eligibility-notified", **fields))

    def level(self, level: int, on: str, *, corrects: int | None = None) -> PlannedMessage:
        body = self.body(
            "level-set",
            level,
            effective_date=on,
            next_review=f"{int(on[:4]) + 1}{on[4:]}",
            decided_at="MAPP meeting",
        )
        return PlannedMessage(UNIT, body, corrects)

    def returned(self, on: str, level: int, breach_of: str) -> PlannedMessage:
        body = self.body(
            "breach-recall",
            level,
            event="returned-to-custody",
            event_date=on,
            breach_of=breach_of,
            recall_type="standard",
            reason="breach",
            establishment="HMP Stafford",
        )
        return PlannedMessage(PROBATION, body)

    def order(self, kind: str, on: str) -> PlannedMessage:
        body = self.body(
            "civil-order-made",
            order=kind,
            change="made",
            court="Stafford Crown Court",
            made_on=on,
            prohibitions=["no unsupervised contact with children"],
        )
        return PlannedMessage(POLICE, body)

    def breach(self, outcome: str, on: str) -> PlannedMessage:
        court = {"court": "North Staffordshire Magistrates", "sentence": "fine"}
        body = self.body(
            "notification-breach-outcome",
            requirement_breached="annual",
            outcome=outcome,
            outcome_date=on,
            **(court if outcome == "conviction" else {}),
        )
        return PlannedMessage(POLICE, body)


def edge_cases() -> tuple[Plan, dict[str, Any]]:
    """One subject per edge case (issue 20, item 4), and the tables they make."""
    mover, two_three_two, again = Person(1, 1), Person(2, 2), Person(3, 1)
    cautioned, convicted = Person(4, 1), Person(5, 1)
    licence_2, licence_3 = Person(6, 1), Person(7, 2)
    sopo_2, sopo_3 = Person(8, 1), Person(9, 1)
    corrected, inside = Person(10, 3), Person(11, 2)
    messages = [
        # In on 30 March, out on 2 April: the receiving area's on 31 March.
        mover.eligible("2010-05-01"),
        # Level 2, then 3, then 2 again: once in each of the year's levels.
        two_three_two.eligible("2009-01-10"),
        two_three_two.level(2, "2013-05-01"),
        two_three_two.level(3, "2013-08-01"),
        two_three_two.level(2, "2013-11-01"),
        # Exit, then registered again: counted once, from the new eligibility.
        again.eligible("2008-02-02"),
        PlannedMessage(
            POLICE,
            again.body(
                "exit-from-mappa",
                reason="registration-ended",
                exit_date="2013-06-01",
                lead_agency=f"police.{AREA}",
            ),
        ),
        again.eligible("2013-10-01"),
        # One RSO cautioned and another convicted for breach of notification.
        cautioned.eligible("2011-03-03"),
        cautioned.breach("caution", "2013-07-01"),
        cautioned.order("notification-order", "2013-08-01"),
        convicted.eligible("2011-04-04"),
        convicted.breach("conviction", "2013-09-01"),
        # Returned for breach of licence at level 2 (still inside on 31 March) ...
        licence_2.eligible("2010-01-01", release="2012-01-01"),
        licence_2.level(2, "2012-01-01"),
        licence_2.returned("2013-10-10", 2, "licence"),
        # ... and at level 3, released again before 31 March.
        licence_3.eligible("2009-06-06"),
        licence_3.level(3, "2013-04-15"),
        licence_3.returned("2013-12-01", 3, "licence"),
        PlannedMessage(
            PRISON,
            licence_3.body(
                "release-scheduled",
                3,
                release_date="2014-02-01",
                establishment="HMP Stafford",
                address_approved=True,
            ),
        ),
        # Returned for breach of a SOPO at level 2 (made before the year: not in table 4)
        sopo_2.eligible("2011-05-05"),
        sopo_2.order("sopo", "2012-06-01"),
        sopo_2.level(2, "2013-05-01"),
        sopo_2.returned("2013-09-01", 2, "order"),
        # ... and at level 3 (made in the year: in table 4).
        sopo_3.eligible("2012-07-07"),
        sopo_3.order("sopo", "2013-06-01"),
        sopo_3.level(3, "2013-06-15"),
        sopo_3.returned("2013-11-01", 3, "order"),
        # A level set in error, corrected: only the correction counts.
        corrected.eligible("2012-08-08"),
        corrected.level(3, "2013-05-01"),
        # In custody until 2015: counted nowhere.
        inside.eligible("2012-09-09", release="2015-01-01"),
    ]
    correction = corrected.level(2, "2013-05-01", corrects=len(messages) - 2)
    messages.insert(len(messages) - 1, correction)
    transfers = [
        PlannedTransfer(mover.pnc, NEIGHBOUR, AREA, date(2014, 3, 28), date(2014, 3, 30), True),
        PlannedTransfer(mover.pnc, AREA, NEIGHBOUR, date(2014, 4, 2), date(2014, 4, 2), True),
    ]
    expected = {
        "snapshot_31_march": {"L1": [4, 0, None], "L2": [0, 1, 1], "L3": [0, 1, 0]},
        "yearly_l2_l3": {"L2": [2, 1, 1], "L3": [1, 2, 0]},
        "rso_breach_notification": 2,
        "orders_imposed": {"SOPO": 1, "NO": 1, "FTO": 0},
        "returned_to_custody_breach_licence": {"L2": [1, 0, 0], "L3": [0, 1, 0]},
        "returned_to_custody_breach_sopo": {"L2": 1, "L3": 1},
    }
    return Plan(AREA, NEIGHBOUR, YEAR, messages, transfers), expected


ORDER_KEYS = {"SOPO": "sopo", "NO": "notification-order", "FTO": "foreign-travel-order"}


def cells(tables: AnnualTables) -> dict[str, Any]:
    """The tables in the published file's shape (None where not applicable)."""

    def grid(g: dict[int, dict[int, int | None]], levels: tuple[int, ...]) -> dict[str, Any]:
        return {f"L{lv}": [g[lv][c] for c in (1, 2, 3)] for lv in levels}

    return {
        "snapshot_31_march": grid(tables.snapshot, (1, 2, 3)),
        "yearly_l2_l3": grid(tables.yearly, (2, 3)),
        "rso_breach_notification": tables.rso_breaches,
        "orders_imposed": {k: tables.orders[v] for k, v in ORDER_KEYS.items()},
        "returned_to_custody_breach_licence": grid(tables.returned_licence, (2, 3)),
        "returned_to_custody_breach_sopo": {f"L{lv}": tables.returned_sopo[lv][1] for lv in (2, 3)},
    }


def test_the_hand_worked_tables_hold_without_a_broker() -> None:
    plan, expected = edge_cases()
    held, transfers = plan.held(lambda pnc: hashlib.sha256(pnc.encode()).hexdigest())
    tables = annual_tables(held, transfers, area=AREA, year=YEAR)
    assert cells(tables) == expected
    assert tables.problems == []


@pytest.fixture(scope="module")
async def published(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> tuple[Settings, bytes]:
    """The edge-case world, published once on the embedded broker: its settings and
    passphrase."""
    plan, _ = edge_cases()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("annual"),
        kafka_bootstrap=kafka_bootstrap,
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
    )
    passphrase = secrets.token_urlsafe(16).encode()
    deployment = provision_world(settings, plan, passphrase)
    done = await publish_plan(deployment, plan)
    assert (done.messages, done.corrections, done.transfers_in, done.transfers_out) == (
        len(plan.messages),
        1,
        1,
        1,
    )
    return settings, passphrase


def report(settings: Settings, passphrase: bytes, agency: str = coordinator(AREA)) -> AnnualTables:
    with offline_gateway(settings, agency, (), passphrase=passphrase) as (gateway, _):
        before = gateway.ctx.audit.emitted
        tables = annual_report(gateway, year=YEAR, user="ig.officer.1")
        # One audit record for the run (a combination), waiting for the relay.
        assert gateway.ctx.audit.emitted == before + 1
    return tables


def test_the_unit_computes_the_hand_worked_tables_from_its_store(
    published: tuple[Settings, bytes],
) -> None:
    plan, expected = edge_cases()
    tables = report(*published)
    assert cells(tables) == expected
    assert tables.problems == []
    assert tables.left_out == {}
    # Every message was read from the store: the unit's levels from its own record.
    assert sum(tables.read.values()) == len(plan.messages)
    assert tables.read["level-set"] == sum(
        m.body.message_type == "level-set" for m in plan.messages
    )
    assert str(tables.pct_level1) == "57.1"


def test_a_record_altered_in_the_store_is_left_out_and_said(
    published: tuple[Settings, bytes], tmp_path: Path
) -> None:
    """The store is not trusted: a record whose bytes changed there does not verify, is
    not counted, and the report says so by its refusal code."""
    settings, passphrase = published
    copy = settings.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(settings.data_dir, copy.data_dir)
    with offline_gateway(copy, coordinator(AREA), (), passphrase=passphrase) as (gateway, _):
        sopo_3 = gateway.ctx.subject_key.reference(Person(9, 1).pnc)
    store = DataPaths(copy.data_dir).agency_store(coordinator(AREA))
    with sqlite3.connect(store) as db:
        (envelope,) = db.execute(
            "SELECT envelope FROM inbox WHERE subject_ref = ? AND message_type = 'breach-recall'",
            (sopo_3,),
        ).fetchone()
        at = envelope.index(b'"ciphertext":"') + len(b'"ciphertext":"') + 4
        altered = (
            envelope[:at] + (b"A" if envelope[at : at + 1] != b"A" else b"B") + envelope[at + 1 :]
        )
        db.execute("UPDATE inbox SET envelope = ? WHERE envelope = ?", (altered, envelope))
    tables = report(copy, passphrase)
    # The publication's one signature no longer covers what the store holds.
    assert tables.left_out == {"verification.signature-invalid": 1}
    _, expected = edge_cases()
    # Without its return to custody, that subject is in the community on 31 March.
    expected["returned_to_custody_breach_sopo"]["L3"] = 0
    expected["snapshot_31_march"]["L3"][0] = 1
    assert cells(tables) == expected


def test_only_a_coordination_unit_computes_the_report(published: tuple[Settings, bytes]) -> None:
    with pytest.raises(NotACoordinator, match="co-ordination unit"):
        report(*published, agency=f"police.{AREA}")


def test_the_command_prints_the_report_in_each_format(
    published: tuple[Settings, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, passphrase = published
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", passphrase.decode())
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", settings.topic_namespace)
    base = ["report", "annual", "--data-dir", str(settings.data_dir), "--year", "2013-14"]
    unit = ["--agency", coordinator(AREA)]
    assert main([*base, *unit, "--format", "json", "--population", "981000"]) == 0
    document = json.loads(capsys.readouterr().out)
    _, expected = edge_cases()
    assert {k: document[k] for k in expected} == expected
    # 4 Category 1 offenders in the community on 31 March, per 981,000 people aged 10+.
    assert document["rso_per_100k"] == 0
    assert document["pct_level1"] == 57.1
    assert main([*base, *unit, "--not-applicable", "zero"]) == 0
    text = capsys.readouterr().out
    assert "57.1" in text
    assert main([*base, *unit, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert ["snapshot_31_march", "L1", "category 3", "-"] in rows
    assert main([*base, *unit, "--format", "html"]) == 0
    assert capsys.readouterr().out.lstrip().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--year", "2013-15", "--agency", "coordinator.staffordshire"], "2013-14"),
        (["--year", "2013-14", "--agency", "police.staffordshire"], "report.not-coordinator"),
        (
            ["--year", "2013-14", "--agency", "coordinator.staffordshire", "--population", "0"],
            "whole number from 1 to",
        ),
    ],
)
def test_the_command_refuses_in_one_line(
    published: tuple[Settings, bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    settings, passphrase = published
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", passphrase.decode())
    monkeypatch.setenv("MAPPA_TOPIC_NAMESPACE", settings.topic_namespace)
    assert main(["report", "annual", "--data-dir", str(settings.data_dir), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert says in err
    assert "\n" not in err


# What each published table needs besides the data: the population aged 10 and over
# (none shipped: docs/statistics.md §6; these lie in the range the published rate
# implies), and how the area's report prints a not-applicable cell.
PUBLISHED = {
    "staffordshire": ("Staffordshire_2013_14", 981_000, "zero"),
    "hampshire": ("Hampshire_IoW_2013_14", 1_700_000, "dash"),
}


@pytest.mark.parametrize("area", sorted(PUBLISHED))
def test_published_tables_are_reproduced(
    area: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mappa demo-data annual` at full scale, on its own embedded broker: the report the
    co-ordination unit computes from its store is the published one, cell for cell."""
    entry, population, not_applicable = PUBLISHED[area]
    monkeypatch.delenv("MAPPA_KAFKA_BOOTSTRAP", raising=False)
    tables = Path(__file__).parents[1] / "broker/statistics/data/published-tables.json"
    args = ["demo-data", "annual", "--area", area, "--year", "2013-14", "--tables", str(tables)]
    args += ["--population", str(population), "--not-applicable", not_applicable]
    assert main([*args, "--format", "json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    published = json.loads(tables.read_text())["areas"][entry]
    for table, cells_published in published.items():
        if table.startswith("_") or table == "pct_level1_stated":
            continue
        # A cell the report has as not applicable may be printed 0 (Staffordshire's).
        if table == "snapshot_31_march" and not_applicable == "zero":
            cells_published["L1"][2] = None
        assert report[table] == cells_published, table
    assert report["problems"] == []
    assert report["left_out"] == {}
    assert "generated:" in out.err
    # Computed, never copied: Hampshire's report printed 94% beside a table giving 93.1%.
    level_1 = sum(published["snapshot_31_march"]["L1"][:2])
    total = sum(sum(v or 0 for v in row) for row in published["snapshot_31_march"].values())
    assert report["pct_level1"] == round(100 * level_1 / total, 1)


def test_the_units_own_record_is_erased_with_the_rest_past_retention(
    published: tuple[Settings, bytes], tmp_path: Path
) -> None:
    settings, passphrase = published
    copy = settings.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(settings.data_dir, copy.data_dir)
    with offline_gateway(copy, coordinator(AREA), (), passphrase=passphrase) as (gateway, _):
        store = gateway.ctx.store
        own = [i for i in store.held_of_types(["level-set"]) if i.sender == gateway.agency_id]
        # Every level the unit set (the correction too) is in its own record, as its own.
        assert len(own) == 9
        years = gateway.ctx.policy.agreement.retention.years
        later = gateway.ctx.clock() + timedelta(days=366 * (years + 1))
        before = gateway.ctx.audit.emitted
        erased = gateway.lifecycle.erase_expired(now=later, user="ig.officer.1")
        assert {i.message_id for i in own} <= {i.message_id for i in erased}
        assert list(store.held_of_types(REPORT_TYPES)) == []
        # One erasure record for each message erased, its own record's included.
        assert gateway.ctx.audit.emitted == before + len(erased)


@pytest.mark.parametrize(
    ("tables", "says"),
    [
        ('{"areas": {}}', "no single entry for staffordshire 2013-14"),
        ("[1, 2]", "mappa: "),
        (json.dumps({"snapshot_31_march": {"L1": [-1, 0, 0]}}), "no population yields"),
        (json.dumps({"snapshot_31_march": {"L1": [1, 0, 0]}}), "have no 'L2'"),
        (json.dumps({"snapshot_31_march": [1, 2]}), "not laid out as in published-tables"),
    ],
)
def test_demo_data_refuses_tables_no_population_yields_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tables: str, says: str
) -> None:
    path = tmp_path / "tables.json"
    path.write_text(tables)
    args = ["demo-data", "annual", "--area", "staffordshire", "--year", "2013-14"]
    assert main([*args, "--tables", str(path)]) != 0
    err = capsys.readouterr().err.strip()
    assert says in err
    assert "\n" not in err


def test_demo_data_refuses_an_unknown_entry_and_a_data_directory_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = Path(__file__).parents[1] / "broker/statistics/data/published-tables.json"
    args = ["demo-data", "annual", "--area", "staffordshire", "--year", "2013-14"]
    args += ["--tables", str(tables)]
    assert main([*args, "--entry", "Nowhere_2013_14"]) != 0
    assert "no entry 'Nowhere_2013_14'" in capsys.readouterr().err
    used = tmp_path / "data"
    used.mkdir()
    (used / "directory.json").write_text("{}")
    assert main([*args, "--data-dir", str(used)]) != 0
    err = capsys.readouterr().err.strip()
    assert "is not empty: demo-data needs a fresh one" in err
    assert "\n" not in err
