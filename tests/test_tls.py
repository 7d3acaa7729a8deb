"""Throwaway TLS material (``broker.crypto.tls``): what it issues, and that each check of
``verify_certificate`` refuses what it should."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.crypto.tls import (
    BACKDATE,
    DEFAULT_VALIDITY,
    MAX_COMMON_NAME_CHARS,
    MAX_HOSTS,
    MAX_VALIDITY,
    CertificateAuthority,
    IssuedCertificate,
    Purpose,
    verify_certificate,
)
from broker.errors import ConfigurationError, VerificationError

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def verify(
    pem: bytes,
    ca: CertificateAuthority,
    purpose: Purpose = Purpose.SERVER,
    host: str | None = "localhost",
    now: datetime | None = None,
) -> None:
    verify_certificate(pem, ca_pem=ca.certificate_pem, purpose=purpose, host=host, now=now)


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


def ext(certificate: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    return certificate.extensions.get_extension_for_class(kind)


# -- what is issued ------------------------------------------------------------------------
def test_server_certificate_verifies_for_its_hosts(ca: CertificateAuthority) -> None:
    server = ca.issue_server()
    verify(server.certificate_pem, ca, host="127.0.0.1")
    verify(server.certificate_pem, ca, host="localhost")
    sans = ext(cert(server.certificate_pem), x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]


def test_client_and_node_certificates_verify_for_their_purposes(ca: CertificateAuthority) -> None:
    client = ca.issue_client("police.x")
    node = ca.issue_node("kafka-node")
    verify(client.certificate_pem, ca, Purpose.CLIENT)
    verify(node.certificate_pem, ca, Purpose.CLIENT)
    verify(node.certificate_pem, ca, Purpose.SERVER, host="127.0.0.1")
    # Kafka's principal for a TLS client is the subject: CN=<name>, nothing else.
    assert cert(client.certificate_pem).subject.rfc4514_string() == "CN=police.x"
    sans = ext(cert(client.certificate_pem), x509.SubjectAlternativeName).value
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["urn:mappa:tls-client:police.x"]


def test_key_usages_are_those_of_each_role(ca: CertificateAuthority) -> None:
    authority = cert(ca.certificate_pem)
    constraints = ext(authority, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = ext(authority, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    expected = {
        "server": (ca.issue_server(), [SERVER]),
        "client": (ca.issue_client("probation.y"), [CLIENT]),
        "node": (ca.issue_node("kafka-node"), [SERVER, CLIENT]),
    }
    for role, (issued, ekus) in expected.items():
        leaf = cert(issued.certificate_pem)
        assert not ext(leaf, x509.BasicConstraints).value.ca, role
        usage = ext(leaf, x509.KeyUsage)
        assert usage.critical, role
        assert usage.value.digital_signature, role
        assert not usage.value.key_cert_sign, role
        assert not usage.value.key_encipherment, role  # ECDSA: no RSA key transport
        assert list(ext(leaf, x509.ExtendedKeyUsage).value) == ekus, role
        issuer_id = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
        assert issuer_id == ext(authority, x509.SubjectKeyIdentifier).value.digest, role


def test_private_keys_are_unencrypted_pkcs8_matching_the_certificate(
    ca: CertificateAuthority,
) -> None:
    issued = ca.issue_server()
    assert issued.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(issued.private_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key() == cert(issued.certificate_pem).public_key()
    # Kafka's one-file PEM key store: the key, then the certificate.
    assert issued.keystore_pem == issued.private_key_pem + issued.certificate_pem


def test_validity_is_bounded_and_no_leaf_outlives_its_ca() -> None:
    now = datetime.now(UTC)
    ca = CertificateAuthority(now=now)
    leaf = cert(ca.issue_server().certificate_pem)
    assert cert(ca.certificate_pem).not_valid_after_utc - now <= DEFAULT_VALIDITY
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= DEFAULT_VALIDITY + BACKDATE
    assert now - BACKDATE - timedelta(seconds=1) <= leaf.not_valid_before_utc <= now
    short = CertificateAuthority(validity=timedelta(hours=1))
    inside = cert(short.issue_server().certificate_pem)
    assert inside.not_valid_after_utc <= cert(short.certificate_pem).not_valid_after_utc
    for too_long in (MAX_VALIDITY + timedelta(seconds=1), timedelta(0), timedelta(hours=-1)):
        with pytest.raises(ConfigurationError, match="validity"):
            CertificateAuthority(validity=too_long)
        with pytest.raises(ConfigurationError, match="validity"):
            ca.issue("x", purposes={Purpose.CLIENT}, validity=too_long)


def test_serial_numbers_are_random_positive_and_at_most_20_octets(
    ca: CertificateAuthority,
) -> None:
    serials = {cert(ca.issue_client("x").certificate_pem).serial_number for _ in range(8)}
    assert len(serials) == 8
    assert all(0 < s < 2**159 for s in serials)


# -- what the verifier refuses, one check at a time ----------------------------------------
def test_a_certificate_from_another_ca_is_refused(ca: CertificateAuthority) -> None:
    stranger = CertificateAuthority().issue_server()
    with pytest.raises(VerificationError, match="signature"):
        verify(stranger.certificate_pem, ca)


def test_a_tampered_certificate_is_refused(ca: CertificateAuthority) -> None:
    der = bytearray(
        cert(ca.issue_server().certificate_pem).public_bytes(serialization.Encoding.DER)
    )
    der[-10] ^= 0x01  # inside the signature
    tampered = x509.load_der_x509_certificate(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(VerificationError, match="signature"):
        verify(tampered, ca)


def test_a_host_the_certificate_does_not_name_is_refused(ca: CertificateAuthority) -> None:
    server = ca.issue_server()
    for host in ("example.org", "127.0.0.2", "::1"):
        with pytest.raises(VerificationError, match="subjectAltName"):
            verify(server.certificate_pem, ca, host=host)
    with pytest.raises(VerificationError, match="verified for a host"):
        verify(server.certificate_pem, ca, host=None)


def test_a_certificate_is_refused_for_the_other_purpose(ca: CertificateAuthority) -> None:
    # Names the host, yet may not serve: its only extended key usage is clientAuth.
    client_only = ca.issue("police.x", purposes={Purpose.CLIENT}, hosts=["localhost"])
    with pytest.raises(VerificationError, match="EKU"):
        verify(client_only.certificate_pem, ca, Purpose.SERVER)
    with pytest.raises(VerificationError, match="EKU"):
        verify(ca.issue_server().certificate_pem, ca, Purpose.CLIENT)


def test_a_certificate_is_refused_outside_its_validity(ca: CertificateAuthority) -> None:
    issued = ca.issue_client("police.x")
    leaf = cert(issued.certificate_pem)
    verify(issued.certificate_pem, ca, Purpose.CLIENT, now=leaf.not_valid_after_utc)
    for when in (
        leaf.not_valid_after_utc + timedelta(seconds=1),
        leaf.not_valid_before_utc - timedelta(seconds=1),
    ):
        with pytest.raises(VerificationError, match="not valid at validation time"):
            verify(issued.certificate_pem, ca, Purpose.CLIENT, now=when)


def test_the_ca_itself_is_not_a_leaf(ca: CertificateAuthority) -> None:
    with pytest.raises(VerificationError):
        verify(ca.certificate_pem, ca, Purpose.CLIENT)


def test_what_is_not_a_pem_certificate_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(VerificationError, match="not a PEM certificate"):
        verify(b"junk", ca, Purpose.CLIENT)
    with pytest.raises(VerificationError, match="not a PEM certificate"):
        verify_certificate(ca.issue_client("x").certificate_pem, ca_pem=b"", purpose=Purpose.CLIENT)


# -- what the issuer refuses ----------------------------------------------------------------
def test_the_issuer_refuses_what_would_make_a_bad_certificate(ca: CertificateAuthority) -> None:
    with pytest.raises(ConfigurationError, match="purpose"):
        ca.issue("x", purposes=set())
    with pytest.raises(ConfigurationError, match="hosts"):
        ca.issue("x", purposes={Purpose.SERVER})
    with pytest.raises(ConfigurationError, match="at most"):
        ca.issue_server(hosts=[f"h{i}.test" for i in range(MAX_HOSTS + 1)])
    for host in ("", "a..b", "bad host", "caf\u00e9.test", "-lead.test", "x" * 254):
        with pytest.raises(ConfigurationError, match="neither"):
            ca.issue_server(hosts=[host])
    for name in ("", "n" * (MAX_COMMON_NAME_CHARS + 1)):
        with pytest.raises(ConfigurationError, match="common name"):
            ca.issue_client(name)


def test_key_material_is_not_printed_or_pickled(ca: CertificateAuthority) -> None:
    issued = ca.issue_client("police.x")
    assert "PRIVATE" not in repr(issued)
    assert repr(issued) == "<IssuedCertificate CN=police.x>"
    assert "PRIVATE" not in repr(ca)
    for secret in (issued, ca):
        with pytest.raises(TypeError):
            pickle.dumps(secret)
        with pytest.raises(TypeError):
            copy.deepcopy(secret)
    assert isinstance(issued, IssuedCertificate)
    assert cert(issued.certificate_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
