"""Changing the trust directory: rotation, revocation, key retirement, signing.

Every change produces the next directory version. Where the governance key is in the
local keystore the new version is signed and put in force at once; otherwise it is
written as ``directory.pending.json`` for the governance officer to ``mappa directory
sign`` on the machine that holds that key.

Rotation: new key pairs become current (``not_before`` = now). Superseded signing keys
stay in the directory with ``not_after`` cut to now + overlap, so everything they signed
while current still verifies and nothing new can be signed with them after the overlap.
Superseded encryption keys get ``not_after`` = now (nobody wraps for them again) while
their private keys stay in the keystore, so messages already wrapped for them can still be
read until the key is retired with ``prune``.

Revocation: ``revoked_at`` is set; anything signed at or after that moment is refused.

Every new version is valid for ``DIRECTORY_VALIDITY`` from its issue; ``renew`` issues
the same content as the next version, to keep a directory in force when nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from broker.crypto.keys import PrivateKey
from broker.crypto.suites import suite_named
from broker.errors import ConfigurationError, KeyUnavailable
from broker.trust.directory import Directory, sign_directory
from broker.trust.keystore import Keystore
from broker.trust.provision import (
    DIRECTORY_VALIDITY,
    GOVERNANCE,
    KEY_VALIDITY,
    DataPaths,
    key_entry,
    load_directory,
    write_directory,
)
from schemas.common import format_timestamp, parse_timestamp
from schemas.directory import AgencyEntry, DirectoryDocument, KeyAlg, KeyUse, PublicKeyEntry

DEFAULT_OVERLAP = timedelta(hours=1)


def next_version(
    document: DirectoryDocument,
    now: datetime,
    *,
    validity: timedelta = DIRECTORY_VALIDITY,
    agencies: tuple[AgencyEntry, ...] | None = None,
) -> DirectoryDocument:
    """The next version of ``document``: issued ``now``, valid for ``validity``, with
    ``agencies`` if given. Validated, so a bad change fails here rather than at signing."""
    if validity <= timedelta(0):
        raise ConfigurationError("a directory must be valid for some time")
    data = document.model_dump(mode="json")
    data.update(
        version=document.version + 1,
        issued_at=format_timestamp(now),
        valid_until=format_timestamp(now + validity),
    )
    if agencies is not None:
        data["agencies"] = [a.model_dump(mode="json") for a in agencies]
    return DirectoryDocument.model_validate_json(json.dumps(data))


def _replace_agency(
    document: DirectoryDocument, agency: AgencyEntry, now: datetime
) -> DirectoryDocument:
    agencies = tuple(agency if a.agency_id == agency.agency_id else a for a in document.agencies)
    return next_version(document, now, agencies=agencies)


def renew(
    directory: Directory, *, now: datetime, validity: timedelta = DIRECTORY_VALIDITY
) -> DirectoryDocument:
    """The same agencies and keys as the next version, valid for ``validity`` from now:
    what keeps receivers trusting the directory when nothing in it changed."""
    return next_version(directory.document, now, validity=validity)


def set_suites(
    directory: Directory, agency_id: str, suites: Iterable[str], *, now: datetime
) -> DirectoryDocument:
    """The next version with ``agency_id`` allowed to send in ``suites`` only. Raises
    ``VerificationError`` (``envelope.unknown-suite``) for a suite that does not exist,
    ``ConfigurationError`` for none."""
    names = tuple(dict.fromkeys(suite_named(s).name for s in suites))
    if not names:
        raise ConfigurationError("an agency must be allowed at least one suite")
    agency = directory.agency(agency_id)
    return _replace_agency(directory.document, agency.model_copy(update={"suites": names}), now)


def rotate(
    directory: Directory,
    keystore: Keystore,
    agency_id: str,
    *,
    now: datetime,
    algs: Iterable[KeyAlg] = tuple(KeyAlg),
    overlap: timedelta = DEFAULT_OVERLAP,
    validity: timedelta = KEY_VALIDITY,
) -> DirectoryDocument:
    """New keys for ``algs``; the next directory version (unsigned)."""
    agency = directory.agency(agency_id)
    keystore.check_passphrase(agency_id)
    algs = tuple(algs)
    kept: list[PublicKeyEntry] = []
    for k in agency.keys:
        current = parse_timestamp(k.not_after) > now and k.revoked_at is None
        if k.alg in algs and current:
            cut = now + overlap if k.alg.use is KeyUse.SIGN else now
            # A key never gets longer to live, and never ends before it began.
            end = max(
                min(parse_timestamp(k.not_after), cut),
                parse_timestamp(k.not_before) + timedelta(milliseconds=1),
            )
            kept.append(k.model_copy(update={"not_after": format_timestamp(end)}))
        else:
            kept.append(k)
    fresh = []
    for alg in algs:
        key = PrivateKey.generate(alg)
        keystore.save(agency_id, key)
        fresh.append(key_entry(key, not_before=now, validity=validity))
    updated = agency.model_copy(update={"keys": (*kept, *fresh)})
    return _replace_agency(directory.document, updated, now)


def revoke(
    directory: Directory, agency_id: str, key_id: str, *, at: datetime, reason: str, now: datetime
) -> DirectoryDocument:
    agency = directory.agency(agency_id)
    if not any(k.key_id == key_id for k in agency.keys):
        raise ConfigurationError(f"{agency_id} has no key {key_id}")
    keys = tuple(
        k.model_copy(update={"revoked_at": format_timestamp(at), "revocation_reason": reason})
        if k.key_id == key_id
        else k
        for k in agency.keys
    )
    return _replace_agency(directory.document, agency.model_copy(update={"keys": keys}), now)


def prune(
    directory: Directory, keystore: Keystore, agency_id: str, key_id: str, *, now: datetime
) -> None:
    """Destroy a retained private key that is no longer current. Messages wrapped for it
    become unreadable: that is the point of retiring it."""
    agency = directory.agency(agency_id)
    entry = next((k for k in agency.keys if k.key_id == key_id), None)
    if entry is not None and parse_timestamp(entry.not_after) > now and entry.revoked_at is None:
        raise ConfigurationError(f"key {key_id} is still current; rotate it first")
    if key_id not in keystore.key_ids(agency_id):
        raise KeyUnavailable(f"{agency_id} holds no private key {key_id}")
    keystore.delete(agency_id, key_id)


def key_status(entry: PublicKeyEntry, agency: AgencyEntry, now: datetime) -> str:
    """revoked, not yet valid, expired, superseded (a newer key of its kind is in use,
    or an encryption key kept only to read old messages) or current."""
    if entry.revoked_at is not None and parse_timestamp(entry.revoked_at) <= now:
        return "revoked"
    if parse_timestamp(entry.not_before) > now:
        return "not yet valid"
    newer = any(
        k.alg is entry.alg
        and k.not_before > entry.not_before
        and parse_timestamp(k.not_before) <= now
        and k.revoked_at is None
        for k in agency.keys
    )
    if parse_timestamp(entry.not_after) <= now:
        return "superseded" if entry.alg.use is KeyUse.ENCRYPT and newer else "expired"
    return "superseded" if newer else "current"


def governance_key(keystore: Keystore) -> PrivateKey | None:
    ids = keystore.key_ids(GOVERNANCE)
    return keystore.load(GOVERNANCE, ids[-1]) if ids else None


def publish(paths: DataPaths, keystore: Keystore, document: DirectoryDocument) -> str:
    """Sign and put in force if the governance key is here; else leave it pending."""
    signer = governance_key(keystore)
    if signer is None:
        paths.pending_directory.write_text(document.model_dump_json(indent=1))
        return f"written {paths.pending_directory}: sign it with `mappa directory sign`"
    write_directory(paths, sign_directory(document, signer))
    load_directory(paths)  # verifies and advances the rollback guard
    return f"directory version {document.version} signed and in force"
