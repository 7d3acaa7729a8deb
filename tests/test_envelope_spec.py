"""docs/envelope.md is enough to verify and decrypt a message: its appendix program, which
uses only the standard library, cryptography and rfc8785, is run against the vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.envelope import MAX_INCLUSION_PATH, MAX_PUBLICATION_ENVELOPES, PublicationProof

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "envelope.md"
VECTORS = ROOT / "tests" / "vectors" / "envelope-vectors.json"
DATA = json.loads(VECTORS.read_text())


def appendix_program() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", SPEC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the spec has one program, in its appendix"
    return blocks[0]


def test_the_program_uses_nothing_of_ours() -> None:
    imports = set(re.findall(r"^(?:from|import) (\w+)", appendix_program(), flags=re.MULTILINE))
    assert imports <= {"base64", "hashlib", "hmac", "json", "sys", "rfc8785", "cryptography"}


@pytest.mark.parametrize(
    ("index", "recipient", "kind"),
    [
        (i, agency, kind)
        for i, v in enumerate(DATA["valid"])
        for agency, kind in v["expect"].items()
        if kind in {"full", "redacted"}
    ],
)
def test_spec_program_decrypts_each_valid_vector(
    tmp_path: Path, index: int, recipient: str, kind: str
) -> None:
    program = tmp_path / "verify_by_hand.py"
    program.write_text(appendix_program())
    done = subprocess.run(  # noqa: S603 - the spec's own program, on our own vectors
        [sys.executable, str(program), str(VECTORS), str(index), recipient],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed_kind, plaintext = done.stdout.rstrip("\n").split(" ", 1)
    assert printed_kind == kind
    assert plaintext == DATA["plaintexts"][kind]


def run_appendix_on_invalid(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    """The appendix's program run on the invalid vector ``name``'s envelope, put in the
    place of the first valid vector's."""
    data = json.loads(VECTORS.read_text())
    tampered = next(v for v in data["invalid"] if v["name"] == name)
    data["valid"] = [{**data["valid"][0], "envelope": tampered["envelope"]}]
    file = tmp_path / "tampered.json"
    file.write_text(json.dumps(data))
    program = tmp_path / "verify_by_hand.py"
    program.write_text(appendix_program())
    return subprocess.run(  # noqa: S603
        [sys.executable, str(program), str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "name",
    [
        "header-purpose-altered",
        "publication-path-hash-altered",
        "publication-size-not-the-signed-one",
        "root-signature-presented-as-a-lone-envelope",
        "lone-signature-presented-as-a-root",
    ],
)
def test_spec_program_refuses_a_tampered_vector(tmp_path: Path, name: str) -> None:
    done = run_appendix_on_invalid(tmp_path, name)
    assert done.returncode != 0
    assert "InvalidSignature" in done.stderr


@pytest.mark.parametrize(
    ("name", "says"),
    [("publication-path-too-long", "path too long"), ("publication-path-too-short", "too short")],
)
def test_spec_program_refuses_a_path_of_the_wrong_length(
    tmp_path: Path, name: str, says: str
) -> None:
    done = run_appendix_on_invalid(tmp_path, name)
    assert done.returncode != 0
    assert says in done.stderr


def test_the_publication_tree_reproduces_from_the_spec() -> None:
    """§3.6, without our code: leaves are SHA-256(0x00 || signed_bytes), the root is RFC
    9162's MTH with 0x01 nodes, and root_signed_bytes is PAE of JCS({root, size})."""

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    def mth(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        return node(mth(leaves[:k]), mth(leaves[k:]))

    by_name = {v["name"]: v for v in DATA["valid"]}
    ptype, rtype = (
        b"application/vnd.mappa.envelope+json; version=1",
        b"application/vnd.mappa.publication+json; version=1",
    )
    assert DATA["publications"]
    for pub in DATA["publications"].values():
        leaves = []
        for name in pub["envelopes"]:
            env = json.loads(by_name[name]["envelope"])
            body = rfc8785.dumps({k: env[k] for k in ("header", "recipients", "views")})
            signed = b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(body), body)
            leaves.append(hashlib.sha256(b"\x00" + signed).digest())
        assert [h.hex() for h in leaves] == pub["leaf_hashes"]
        root = mth(leaves)
        assert root.hex() == pub["root"]
        rbody = rfc8785.dumps({"root": root.hex(), "size": len(leaves)})
        expected = b"DSSEv1 %d %b %d %b" % (len(rtype), rtype, len(rbody), rbody)
        assert pub["signed_root_bytes"].encode() == expected


# -- what the spec publishes besides the envelopes, checked without our code --------------------

LABEL = "mappa-broker envelope test vector seed v1"


def seed(owner: str, alg: str) -> bytes:
    return hashlib.shake_256(f"{LABEL}|{owner}|{alg}".encode()).digest(DATA["seed_bytes"][alg])


def test_the_subject_ref_vector_reproduces_from_the_spec() -> None:
    # §2.1: hex(HMAC-SHA-256(subject_key, "mappa-subject-v1" || 0x00 || pnc_id)).
    published = DATA["subject_ref"]
    key = bytes.fromhex(published["subject_key"])
    assert key == seed("deployment", "subject-key")
    message = b"mappa-subject-v1\x00" + published["pnc_id"].encode("ascii")
    assert message.hex() == published["hmac_message"]
    ref = hmac.new(key, message, hashlib.sha256).hexdigest()
    assert ref == published["subject_ref"]
    assert {json.loads(v["envelope"])["header"]["subject_ref"] for v in DATA["valid"]} == {ref}
    # Without the domain prefix the reference differs: the prefix is part of the input.
    assert hmac.new(key, published["pnc_id"].encode(), hashlib.sha256).hexdigest() != ref


def test_the_published_seed_sizes_give_the_published_keys() -> None:
    directory = DATA["directories"]["default"]["document"]
    for agency in directory["agencies"]:
        for entry in agency["keys"]:
            alg, owner = entry["alg"], agency["agency_id"]
            s = seed(owner, alg)
            if alg == "ed25519":
                raw = ed25519.Ed25519PrivateKey.from_private_bytes(s).public_key()
                public = raw.public_bytes_raw()
            elif alg == "x25519":
                public = (
                    x25519.X25519PrivateKey.from_private_bytes(s).public_key().public_bytes_raw()
                )
            elif alg == "ml-dsa-65":
                public = mldsa.MLDSA65PrivateKey.from_seed_bytes(s).public_key().public_bytes_raw()
            else:
                ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(s[:64]).public_key()
                xk = x25519.X25519PrivateKey.from_private_bytes(s[64:]).public_key()
                public = ml.public_bytes_raw() + xk.public_bytes_raw()
            assert base64.b64encode(public).decode() == entry["public_key"], (owner, alg)
            key_id = hashlib.sha256(alg.encode() + b"\x00" + public).hexdigest()[:32]
            assert key_id == entry["key_id"]


def test_the_published_governance_key_signs_every_directory() -> None:
    # §5: Ed25519 over PAE("application/vnd.mappa.directory+json; version=1", JCS(document)).
    raw = base64.b64decode(DATA["governance_public_key"])
    assert (
        raw
        == ed25519.Ed25519PrivateKey.from_private_bytes(seed("governance", "ed25519"))
        .public_key()
        .public_bytes_raw()
    )
    assert hashlib.sha256(b"ed25519\x00" + raw).hexdigest()[:32] == DATA["governance_key_id"]
    governance = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    ptype = b"application/vnd.mappa.directory+json; version=1"
    for signed in DATA["directories"].values():
        body = rfc8785.dumps(signed["document"])
        message = b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(body), body)
        assert signed["signature"]["key_id"] == DATA["governance_key_id"]
        governance.verify(base64.b64decode(signed["signature"]["signature"]), message)


def test_the_hybrid_kem_is_the_one_the_spec_names() -> None:
    """§1: HPKE KEM 0x647a, MLKEM768-X25519 (X-Wing): ``enc`` is the ML-KEM-768 ciphertext
    (1088 bytes) then the X25519 ephemeral public key (32); the shared secret is
    SHA3-256(ss_ML-KEM || ss_X25519 || ct_X25519 || pk_X25519 || "\\.//^\\"). Rebuilt here
    from RFC 9180's key schedule, without an HPKE library: each wrapped key opens."""
    for vector in DATA["valid"]:
        env = json.loads(vector["envelope"])
        if env["header"]["suite"] != "pq-hybrid":
            continue
        h = hashlib.sha256(rfc8785.dumps(env["header"])).digest()
        for entry in env["recipients"]:
            s = seed(entry["agency"], "mlkem768-x25519")
            ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(s[:64])
            xk = x25519.X25519PrivateKey.from_private_bytes(s[64:])
            wrapped = base64.b64decode(entry["wrapped_key"])
            assert len(wrapped) == 1168
            ct_m, ct_x, sealed = wrapped[:1088], wrapped[1088:1120], wrapped[1120:]
            ss_x = xk.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
            pk_x = xk.public_key().public_bytes_raw()
            shared = hashlib.sha3_256(
                ml.decapsulate(ct_m) + ss_x + ct_x + pk_x + b"\\.//^\\"
            ).digest()
            info = rfc8785.dumps(
                {
                    "agency": entry["agency"],
                    "context": "mappa-envelope-v1 wrap",
                    "header_sha256": h.hex(),
                    "key_id": entry["key_id"],
                    "view_id": entry["view_id"],
                }
            )
            key, nonce = hpke_base_key_schedule(0x647A, shared, info)
            data_key = AESGCM(key).decrypt(nonce, sealed, b"")
            assert data_key.hex() == vector["data_keys"][str(entry["view_id"])]


def hpke_base_key_schedule(kem_id: int, shared: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 §5.1, base mode, HKDF-SHA256 (0x0001), AES-256-GCM (0x0002)."""
    suite_id = b"HPKE" + kem_id.to_bytes(2, "big") + b"\x00\x01\x00\x02"

    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hmac.new(salt, b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()

    def expand(prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
        labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + context
        out, block, counter = b"", b"", 1
        while len(out) < length:
            block = hmac.new(prk, block + labeled + bytes([counter]), hashlib.sha256).digest()
            out, counter = out + block, counter + 1
        return out[:length]

    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared, b"secret", b"")
    return expand(secret, b"key", context, 32), expand(secret, b"base_nonce", context, 12)


def test_the_spec_states_the_publication_bounds_the_code_applies() -> None:
    text = SPEC.read_text()
    pattern = PublicationProof.model_json_schema()["properties"]["path"]["items"]["pattern"]
    assert f"`{pattern}`" in text
    assert f"integer 2-{MAX_PUBLICATION_ENVELOPES}" in text
    assert f"(1-{MAX_INCLUSION_PATH})" in text
    assert MAX_PUBLICATION_ENVELOPES == 2**MAX_INCLUSION_PATH


def test_every_outcome_code_of_the_vectors_is_in_the_spec() -> None:
    text = SPEC.read_text()
    codes = {v["expect"] for v in DATA["invalid"]} - {"full", "redacted", "duplicate"}
    codes -= {"not-addressed"}
    assert {c for c in codes if f"`{c}`" not in text} == set()
