"""A data directory for one service of a deployment, carved from the deployment's own:
what one agency's gateway needs, or what the audit ledger needs, and no other party's
private key.

Both hold the public part every service shares:

  governance.pub, directory.json, directory.accepted   the trust anchor and the signed
                                                       directory, with its rollback guard
  ledger.pub                                           the ledger's checkpoint key
  agreements/                                          the signed agreements
  keys/subject.key                                     the subject pseudonymisation key
                                                       (every service derives the same
                                                       subject references from a PNC id)
  witness-policy.json                                  the governance-signed witness
                                                       policy, where there is one

A gateway's directory also holds its agency's witness key (``keys/witness.<agency
id>/``) and a copy of its witness store (``witnesses/<agency id>.sqlite``: the latest
checkpoint it cosigned, and its alarms; no personal data), where the deployment has them:
``mappa serve --agency ID`` then serves that witness over HTTP, remembering what it
cosigned before (docs/audit-ledger.md, section 3a).

and then the private keys of exactly one owner: ``keys/<agency id>/`` for a gateway,
``keys/ledger/`` for the ledger. The governance key, every other agency's keys, the
stores, the ledger database and the API credentials are never copied: a gateway's
tokens are issued in its own directory (``mappa api token issue``). Sealed keys are
copied as sealed, so the new directory opens with the same passphrase.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from broker.errors import ConfigurationError, KeyUnavailable
from broker.files.private import PRIVATE_FILE_MODE, private_dir
from broker.trust.keystore import Keystore
from broker.trust.provision import LEDGER, DataPaths, load_directory, load_ledger_public

# The witness policy (``broker.witness.policy.POLICY_FILE``; trust does not import witness).
WITNESS_POLICY_FILE = "witness-policy.json"
# Where the subject key lives in the key root (``broker.trust.keystore``).
SUBJECT_KEY_FILE = "subject.key"


def gateway_dir(source: DataPaths, out: DataPaths, agency_id: str) -> list[Path]:
    """Write into ``out`` what ``agency_id``'s gateway needs (module docstring); returns
    the files written. Raises ``ConfigurationError`` for a source that holds no
    deployment, an agency not in its directory, or an ``out`` that already holds one;
    ``KeyUnavailable`` when the source holds none of the agency's private keys."""
    listed = {a.agency_id for a in load_directory(source).agencies()}
    if agency_id not in listed:
        raise ConfigurationError(f"not in the trust directory: {agency_id}")
    written = _carve(source, out, owner=agency_id, also=_witness_keys(source, agency_id))
    store = source.root / "witnesses" / f"{agency_id}.sqlite"
    if store.exists():
        written.append(_copy_store(store, out.root / "witnesses" / store.name))
    return written


def _witness_keys(source: DataPaths, agency_id: str) -> list[Path]:
    """The agency's sealed witness keys (``broker.witness.setup.witness_owner``), if any."""
    return sorted((source.keys / f"witness.{agency_id}").glob("*.key"))


def _copy_store(store: Path, target: Path) -> Path:
    """A consistent copy of the SQLite database ``store`` (its WAL too) at ``target``,
    private to its owner."""
    private_dir(target.parent)
    target.touch(mode=PRIVATE_FILE_MODE)
    source = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(source) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    target.chmod(PRIVATE_FILE_MODE)
    return target


def ledger_dir(source: DataPaths, out: DataPaths) -> list[Path]:
    """Write into ``out`` what the audit ledger service needs (module docstring); returns
    the files written. Raises as ``gateway_dir`` does, for the ledger's key."""
    load_directory(source)
    return _carve(source, out, owner=LEDGER)


def _carve(
    source: DataPaths, out: DataPaths, *, owner: str, also: Sequence[Path] = ()
) -> list[Path]:
    keys = sorted((source.keys / owner).glob("*.key"))
    if not keys:
        raise KeyUnavailable(f"no private keys for {owner} in {source.keys}")
    if out.directory.exists():
        raise ConfigurationError(f"{out.root} already holds a deployment")
    for folder in (out.root, out.keys, out.keys / owner):
        private_dir(folder)
    shared = [
        source.governance_pub,
        source.directory,
        source.directory_accepted,
        source.ledger_pub,
        *_files(source.agreements),
        source.keys / SUBJECT_KEY_FILE,
        source.root / WITNESS_POLICY_FILE,
    ]
    written = []
    for path in [p for p in shared if p.exists()] + keys + list(also):
        target = out.root / path.relative_to(source.root)
        if not target.parent.exists():
            private_dir(target.parent)
        shutil.copyfile(path, target)
        target.chmod(PRIVATE_FILE_MODE)
        written.append(target)
    return written


def _files(folder: Path) -> Iterator[Path]:
    """The plain files directly in ``folder`` (none if it does not exist)."""
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.is_file())


def holds_ledger_key(paths: DataPaths, keystore: Keystore) -> bool:
    """Whether the ledger's private key (the one ``ledger.pub`` names) is held in
    ``paths``: where it is not, this data directory is not the ledger's, and the ledger
    does not run from it. A data directory without ``ledger.pub`` (provisioned before
    the ledger signed checkpoints) counts as holding it: the ledger makes its key there
    when it first starts (``load_ledger_key``). Raises ``ConfigurationError`` for a
    ``ledger.pub`` that cannot be read."""
    if not paths.ledger_pub.exists():
        return True
    return load_ledger_public(paths).key_id in keystore.key_ids(LEDGER)


def require_ledger_key(paths: DataPaths, keystore: Keystore) -> None:
    """Raise ``KeyUnavailable`` unless ``holds_ledger_key``: what the ledger service
    checks before anything starts."""
    if not holds_ledger_key(paths, keystore):
        raise KeyUnavailable(
            f"the ledger's private key is not held in {paths.root} "
            "(`mappa deploy ledger-dir` makes a data directory with it)"
        )
