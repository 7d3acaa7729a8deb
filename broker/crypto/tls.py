"""Throwaway TLS material: a certificate authority and the certificates it signs.

For test and demo clusters on this machine (``broker/kafka/apache.py``): a server
certificate for ``127.0.0.1`` and ``localhost``, node certificates that serve and
connect (the KRaft controller listener's mutual TLS), client certificates. Never for a
production cluster, whose certificates come from the agencies' own PKI.

The choices, and why:

- **Keys**: EC P-256, signatures ECDSA with SHA-256. Generated in about a millisecond
  (RSA 2048 takes a hundred), and read by Java 17's TLS stack, Kafka's PEM key store and
  Python's ``ssl`` alike.
- **Private keys** leave as unencrypted PKCS #8 PEM (``-----BEGIN PRIVATE KEY-----``):
  Kafka's ``ssl.keystore.type=PEM`` reads that without a key password. They are test
  keys, written by the caller into a private directory, and worthless within a day.
- **Validity**: from ``BACKDATE`` before now (a certificate is used in the second it is
  made) to ``DEFAULT_VALIDITY`` after, never beyond ``MAX_VALIDITY``; no leaf outlives
  its CA.
- **The CA** (X.509 v3): basic constraints CA, path length 0 (it signs leaves only),
  key usage keyCertSign and cRLSign, all critical; a subject key identifier.
- **Leaves**: basic constraints not-a-CA and key usage digitalSignature (ECDSA TLS needs
  nothing else), both critical; extended key usage serverAuth, clientAuth or both; the
  subject alternative names (IP addresses and DNS names) a server answers as, or for a
  client with no hosts ``urn:mappa:tls-client:<common name>`` (the verifier wants a
  subject alternative name on every leaf); authority and subject key identifiers.
  These pass the strict RFC 5280 profile of ``cryptography.x509.verification``, which
  ``verify_certificate`` applies.
- **Serial numbers**: 159 random bits, positive and at most 20 octets (RFC 5280 4.1.2.2).

A certificate's subject is only ``CN=<common name>``, so Kafka's principal for a TLS
client is ``CN=<name>``, which ``ssl.principal.mapping.rules`` can turn into ``<name>``.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NoReturn
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import ConfigurationError, VerificationError

# A test run or a demo lasts minutes; a day covers the slowest, and leaked test keys
# stop working by the next day.
DEFAULT_VALIDITY = timedelta(days=1)
# Longer would make this long-lived key material, which belongs in a real PKI.
MAX_VALIDITY = timedelta(days=7)
# The JVM may check a certificate in the same second it was made; a little slack
# keeps "not yet valid" from ever happening on one machine.
BACKDATE = timedelta(minutes=5)
# RFC 5280's upper bound for a common name (ub-common-name).
MAX_COMMON_NAME_CHARS = 64
# A test server answers as a handful of names; more is a mistake, not a need.
MAX_HOSTS = 16
# RFC 5280 4.1.2.2: a positive serial of at most 20 octets; 159 bits always fits.
_SERIAL_BITS = 159

# RFC 1035: a name of at most 253 characters, of labels of letters, digits and inner
# hyphens, 1 to 63 characters each.
MAX_DNS_NAME_CHARS = 253
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

DEFAULT_SERVER_HOSTS = ("127.0.0.1", "localhost")


class Purpose(StrEnum):
    """What a leaf certificate may do: its extended key usage."""

    SERVER = "server"  # id-kp-serverAuth: a TLS server (a listener)
    CLIENT = "client"  # id-kp-clientAuth: a TLS client presenting a certificate


_EKU = {
    Purpose.SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
    Purpose.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True, repr=False)
class IssuedCertificate:
    """A leaf certificate and its private key, both PEM. Not printed or pickled."""

    common_name: str
    certificate_pem: bytes
    private_key_pem: bytes = field(compare=False)

    @property
    def keystore_pem(self) -> bytes:
        """The private key, then the certificate: the one-file PEM key store that Kafka's
        ``ssl.keystore.type=PEM`` with ``ssl.keystore.location`` reads."""
        return self.private_key_pem + self.certificate_pem

    def __repr__(self) -> str:
        return f"<IssuedCertificate CN={self.common_name}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("certificates with private keys cannot be pickled; write the PEM")


class CertificateAuthority:
    """An ephemeral CA: its private key lives in this object only, and dies with it.

    ``CertificateAuthority()`` makes a new key and a self-signed certificate valid for
    ``validity`` from ``now`` (default: the current time). Raises ``ConfigurationError``
    if ``validity`` is not positive or exceeds ``MAX_VALIDITY``, or ``name`` is empty or
    longer than ``MAX_COMMON_NAME_CHARS``.
    """

    __slots__ = ("_certificate", "_key", "certificate_pem", "not_valid_after")

    def __init__(
        self,
        *,
        name: str = "mappa test CA",
        validity: timedelta = DEFAULT_VALIDITY,
        now: datetime | None = None,
    ) -> None:
        start, end = _validity(now, validity)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        public = self._key.public_key()
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(sign_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem: bytes = self._certificate.public_bytes(serialization.Encoding.PEM)
        self.not_valid_after: datetime = end

    def __repr__(self) -> str:
        return f"<CertificateAuthority until {self.not_valid_after.isoformat()}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a certificate authority cannot be pickled")

    def issue(
        self,
        common_name: str,
        *,
        purposes: Collection[Purpose],
        hosts: Sequence[str] = (),
        validity: timedelta = DEFAULT_VALIDITY,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """A new key and a certificate for it signed by this CA, valid for ``validity``
        (cut to the CA's own end). ``hosts`` are IP literals or DNS names, written as
        subject alternative names; a server certificate needs at least one, a client
        certificate without any is named ``urn:mappa:tls-client:<common_name>``.

        Raises ``ConfigurationError``: no purpose; a server without hosts; more than
        ``MAX_HOSTS`` hosts or a host that is neither an IP address nor a DNS name; a
        bad common name or validity (as for the CA).
        """
        if not purposes:
            raise ConfigurationError("a certificate needs a purpose: server, client or both")
        if Purpose.SERVER in purposes and not hosts:
            raise ConfigurationError("a server certificate needs the hosts it answers as")
        if len(hosts) > MAX_HOSTS:
            raise ConfigurationError(f"at most {MAX_HOSTS} hosts in one certificate")
        start, end = _validity(now, validity)
        end = min(end, self.not_valid_after)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign_certificates=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([_EKU[p] for p in Purpose if p in purposes]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        names = [_general_name(h) for h in hosts] or [_client_uri(common_name)]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(
            common_name=common_name,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def issue_server(
        self, common_name: str = "localhost", *, hosts: Sequence[str] = DEFAULT_SERVER_HOSTS
    ) -> IssuedCertificate:
        """A TLS server certificate for ``hosts`` (default ``127.0.0.1`` and ``localhost``)."""
        return self.issue(common_name, purposes={Purpose.SERVER}, hosts=hosts)

    def issue_client(self, common_name: str) -> IssuedCertificate:
        """A TLS client certificate for ``CN=<common_name>``, named by a URN, not a host."""
        return self.issue(common_name, purposes={Purpose.CLIENT})

    def issue_node(
        self, common_name: str, *, hosts: Sequence[str] = DEFAULT_SERVER_HOSTS
    ) -> IssuedCertificate:
        """A certificate that both serves and connects as ``hosts``: a cluster node on a
        mutual-TLS listener presents the same key store in both directions."""
        return self.issue(common_name, purposes={Purpose.SERVER, Purpose.CLIENT}, hosts=hosts)


def verify_certificate(
    certificate_pem: bytes,
    *,
    ca_pem: bytes,
    purpose: Purpose,
    host: str | None = None,
    now: datetime | None = None,
) -> None:
    """Check that ``certificate_pem`` is a leaf signed by the CA in ``ca_pem``, for
    ``purpose``, at ``now``, under RFC 5280 (``cryptography.x509.verification``).

    The checks, in the verifier's order: the chain to the CA (issuer and signature);
    validity at ``now``; the CA's and the leaf's extensions (basic constraints, key
    usage); the extended key usage for ``purpose``; for a server, that ``host`` is one
    of its subject alternative names.

    Returns nothing. Raises ``VerificationError`` when either PEM does not parse, a server
    check has no ``host``, or any check fails.
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        raise VerificationError("not a PEM certificate") from None
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store([ca]))
        .time(now or datetime.now(UTC))
        .max_chain_depth(0)  # leaf signed by the CA itself, no intermediates
    )
    if purpose is Purpose.SERVER and host is None:
        raise VerificationError("a server certificate is verified for a host")
    try:
        if purpose is Purpose.SERVER and host is not None:
            builder.build_server_verifier(_verification_subject(host)).verify(certificate, [])
        else:
            builder.build_client_verifier().verify(certificate, [])
    except verification.VerificationError as exc:
        raise VerificationError(f"certificate does not verify: {exc}") from None


def _validity(now: datetime | None, validity: timedelta) -> tuple[datetime, datetime]:
    if not timedelta(0) < validity <= MAX_VALIDITY:
        raise ConfigurationError(f"validity must be positive and at most {MAX_VALIDITY}")
    start = now or datetime.now(UTC)
    return start - BACKDATE, start + validity


def _name(common_name: str) -> x509.Name:
    if not 0 < len(common_name) <= MAX_COMMON_NAME_CHARS:
        raise ConfigurationError(f"a common name is 1 to {MAX_COMMON_NAME_CHARS} characters")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _serial() -> int:
    return secrets.randbits(_SERIAL_BITS) | 1  # never zero: RFC 5280 wants it positive


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _general_name(host: str) -> x509.GeneralName:
    ip = _ip(host)
    if ip is not None:
        return x509.IPAddress(ip)
    if len(host) > MAX_DNS_NAME_CHARS or not all(
        _DNS_LABEL.fullmatch(label) for label in host.split(".")
    ):
        raise ConfigurationError(f"{host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host)


def _client_uri(common_name: str) -> x509.GeneralName:
    return x509.UniformResourceIdentifier(f"urn:mappa:tls-client:{quote(common_name)}")


def _verification_subject(host: str) -> verification.Subject:
    ip = _ip(host)
    return x509.IPAddress(ip) if ip is not None else x509.DNSName(host)
