"""Setting up a deployment's trust material in a data directory.

Layout:

  keys/<owner>/<key_id>.key    private keys, sealed (see ``broker.trust.keystore``)
  keys/subject.key             the subject pseudonymisation key, sealed
  governance.pub               the trust anchor: the governance public key
  directory.json               the signed trust directory
  directory.accepted           the highest directory version accepted and its digest
                               (rollback and version-conflict guard)
  directory.pending.json       a new version awaiting the governance signature
  keys/ledger/<key_id>.key     the audit ledger's checkpoint signing key, sealed
  ledger.pub                   its public key (officers verify checkpoints with it)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from broker.crypto.encoding import b64decode, b64encode, strict_json
from broker.crypto.keys import PrivateKey, PublicKey
from broker.crypto.pseudonym import SUBJECT_KEY_BYTES, SubjectKey
from broker.crypto.suites import CLASSIC, suite_named
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.files.private import private_dir
from broker.files.strict import read_json, read_text
from broker.trust.directory import Directory, sign_directory
from broker.trust.keystore import AgencyKeys, Keystore
from schemas.common import Role, format_timestamp, parse_timestamp
from schemas.directory import (
    AgencyEntry,
    AgencyStatus,
    DirectoryDocument,
    KeyAlg,
    KeyUse,
    PublicKeyEntry,
    SignedDirectory,
)

log = logging.getLogger(__name__)
GOVERNANCE = "governance"
LEDGER = "ledger"
KEY_VALIDITY = timedelta(days=2 * 365)
# How long a directory version is trusted. Long enough that a governance officer renews
# it in the course of ordinary work (every key change does), short enough that a
# receiver cut off from new versions does not trust a revoked key for long.
DIRECTORY_VALIDITY = timedelta(days=30)
# A public key file, or the accepted directory's version and digest, is about a hundred
# bytes: anything far larger is not one, and is refused before it is read whole.
MAX_SMALL_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    name: str
    role: Role
    areas: tuple[str, ...]


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def governance_pub(self) -> Path:
        return self.root / "governance.pub"

    @property
    def directory(self) -> Path:
        return self.root / "directory.json"

    @property
    def pending_directory(self) -> Path:
        return self.root / "directory.pending.json"

    @property
    def directory_accepted(self) -> Path:
        return self.root / "directory.accepted"

    def agency_store(self, agency_id: str) -> Path:
        return self.root / "agencies" / f"{agency_id}.sqlite"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def ledger_pub(self) -> Path:
        return self.root / "ledger.pub"

    @property
    def agreements(self) -> Path:
        """Signed agreements, ``<id>.json``, and ``accepted.json`` (highest version per id)."""
        return self.root / "agreements"


def key_entry(key: PrivateKey, *, not_before: datetime, validity: timedelta) -> PublicKeyEntry:
    return PublicKeyEntry(
        key_id=key.key_id,
        alg=key.alg,
        public_key=b64encode(key.public.raw),
        not_before=format_timestamp(not_before),
        not_after=format_timestamp(not_before + validity),
        revoked_at=None,
        revocation_reason=None,
    )


def generate_agency_keys(
    keystore: Keystore, agency_id: str, *, now: datetime, validity: timedelta = KEY_VALIDITY
) -> list[PublicKeyEntry]:
    """One key of every algorithm, so the agency can use either suite."""
    entries = []
    for alg in KeyAlg:
        key = PrivateKey.generate(alg)
        keystore.save(agency_id, key)
        entries.append(key_entry(key, not_before=now, validity=validity))
    return entries


def save_governance_public(paths: DataPaths, key: PublicKey) -> None:
    paths.governance_pub.write_text(
        json.dumps({"alg": key.alg.value, "key_id": key.key_id, "public_key": b64encode(key.raw)})
    )


def load_governance_public(paths: DataPaths) -> PublicKey:
    """The trust anchor, ``governance.pub``. Raises ``ConfigurationError``: none there
    (``config.invalid``), a file the strict reader refuses (``FileRefused``, ``file.*``),
    or no Ed25519 public key in it (``config.invalid``)."""
    if not paths.governance_pub.exists():
        raise ConfigurationError(
            f"no usable trust anchor at {paths.governance_pub}: run `mappa keys init`"
        )
    return _public_key_file(paths.governance_pub, "an Ed25519 governance key")


def _public_key_file(path: Path, what: str) -> PublicKey:
    """The Ed25519 public key in ``path``, ``{"alg", "key_id", "public_key"}``, read by
    the strict reader (size-bounded, UTF-8 only, no NUL, strict JSON). Raises
    ``FileRefused`` for a file it refuses and ``ConfigurationError`` (``config.invalid``)
    for one that is not ``what``; neither quotes what the file holds."""
    doc = strict_json(read_json(path, max_bytes=MAX_SMALL_FILE_BYTES))
    alg, key_id, public = doc.get("alg"), doc.get("key_id"), doc.get("public_key")
    if not (isinstance(alg, str) and isinstance(key_id, str) and isinstance(public, str)):
        raise ConfigurationError(f"{path} is not {what}: alg, key_id and public_key are text")
    try:
        key = PublicKey(KeyAlg(alg), b64decode(public, expected_len=32))
    except (ValueError, SchemaError):
        raise ConfigurationError(
            f"{path} is not {what}: its alg or public_key cannot be read"
        ) from None
    if key.alg is not KeyAlg.ED25519 or key.key_id != key_id:
        raise ConfigurationError(f"{path} is not {what}")
    return key


def write_directory(paths: DataPaths, signed: SignedDirectory) -> None:
    paths.directory.write_text(signed.model_dump_json(indent=1))


def accepted_directory(paths: DataPaths) -> tuple[int, str | None]:
    """The highest directory version accepted here and its digest (None where a data
    directory written before digests were kept holds the version alone); (1, None) when
    none was accepted yet. Raises ``ConfigurationError`` for a damaged guard file."""
    if not paths.directory_accepted.exists():
        return 1, None
    fields = read_text(paths.directory_accepted, max_bytes=MAX_SMALL_FILE_BYTES).split()
    if not fields or not fields[0].isascii() or not fields[0].isdigit() or len(fields[0]) > 16:
        # Not quoted: whatever the file holds stays out of the message.
        raise ConfigurationError(
            f"{paths.directory_accepted} is damaged: it does not start with a version number"
        )
    return int(fields[0]), (fields[1] if len(fields) > 1 else None)


def verify_against_accepted(paths: DataPaths, signed: bytes) -> Directory:
    """Verify ``signed`` against the trust anchor and what was accepted here: not an
    older version (``directory.rollback``), and not another document claiming the
    accepted version (``directory.version-conflict``). Raises ``VerificationError``
    or ``SchemaError``."""
    version, digest = accepted_directory(paths)
    directory = Directory.verify(
        signed, governance_key=load_governance_public(paths), min_version=version
    )
    if directory.version == version and digest is not None and directory.digest != digest:
        raise VerificationError(
            f"a different directory claims version {version}, already accepted here",
            code="directory.version-conflict",
        )
    return directory


def load_directory(paths: DataPaths) -> Directory:
    """Verify the stored directory (``verify_against_accepted``) and record it as
    accepted. An expired one is loaded: whoever uses it checks ``check_current``."""
    if not paths.directory.exists():
        raise ConfigurationError(f"no trust directory at {paths.directory}")
    directory = verify_against_accepted(paths, read_json(paths.directory))
    if accepted_directory(paths) != (directory.version, directory.digest):
        try:
            paths.directory_accepted.write_text(f"{directory.version} {directory.digest}\n")
        except OSError as exc:
            # A read-only data directory (an auditor's copy) can still be read; the guard
            # is advanced by the next process that can write.
            log.warning(
                "cannot record directory version %d as accepted: %s", directory.version, exc
            )
    return directory


def provision(
    paths: DataPaths,
    specs: Sequence[AgencySpec],
    *,
    passphrase: bytes,
    now: datetime,
    suites: Sequence[str] = (CLASSIC.name,),
    validity: timedelta = DIRECTORY_VALIDITY,
) -> Directory:
    """Create the governance key, subject key, every agency's keys and directory v1, valid
    for ``validity`` from ``now``, each agency allowed to send in ``suites`` (keys of
    every algorithm are made either way, so a later move to another suite is a directory
    change, not a key ceremony). Raises ``ConfigurationError`` for a data directory in
    use, ``VerificationError`` for an unknown suite."""
    if paths.directory.exists():
        raise ConfigurationError(f"{paths.root} already holds a deployment")
    bound = tuple(suite_named(name).name for name in suites)
    private_dir(paths.root)
    keystore = Keystore(paths.keys, passphrase)
    governance = PrivateKey.generate(KeyAlg.ED25519)
    keystore.save(GOVERNANCE, governance)
    save_governance_public(paths, governance.public)
    keystore.save_subject_key(SubjectKey(os.urandom(SUBJECT_KEY_BYTES)))
    create_ledger_key(paths, keystore)
    agencies = tuple(
        AgencyEntry(
            agency_id=spec.agency_id,
            name=spec.name,
            role=spec.role,
            areas=spec.areas,
            kafka_principal=f"User:{spec.agency_id}",
            status=AgencyStatus.ACTIVE,
            suites=bound,
            keys=tuple(generate_agency_keys(keystore, spec.agency_id, now=now)),
        )
        for spec in specs
    )
    document = DirectoryDocument(
        kind="mappa.directory",
        version=1,
        issued_at=format_timestamp(now),
        valid_until=format_timestamp(now + validity),
        agencies=agencies,
    )
    write_directory(paths, sign_directory(document, governance))
    return load_directory(paths)


def load_agency_keys(keystore: Keystore, entry: AgencyEntry, *, at: datetime) -> AgencyKeys:
    """Current signing key per algorithm; every retained decryption key."""
    held = set(keystore.key_ids(entry.agency_id))
    keys = AgencyKeys(entry.agency_id)
    current: dict[KeyAlg, PublicKeyEntry] = {}
    for k in entry.keys:
        if k.key_id not in held:
            continue
        if k.alg.use is KeyUse.ENCRYPT:
            keys.add(keystore.load(entry.agency_id, k.key_id))
            continue
        usable = parse_timestamp(k.not_before) <= at < parse_timestamp(k.not_after) and (
            k.revoked_at is None or at < parse_timestamp(k.revoked_at)
        )
        if usable and (k.alg not in current or k.not_before > current[k.alg].not_before):
            current[k.alg] = k
    for alg, k in current.items():
        keys.signing[alg] = keystore.load(entry.agency_id, k.key_id)
    return keys


def revoked_signer(keystore: Keystore, entry: AgencyEntry, *, at: datetime) -> PrivateKey | None:
    """The newest Ed25519 key of ``entry`` held here that would be current at ``at`` but
    for its revocation; None if there is none. What an agency whose key was revoked, and
    not yet replaced, signs its audit events and receipts with, so that it keeps
    receiving: the ledger and its peers refuse what it signs, and say so, until a
    rotation."""
    held = set(keystore.key_ids(entry.agency_id))
    revoked = [
        k
        for k in entry.keys
        if k.alg is KeyAlg.ED25519
        and k.key_id in held
        and k.revoked_at is not None
        and parse_timestamp(k.revoked_at) <= at
        and parse_timestamp(k.not_before) <= at < parse_timestamp(k.not_after)
    ]
    if not revoked:
        return None
    newest = max(revoked, key=lambda k: k.not_before)
    return keystore.load(entry.agency_id, newest.key_id)


def create_ledger_key(paths: DataPaths, keystore: Keystore) -> PublicKey:
    """The audit ledger's checkpoint key: sealed in the keystore, public half published."""
    key = PrivateKey.generate(KeyAlg.ED25519)
    keystore.save(LEDGER, key)
    paths.ledger_pub.write_text(
        json.dumps(
            {"alg": key.alg.value, "key_id": key.key_id, "public_key": b64encode(key.public.raw)}
        )
    )
    return key.public


def load_ledger_public(paths: DataPaths) -> PublicKey:
    """The ledger's checkpoint key, ``ledger.pub``. Raises ``ConfigurationError`` as
    ``load_governance_public`` does."""
    if not paths.ledger_pub.exists():
        raise ConfigurationError(f"no usable ledger public key at {paths.ledger_pub}")
    return _public_key_file(paths.ledger_pub, "an Ed25519 ledger key")


def load_ledger_key(paths: DataPaths, keystore: Keystore) -> PrivateKey:
    """The checkpoint signing key; a data directory provisioned before the ledger signed
    checkpoints gets one now."""
    if not paths.ledger_pub.exists():
        create_ledger_key(paths, keystore)
    return keystore.load(LEDGER, load_ledger_public(paths).key_id)


# The demo's roster: one agency of every kind in one area. Ids start with the
# agency's kind (adapter registries find the kind from the prefix); two kinds
# share the social-care role and two the housing role. The last agency is in the
# directory but party to no agreement: it receives nothing it can read.
DEMO_AREA = "staffordshire"
DEMO_NON_PARTY = "health.independent-clinic"
DEMO_ROSTER = tuple(
    AgencySpec(agency_id, name, role, (DEMO_AREA,))
    for agency_id, name, role in (
        ("police.staffordshire", "Staffordshire Police", Role.POLICE),
        ("probation.staffordshire", "Probation Service, Staffordshire", Role.PROBATION),
        ("prison.hmp-stafford", "HMP Stafford", Role.PRISON),
        ("coordinator.staffordshire", "Staffordshire MAPPA Co-ordination Unit", Role.COORDINATOR),
        (
            "youth-offending.stoke-on-trent",
            "Stoke-on-Trent Youth Offending Service",
            Role.YOUTH_OFFENDING,
        ),
        (
            "childrens-social-care.staffordshire",
            "Staffordshire Children's Services",
            Role.SOCIAL_CARE,
        ),
        ("adult-social-care.stoke-on-trent", "Stoke-on-Trent Adult Social Care", Role.SOCIAL_CARE),
        ("health.mpft", "Midlands Partnership NHS Foundation Trust", Role.HEALTH),
        ("housing.stoke-on-trent", "Stoke-on-Trent City Council Housing", Role.HOUSING),
        ("social-landlord.staffs-homes", "Staffs Homes Housing Association", Role.HOUSING),
        ("jobcentre.stafford", "Jobcentre Plus, Stafford", Role.JOBCENTRE),
        ("education.staffordshire", "Staffordshire County Council Education", Role.EDUCATION),
        (
            "electronic-monitoring.em-service",
            "Electronic Monitoring Service",
            Role.ELECTRONIC_MONITORING,
        ),
        ("immigration.midlands", "Immigration Enforcement, Midlands", Role.IMMIGRATION),
        (DEMO_NON_PARTY, "Independent clinic (not a party)", Role.HEALTH),
    )
)
DEMO_PARTIES = tuple(s.agency_id for s in DEMO_ROSTER if s.agency_id != DEMO_NON_PARTY)


# Two neighbouring areas with an RA, a co-ordination unit and a housing authority each:
# enough to move a case from one to the other (the transfer demo and tests).
def two_area_specs(
    sending: str = "staffordshire", receiving: str = "west-mercia"
) -> tuple[AgencySpec, ...]:
    prisons = {"staffordshire": "hmp-stafford", "west-mercia": "hmp-long-lartin"}
    housing = {"staffordshire": "stoke-on-trent", "west-mercia": "worcester"}
    specs: list[AgencySpec] = []
    for area in (sending, receiving):
        title = area.replace("-", " ").title()
        specs += [
            AgencySpec(f"police.{area}", f"{title} Police", Role.POLICE, (area,)),
            AgencySpec(f"probation.{area}", f"Probation Service, {title}", Role.PROBATION, (area,)),
            AgencySpec(f"prison.{prisons.get(area, area)}", f"HMP ({title})", Role.PRISON, (area,)),
            AgencySpec(
                f"housing.{housing.get(area, area)}", f"{title} Housing", Role.HOUSING, (area,)
            ),
            AgencySpec(
                f"coordinator.{area}",
                f"{title} MAPPA Co-ordination Unit",
                Role.COORDINATOR,
                (area,),
            ),
        ]
    return tuple(specs)
