"""Production artefacts: Kafka ACLs from the agreements, client transport security."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.agreements import agreement_for_area
from broker.agreements.policy import SharingPolicy
from broker.cli.main import main
from broker.errors import ConfigurationError
from broker.kafka.acls import LEDGER_PRINCIPAL, Operation, acl_bindings
from broker.kafka.security import client_options
from broker.kafka.topics import Topics
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory

AGENCIES = Path(__file__).resolve().parent.parent / "deploy" / "agencies.example.yaml"
AREA = "staffordshire"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", "an operator's passphrase")
    d = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(d), "init", "--agencies", str(AGENCIES)]) == 0
    return d


def test_acls_grant_what_publishing_and_reading_need_and_reads_no_more(data_dir: Path) -> None:
    directory = load_directory(DataPaths(data_dir))
    agreement = agreement_for_area(AREA, directory.agencies(area=AREA))
    topics = Topics()
    bindings = acl_bindings(directory.agencies(), [agreement], topics)
    grants = {(b.principal, b.topic, b.operation) for b in bindings}
    policy = SharingPolicy(agreement, directory)

    # Every topic the publish path would write to is writable by that sender.
    checked = 0
    for rule in agreement.publishers:
        for sender in directory.agencies(area=AREA, roles=rule.roles):
            for d in policy.recipients(sender, rule.message_type, AREA):
                topic = topics.for_role(AREA, d.recipient.role)
                assert (sender.kafka_principal, topic, Operation.WRITE) in grants
                assert (d.recipient.kafka_principal, topic, Operation.READ) in grants
                checked += 1
    assert checked > 0

    # Least privilege: each agency reads only its own scope, and the transfer topic, where
    # a handover item or a completion notice may come for any agency.
    for agency in directory.agencies():
        reads = {t for p, t, op in grants if p == agency.kafka_principal and op is Operation.READ}
        own = {topics.for_role(a, agency.role) for a in agency.areas}
        assert own <= reads
        assert reads - own <= {topics.transfers, topics.receipts}
    housing = "User:housing.stoke-on-trent"
    assert (
        housing,
        topics.for_role(AREA, directory.agency("police.staffordshire").role),
        Operation.READ,
    ) not in grants
    assert (housing, topics.transfers, Operation.READ) in grants
    # Only those who may send a transfer step (co-ordinators, RA agencies) write there.
    assert (housing, topics.transfers, Operation.WRITE) not in grants
    assert (LEDGER_PRINCIPAL, topics.audit, Operation.READ) in grants
    # Nobody but the ledger reads the audit trail off the broker.
    assert {p for p, t, op in grants if t == topics.audit and op is Operation.READ} == {
        LEDGER_PRINCIPAL
    }


def test_cli_prints_commands_and_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "acls", "--data-dir", str(data_dir)]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#!/bin/sh")
    # Housing reads its own topic (and, as a sender of referrals, may write to it too).
    [housing_own] = [
        line
        for line in script.splitlines()
        if "--allow-principal User:housing.stoke-on-trent " in line
        and line.endswith("--topic mappa.staffordshire.dtc.housing")
    ]
    assert "--operation Describe --operation Read" in housing_own
    assert "--topic mappa.staffordshire.dtc.housing" in script
    assert main(["deploy", "acls", "--data-dir", str(data_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"principal", "topic", "operation"} == set(rows[0])


def test_cli_reports_a_broken_agreement_file(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "isa.yaml"
    bad.write_text("kind: mappa.isa\nid: x\n")
    assert main(["deploy", "acls", "--data-dir", str(data_dir), "--agreement", str(bad)]) == 1
    assert "invalid at" in capsys.readouterr().err


def test_plaintext_only_to_this_machine() -> None:
    settings = Settings()
    assert client_options(settings, "127.0.0.1:9092,localhost:9093,[::1]:9094") == {}
    with pytest.raises(ConfigurationError, match="refusing plaintext") as err:
        client_options(settings, "kafka-1.mappa.internal:9093")
    assert err.value.code == "kafka.plaintext-refused"
    allowed = Settings(kafka_allow_plaintext=True)
    assert client_options(allowed, "10.0.0.5:9092") == {}


def _self_signed_ca() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mappa test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_sasl_ssl_needs_every_piece(tmp_path: Path) -> None:
    remote = "kafka-1.mappa.internal:9093"
    with pytest.raises(ConfigurationError, match="MAPPA_KAFKA_CA_FILE"):
        client_options(Settings(kafka_security_protocol="SASL_SSL"), remote)
    missing = tmp_path / "absent.pem"
    with pytest.raises(ConfigurationError, match="cannot load Kafka TLS material"):
        client_options(Settings(kafka_security_protocol="SASL_SSL", kafka_ca_file=missing), remote)


async def test_sasl_ssl_options_are_what_aiokafka_takes(tmp_path: Path) -> None:
    import certifi

    ca = Path(certifi.where())
    base = Settings(kafka_security_protocol="SASL_SSL", kafka_ca_file=ca)
    with pytest.raises(ConfigurationError, match="MAPPA_KAFKA_USERNAME"):
        client_options(base, "kafka:9093")
    named = base.model_copy(update={"kafka_username": "police.staffordshire"})
    with pytest.raises(ConfigurationError, match="MAPPA_KAFKA_PASSWORD_FILE"):
        client_options(named, "kafka:9093")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    options = client_options(
        named.model_copy(update={"kafka_password_file": secret}),
        "kafka:9093",
    )
    assert options["sasl_plain_password"] == secret.read_text().strip()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    # aiokafka accepts every option as given (a typo would raise TypeError here).
    producer = AIOKafkaProducer(bootstrap_servers="kafka:9093", **options)
    try:
        assert producer.client._security_protocol == "SASL_SSL"
    finally:
        await producer.stop()
