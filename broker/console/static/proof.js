// Checking an audit-ledger entry's inclusion proof in the browser, so an
// information-governance officer need not take the server's word that an entry is in the
// ledger. A port of broker/ledger/verify_proofs.py (the standalone verifier) to Web Crypto,
// with the same rules and the same bounds:
//
// - hashing is RFC 9162 section 2.1 (as RFC 6962): SHA-256, leaf hash H(0x00 || entry),
//   interior node hash H(0x01 || left || right);
// - an inclusion proof is checked with the algorithm of RFC 9162 section 2.1.3.2;
// - a checkpoint is a C2SP signed note (https://c2sp.org/tlog-checkpoint,
//   https://c2sp.org/signed-note) signed with Ed25519, checked against the ledger's key.
//
// Every check throws a ProofError, with a message saying what is wrong, rather than
// returning false. Sizes and indexes are BigInts (a tree may have up to 2^63 - 1 leaves,
// past what a Number holds exactly); a Number given for one must be a safe integer.
// No dependencies, no eval, no inline script: it runs under the console's
// Content-Security-Policy (default-src 'self').
//
// The markup contract (what a page puts in its HTML for the automatic check):
//
//   <div data-checkpoint-url="CHECKPOINT-URL" data-ledger-key="VERIFIER-KEY">
//     ... for each entry:
//     <strong class="govuk-tag govuk-tag--grey" data-proof-url="PROOF-URL">
//       Not checked (needs JavaScript)
//     </strong>
//   </div>
//   <script type="module" src="/console/static/proof.js"></script>
//
// - data-checkpoint-url, on a container: a same-origin URL answering the JSON of
//   GET /governance/checkpoint ({"note": "<signed note>", ...}; only "note" is read).
//   Fetched once per container.
// - data-ledger-key, on the same container: the ledger's signed-note verifier key,
//   "<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>", as
//   `mappa audit checkpoint` prints it and ledger.pub holds. The key is only ever taken
//   from here, never from a fetched answer (their "verifier_key" fields are ignored).
// - data-ledger-origin, on the same container, optional: the log's origin the checkpoint
//   must name; by default the key's name (the ledger names its key after its origin).
// - data-proof-url, on each element to mark: a same-origin URL answering the JSON of
//   GET /governance/proof/{seq} ({"seq", "tree_size", "leaf_hash", "hashes", "entry"};
//   its "checkpoint" and "verifier_key" are ignored). Its tree_size must be the
//   container's checkpoint's: pin both with ?size=N when the page is rendered.
//
// When the page has loaded, each data-proof-url element becomes
// `govuk-tag govuk-tag--green` "Proof checked in your browser", or
// `govuk-tag--red` "Proof failed: <reason>" (its other govuk-tag--* classes removed), and
// gets data-proof-state="checked" or "failed". Without JavaScript the page's own text
// stays. `pageChecked` is a promise of the automatic check's outcomes.

const HASH_SIZE = 32;
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);
// A tree of at most 2^63 - 1 leaves has proofs of at most 63 hashes; longer is refused
// before hashing.
export const MAX_TREE_SIZE = (1n << 63n) - 1n;
export const MAX_PROOF_HASHES = 128;
// A checkpoint is a few hundred bytes; a megabyte of "checkpoint" is an attack.
export const MAX_NOTE_BYTES = 8192;
export const MAX_SIGNATURES = 16;
const ED25519_ALG = 0x01; // signed-note signature type for Ed25519
const KEY_ID_BYTES = 4;
// A proof answer is an entry (about a kilobyte) and a few dozen hashes.
const MAX_ANSWER_CHARS = 1 << 20;
// Proofs fetched at once by the automatic check.
const CONCURRENT_FETCHES = 6;

const PASSED = "Proof checked in your browser";
const FAILED = "Proof failed: ";

/** A proof, a tree head, a checkpoint or a key did not check out. */
export class ProofError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
}

function fail(message) {
  throw new ProofError(message);
}

const encoder = new TextEncoder();

function bytesOf(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  return fail(`${what} must be bytes (a Uint8Array)`);
}

function utf8(text, what) {
  if (typeof text !== "string") fail(`${what} must be text`);
  // Python's str.encode() refuses a lone surrogate; TextEncoder would replace it.
  if (!text.isWellFormed()) fail(`${what} is not well-formed Unicode`);
  return encoder.encode(text);
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function sha256(...parts) {
  const data = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

// -- encodings ------------------------------------------------------------------------------

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Map([...BASE64].map((c, i) => [c, i]));

/** Standard base64 to bytes, accepting exactly what Python's
 * base64.b64decode(text, validate=True) accepts (3.11): alphabet and "=" only, no
 * leading padding, nothing after the padding that ends a quantum, no one-character
 * remainder; unused trailing bits and padding after a whole quantum are ignored. */
export function decodeBase64(text, what = "value") {
  if (typeof text !== "string") fail(`${what} must be base64 text`);
  const out = [];
  let quad = 0;
  let pads = 0;
  let acc = 0;
  let padding = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "=") {
      if (i === 0) fail(`${what} is not base64 (it starts with padding)`);
      padding = true;
      if (quad >= 2) {
        pads += 1;
        if (quad + pads >= 4) {
          if (i + 1 < text.length) fail(`${what} is not base64 (data after its padding)`);
          return Uint8Array.from(out);
        }
      }
      continue;
    }
    const v = BASE64_VALUE.get(ch);
    if (v === undefined) fail(`${what} is not base64 (a character outside its alphabet)`);
    if (padding) fail(`${what} is not base64 (padding inside it)`);
    if (quad === 0) {
      acc = v;
    } else if (quad === 1) {
      out.push((acc << 2) | (v >> 4));
      acc = v & 0x0f;
    } else if (quad === 2) {
      out.push((acc << 4) | (v >> 2));
      acc = v & 0x03;
    } else {
      out.push((acc << 6) | v);
    }
    quad = (quad + 1) & 3;
  }
  if (quad === 1) fail(`${what} is not base64 (one character too many)`);
  if (quad !== 0) fail(`${what} is not base64 (incorrect padding)`);
  return Uint8Array.from(out);
}

/** Bytes as standard base64, padded. */
export function encodeBase64(bytes) {
  const data = bytesOf(bytes, "bytes");
  let binary = "";
  for (let i = 0; i < data.length; i++) binary += String.fromCharCode(data[i]);
  return btoa(binary);
}

// Python's bytes.fromhex: pairs of hex digits, ASCII whitespace allowed between pairs.
function fromHex(text, what) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    if (" \t\n\r\v\f".includes(text[i])) {
      i += 1;
      continue;
    }
    const pair = text.slice(i, i + 2);
    if (!/^[0-9A-Fa-f]{2}$/.test(pair)) fail(`${what} is not hexadecimal`);
    out.push(parseInt(pair, 16));
    i += 2;
  }
  return Uint8Array.from(out);
}

// What Python's str.strip() strips (str.isspace()).
const PY_SPACE = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "g");

function toIndex(value, what) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) fail(`${what} must be a whole number`);
    return BigInt(value);
  }
  if (typeof value === "string" && /^(0|[1-9][0-9]*)$/.test(value)) return BigInt(value);
  return fail(`${what} must be a whole number`);
}

// -- hashing and inclusion proofs -----------------------------------------------------------

/** The RFC 9162 leaf hash of `entry` (bytes): SHA-256(0x00 || entry). */
export async function leafHash(entry) {
  return sha256(LEAF_PREFIX, bytesOf(entry, "entry"));
}

/** The RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(NODE_PREFIX, bytesOf(left, "left hash"), bytesOf(right, "right hash"));
}

function proofHashes(proof) {
  if (!Array.isArray(proof)) fail("a proof is a list of hashes");
  if (proof.length > MAX_PROOF_HASHES) {
    fail(`proof has ${proof.length} hashes; at most ${MAX_PROOF_HASHES} are possible`);
  }
  return proof.map((h) => {
    const bytes = typeof h === "string" ? decodeBase64(h, "proof hash") : bytesOf(h, "proof hash");
    if (bytes.length !== HASH_SIZE) {
      fail(`proof hash of ${bytes.length} bytes; SHA-256 hashes are ${HASH_SIZE}`);
    }
    return bytes;
  });
}

/** The root implied by `leafHash` (a leaf *hash*) at `leafIndex` in a tree of `treeSize`
 * leaves, and `proof` (hashes, leaf side first): RFC 9162 section 2.1.3.2. Throws a
 * ProofError if the index, leaf or proof cannot be for such a tree. */
export async function rootFromInclusionProof({ leafIndex, treeSize, leafHash: leaf, proof }) {
  const index = toIndex(leafIndex, "leaf index");
  const size = toIndex(treeSize, "tree size");
  if (!(index >= 0n && index < size && size <= MAX_TREE_SIZE)) {
    fail(`leaf index ${index} is not inside a tree of size ${size}`);
  }
  let r = bytesOf(leaf, "leaf hash");
  if (r.length !== HASH_SIZE) fail("leaf hash must be 32 bytes");
  const hashes = proofHashes(proof);
  let fn = index;
  let sn = size - 1n;
  for (const p of hashes) {
    if (sn === 0n) fail("inclusion proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("inclusion proof is shorter than the tree is deep");
  return r;
}

/** Resolves (to nothing) if `proof` shows leaf hash `leafHash` at `leafIndex` in the tree
 * of `treeSize` leaves whose root is `rootHash`; throws a ProofError otherwise (an index
 * outside the tree, a proof of the wrong length, or a root that does not match). */
export async function verifyInclusion({ leafIndex, treeSize, leafHash: leaf, proof, rootHash }) {
  const root = await rootFromInclusionProof({ leafIndex, treeSize, leafHash: leaf, proof });
  if (!equalBytes(root, bytesOf(rootHash, "root hash"))) {
    fail(`inclusion proof for leaf ${toIndex(leafIndex, "leaf index")} does not lead to the tree head`);
  }
}

// -- checkpoints (C2SP signed notes) --------------------------------------------------------

/** The signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key). */
export async function noteKeyId(name, publicKey) {
  const digest = await sha256(
    utf8(name, "key name"),
    Uint8Array.of(0x0a, ED25519_ALG),
    bytesOf(publicKey, "public key"),
  );
  return digest.slice(0, KEY_ID_BYTES);
}

/** "<name>+<hex key id>+<base64(0x01 || public key)>" to {name, publicKey, keyId}. Throws
 * a ProofError if it is malformed, not Ed25519, or its key id does not match. */
export async function parseVerifierKey(vkey) {
  if (typeof vkey !== "string") fail("a verifier key is <name>+<key id>+<key>");
  const text = vkey.replace(PY_STRIP, "");
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) fail("a verifier key is <name>+<key id>+<key>");
  const name = text.slice(0, first);
  let blob;
  let keyId;
  try {
    blob = decodeBase64(text.slice(second + 1), "key");
    keyId = fromHex(text.slice(first + 1, second), "key id");
  } catch (error) {
    fail(`verifier key is not well formed: ${error.message}`);
  }
  if (blob.length !== 33 || blob[0] !== ED25519_ALG) {
    fail("verifier key is not an Ed25519 signed-note key");
  }
  const publicKey = blob.slice(1);
  if (!equalBytes(await noteKeyId(name, publicKey), keyId)) {
    fail("verifier key id does not match its name and key");
  }
  return { name, publicKey, keyId };
}

// A verifier key string, or {name, publicKey: 32 bytes or their base64}.
async function resolveKey(key) {
  if (typeof key === "string") return parseVerifierKey(key);
  if (key === null || typeof key !== "object") {
    fail("the ledger key is a verifier key or {name, publicKey}");
  }
  const { name } = key;
  if (typeof name !== "string") fail("the ledger key needs its name");
  const publicKey =
    typeof key.publicKey === "string"
      ? decodeBase64(key.publicKey, "public key")
      : bytesOf(key.publicKey, "public key");
  if (publicKey.length !== 32) fail("an Ed25519 public key is 32 bytes");
  return { name, publicKey, keyId: await noteKeyId(name, publicKey) };
}

/** A signed note's text (with its final newline) and its signatures
 * [{name, keyId, signature}]; nothing verified. Throws a ProofError if it is too large or
 * not shaped as a signed note. */
export function splitNote(note) {
  if (utf8(note, "checkpoint").length > MAX_NOTE_BYTES) {
    fail(`a checkpoint is at most ${MAX_NOTE_BYTES} bytes`);
  }
  const blank = note.indexOf("\n\n");
  const sigs = blank < 0 ? "" : note.slice(blank + 2);
  if (blank < 0 || !sigs.endsWith("\n")) {
    fail("not a signed note: text, a blank line, then signature lines");
  }
  const text = `${note.slice(0, blank)}\n`;
  const signatures = [];
  for (const line of sigs.slice(0, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) {
      fail(`signature line must start with an em dash: ${JSON.stringify(line.slice(0, 40))}`);
    }
    const rest = line.slice(2);
    const space = rest.lastIndexOf(" ");
    const name = space < 0 ? "" : rest.slice(0, space);
    let blob;
    try {
      blob = decodeBase64(rest.slice(space + 1), "signature");
    } catch {
      fail("signature is not base64");
    }
    if (!name || blob.length <= KEY_ID_BYTES) {
      fail("signature line needs a key name and key id + signature");
    }
    signatures.push({
      name,
      keyId: blob.slice(0, KEY_ID_BYTES),
      signature: blob.slice(KEY_ID_BYTES),
    });
  }
  if (signatures.length > MAX_SIGNATURES) {
    fail(`more than ${MAX_SIGNATURES} signatures on one note`);
  }
  return { text, signatures };
}

/** The body of a checkpoint, its note's text: {origin, size (BigInt), root (32 bytes),
 * extensions}. Throws a ProofError unless it is an origin, a decimal size, a 32-byte
 * base64 root and non-empty extension lines, newline-terminated. */
export function parseCheckpointText(text) {
  if (typeof text !== "string") fail("a checkpoint must be text");
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") {
    fail("checkpoint body is origin, size and root hash lines, newline-terminated");
  }
  const [origin, sizeText, rootText, ...extensions] = lines.slice(0, -1);
  if (!origin || !/^(0|[1-9][0-9]*)$/.test(sizeText)) {
    fail("checkpoint origin must be non-empty and size a decimal number");
  }
  let root;
  try {
    root = decodeBase64(rootText, "root hash");
  } catch {
    fail("checkpoint root hash is not base64");
  }
  const size = BigInt(sizeText);
  if (root.length !== HASH_SIZE || size > MAX_TREE_SIZE) {
    fail("checkpoint root hash must be 32 bytes and size in range");
  }
  if (extensions.some((line) => !line)) fail("checkpoint extension lines must not be empty");
  return { origin, size, root, extensions };
}

/** A checkpoint note parsed, NOT verified: its body (as parseCheckpointText) with its
 * text and signatures (as splitNote). Use verifyCheckpoint to trust it. */
export function parseCheckpoint(note) {
  const { text, signatures } = splitNote(note);
  return { ...parseCheckpointText(text), text, signatures };
}

/** Verify a checkpoint's Ed25519 signature by `key` (a verifier key string, or
 * {name, publicKey: raw 32 bytes}) and parse its body; resolves to
 * {origin, size, root, extensions, note}. Throws a ProofError if the key or the note is
 * malformed, no valid signature by the key is on it (the first signature line with the
 * key's name and key id decides), or, given `origin`, it is for another log. */
export async function verifyCheckpoint(note, key, { origin } = {}) {
  const { name, publicKey, keyId } = await resolveKey(key);
  const { text, signatures } = splitNote(note);
  let cryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
      "verify",
    ]);
  } catch (error) {
    fail(
      error.name === "NotSupportedError"
        ? "this browser cannot check Ed25519 signatures"
        : `the ledger key cannot be used: ${error.message}`,
    );
  }
  for (const signature of signatures) {
    if (signature.name === name && equalBytes(signature.keyId, keyId)) {
      let valid = false;
      try {
        valid = await crypto.subtle.verify(
          { name: "Ed25519" },
          cryptoKey,
          signature.signature,
          utf8(text, "checkpoint"),
        );
      } catch {
        valid = false;
      }
      if (!valid) fail(`checkpoint signature by ${name} is invalid`);
      const checkpoint = parseCheckpointText(text);
      if (origin !== undefined && origin !== null && checkpoint.origin !== origin) {
        fail(
          `checkpoint is for log ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`,
        );
      }
      return { ...checkpoint, note };
    }
  }
  return fail(`checkpoint carries no signature by ${name}`);
}

// -- one entry ------------------------------------------------------------------------------

function present(value) {
  return value !== undefined && value !== null;
}

// An entry against a checkpoint already verified.
async function entryUnder(checkpoint, { seq, entry, leafHash: given, hashes, treeSize }) {
  const index = toIndex(seq, "entry number");
  if (present(treeSize) && toIndex(treeSize, "proof's tree size") !== checkpoint.size) {
    fail(
      `the proof is for a tree of ${treeSize} entries, the checkpoint for ${checkpoint.size}`,
    );
  }
  const recorded = present(given)
    ? typeof given === "string"
      ? decodeBase64(given, "leaf hash")
      : bytesOf(given, "leaf hash")
    : null;
  let leaf;
  if (present(entry)) {
    leaf = await leafHash(typeof entry === "string" ? utf8(entry, "entry") : entry);
    if (recorded !== null && !equalBytes(leaf, recorded)) {
      fail(`entry ${index} does not hash to the leaf hash its proof is for`);
    }
  } else if (recorded !== null) {
    leaf = recorded;
  } else {
    fail("an entry, or its leaf hash, is needed");
  }
  await verifyInclusion({
    leafIndex: index,
    treeSize: checkpoint.size,
    leafHash: leaf,
    proof: hashes,
    rootHash: checkpoint.root,
  });
  return {
    ok: true,
    seq: index,
    treeSize: checkpoint.size,
    root: encodeBase64(checkpoint.root),
    origin: checkpoint.origin,
    leafHash: encodeBase64(leaf),
  };
}

/** Check one ledger entry: that `checkpoint` (the signed note text) is signed by `key`
 * (the verifier key string, or {name, publicKey}) for the log `origin` (default: the
 * key's name), and that `hashes` (the inclusion proof: base64 strings as the API gives
 * them, or Uint8Arrays) prove the entry at `seq` under its root. The entry is `entry`
 * (its signed bytes, or their text as the API gives it: hashed here, and compared with
 * `leafHash` when both are given) or only `leafHash` (base64 or bytes: then only that hash
 * is proved, not any text shown beside it). `treeSize`, if given (the proof's
 * tree_size), must be the checkpoint's. Resolves to
 * {ok: true, seq, treeSize, root (base64), origin, leafHash (base64)}; throws a ProofError
 * otherwise. */
export async function checkEntry({
  seq,
  entry,
  leafHash: given,
  hashes,
  treeSize,
  checkpoint,
  key,
  origin,
}) {
  const resolved = await resolveKey(key);
  const verified = await verifyCheckpoint(checkpoint, resolved, {
    origin: present(origin) ? origin : resolved.name,
  });
  return entryUnder(verified, { seq, entry, leafHash: given, hashes, treeSize });
}

// The fields of GET /governance/proof/{seq}'s JSON that are checked.
function proofFields(answer) {
  if (answer === null || typeof answer !== "object" || Array.isArray(answer)) {
    fail("the proof is not a JSON object");
  }
  return {
    seq: answer.seq,
    entry: answer.entry,
    leafHash: answer.leaf_hash,
    hashes: answer.hashes,
    treeSize: answer.tree_size,
  };
}

/** checkEntry on the JSON of GET /governance/proof/{seq}, against `checkpoint` and `key`
 * given apart from it (its own "checkpoint" and "verifier_key" are not used). */
export async function checkProofAnswer(answer, { checkpoint, key, origin }) {
  return checkEntry({ ...proofFields(answer), checkpoint, key, origin });
}

// -- the page -------------------------------------------------------------------------------

async function fetchJson(url, what) {
  if (!url) fail(`no ${what} address on the page`);
  const target = new URL(url, document.baseURI);
  if (target.origin !== window.location.origin) fail(`the ${what} is not on this site`);
  let response;
  try {
    response = await fetch(target, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      redirect: "error",
      cache: "no-store",
    });
  } catch {
    fail(`the ${what} could not be fetched`);
  }
  if (!response.ok) fail(`the ${what} could not be fetched (HTTP ${response.status})`);
  const text = await response.text();
  if (text.length > MAX_ANSWER_CHARS) fail(`the ${what} is too large`);
  try {
    return JSON.parse(text);
  } catch {
    return fail(`the ${what} is not JSON`);
  }
}

// The container's checkpoint, verified with the container's key.
async function containerCheckpoint(container) {
  const key = container.getAttribute("data-ledger-key");
  if (!key) fail("no ledger key on the page");
  const answer = await fetchJson(container.getAttribute("data-checkpoint-url"), "checkpoint");
  if (answer === null || typeof answer.note !== "string") fail("the checkpoint has no note");
  const resolved = await resolveKey(key);
  const origin = container.getAttribute("data-ledger-origin");
  return verifyCheckpoint(answer.note, resolved, {
    origin: present(origin) ? origin : resolved.name,
  });
}

function show(element, passed, text) {
  for (const name of [...element.classList]) {
    if (name.startsWith("govuk-tag--")) element.classList.remove(name);
  }
  element.classList.add("govuk-tag", passed ? "govuk-tag--green" : "govuk-tag--red");
  element.textContent = text;
  element.dataset.proofState = passed ? "checked" : "failed";
}

/** Check every [data-proof-url] element under `root` (markup contract above) and mark
 * each; resolves to their outcomes [{url, ok, reason?, result?}] in document order. */
export async function checkProofsIn(root = document) {
  const elements = [...root.querySelectorAll("[data-proof-url]")];
  const checkpoints = new Map();
  const outcomes = new Array(elements.length);
  let next = 0;
  async function checkOne(element) {
    const url = element.getAttribute("data-proof-url");
    try {
      const container = element.closest("[data-checkpoint-url]");
      if (container === null) fail("no checkpoint on the page");
      if (!checkpoints.has(container)) {
        checkpoints.set(container, containerCheckpoint(container));
      }
      const checkpoint = await checkpoints.get(container);
      const result = await entryUnder(checkpoint, proofFields(await fetchJson(url, "proof")));
      show(element, true, PASSED);
      return { url, ok: true, result };
    } catch (error) {
      const reason = error instanceof Error && error.message ? error.message : String(error);
      show(element, false, FAILED + reason);
      return { url, ok: false, reason };
    }
  }
  async function worker() {
    while (next < elements.length) {
      const at = next;
      next += 1;
      outcomes[at] = await checkOne(elements[at]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_FETCHES, elements.length) }, worker));
  return outcomes;
}

/** The automatic check of the page this module was loaded on: its outcomes, once done. */
export const pageChecked =
  typeof document === "undefined"
    ? Promise.resolve([])
    : document.readyState === "loading"
      ? new Promise((resolve) => {
          document.addEventListener("DOMContentLoaded", () => resolve(checkProofsIn(document)), {
            once: true,
          });
        })
      : checkProofsIn(document);
