"""Private keys at rest, sealed under a passphrase, one directory per owner.

Layout under the key root (files 0600, directories 0700):

  <owner>/<key_id>.key       a PrivateKey.export_encrypted document
  subject.key                the deployment's subject pseudonymisation key, sealed

The passphrase comes from ``MAPPA_KEY_PASSPHRASE`` or the file named by
``MAPPA_KEY_PASSPHRASE_FILE``; it is never written next to the keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from broker.crypto.keys import PrivateKey, open_secret, seal_secret
from broker.crypto.pseudonym import SubjectKey
from broker.errors import ConfigurationError, KeyUnavailable
from broker.files.strict import FileRefused, read_bytes, read_json
from schemas.directory import KeyAlg, KeyUse

SUBJECT_KEY_LABEL = "mappa subject key"
# A sealed key is a few KiB (an ML-DSA-65 key in PEM is the largest); a passphrase less.
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_PASSPHRASE_FILE_BYTES = 4 * 1024


def passphrase_from_env(environ: dict[str, str] | None = None) -> bytes:
    """The key passphrase, as bytes: whatever bytes the environment variable or the file
    holds (an environment that is not UTF-8 reaches Python as surrogate escapes, which
    ``os.fsencode`` turns back into the bytes given). Raises ``KeyUnavailable``."""
    env = os.environ if environ is None else environ
    if env.get("MAPPA_KEY_PASSPHRASE"):
        return os.fsencode(env["MAPPA_KEY_PASSPHRASE"])
    path = env.get("MAPPA_KEY_PASSPHRASE_FILE")
    if path:
        try:
            return read_bytes(Path(path), max_bytes=MAX_PASSPHRASE_FILE_BYTES).strip()
        except FileRefused as exc:
            raise KeyUnavailable(
                f"cannot read MAPPA_KEY_PASSPHRASE_FILE {path}: {exc.problem}"
            ) from None
    raise KeyUnavailable("no key passphrase: set MAPPA_KEY_PASSPHRASE or MAPPA_KEY_PASSPHRASE_FILE")


def _sealed_text(path: Path, what: str) -> str:
    """The text of a sealed key file, once it is one JSON object of strings: anything
    else is a damaged file, said in one line without quoting it."""
    try:
        data = read_json(path, max_bytes=MAX_KEY_FILE_BYTES)
        doc = json.loads(data)
    except (FileRefused, ValueError) as exc:
        problem = exc.problem if isinstance(exc, FileRefused) else "not JSON"
        raise KeyUnavailable(f"cannot unlock {what}: damaged file {path} ({problem})") from None
    if not all(isinstance(v, str) for v in doc.values()):
        raise KeyUnavailable(f"cannot unlock {what}: damaged file {path} (a field is not text)")
    return data.decode()


@dataclass
class AgencyKeys:
    """An agency's private keys: current signers per algorithm, every retained decrypter."""

    agency_id: str
    signing: dict[KeyAlg, PrivateKey] = field(default_factory=dict)
    decryption: dict[str, PrivateKey] = field(default_factory=dict)

    def add(self, key: PrivateKey) -> None:
        if key.alg.use is KeyUse.SIGN:
            self.signing[key.alg] = key
        else:
            self.decryption[key.key_id] = key

    def signers_for(self, algs: tuple[KeyAlg, ...]) -> list[PrivateKey]:
        missing = [a.value for a in algs if a not in self.signing]
        if missing:
            raise KeyUnavailable(f"{self.agency_id} holds no {', '.join(missing)} signing key")
        return [self.signing[a] for a in algs]

    def __repr__(self) -> str:
        signing = sorted(k.key_id for k in self.signing.values())
        return (
            f"AgencyKeys({self.agency_id}, signing={signing}, decryption={sorted(self.decryption)})"
        )


class Keystore:
    def __init__(self, root: Path, passphrase: bytes) -> None:
        self.root = root
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return f"Keystore({self.root})"

    def _owner_dir(self, owner: str, *, create: bool = False) -> Path:
        if "/" in owner or owner.startswith("."):
            raise ConfigurationError(f"invalid key owner {owner!r}")
        path = self.root / owner
        if create:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _write(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)

    def save(self, owner: str, key: PrivateKey) -> Path:
        path = self._owner_dir(owner, create=True) / f"{key.key_id}.key"
        self._write(path, key.export_encrypted(self._passphrase))
        return path

    def load(self, owner: str, key_id: str) -> PrivateKey:
        path = self._owner_dir(owner) / f"{key_id}.key"
        if not path.exists():
            raise KeyUnavailable(f"no private key {key_id} for {owner} in {self.root}")
        text = _sealed_text(path, f"private key {key_id} of {owner}")
        return PrivateKey.import_encrypted(text, self._passphrase)

    def key_ids(self, owner: str) -> list[str]:
        return sorted(p.stem for p in self._owner_dir(owner).glob("*.key"))

    def check_passphrase(self, owner: str) -> None:
        """Unlock one of ``owner``'s keys, before anything new is sealed: a key written
        under a mistyped passphrase would be lost to everyone."""
        ids = self.key_ids(owner)
        if not ids:
            raise KeyUnavailable(f"no private keys for {owner} in {self.root}")
        self.load(owner, ids[0])

    def delete(self, owner: str, key_id: str) -> None:
        (self._owner_dir(owner) / f"{key_id}.key").unlink(missing_ok=True)

    def save_subject_key(self, key: SubjectKey) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(
            self.root / "subject.key",
            seal_secret(key.export(), self._passphrase, label=SUBJECT_KEY_LABEL),
        )

    def load_subject_key(self) -> SubjectKey:
        path = self.root / "subject.key"
        if not path.exists():
            raise KeyUnavailable(f"no subject key in {self.root}: run `mappa keys init`")
        text = _sealed_text(path, SUBJECT_KEY_LABEL)
        return SubjectKey(open_secret(text, self._passphrase, label=SUBJECT_KEY_LABEL))
