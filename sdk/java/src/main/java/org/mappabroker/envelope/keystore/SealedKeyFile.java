package org.mappabroker.envelope.keystore;

import java.util.Map;
import java.util.Set;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.json.StrictJson;

/**
 * One key file of mappa's keystore, parsed but still sealed: the JSON text that
 * {@code broker/crypto/keys.py} {@code PrivateKey.export_encrypted} writes,
 *
 * <pre>
 *   {"alg": "ed25519" | "ml-dsa-65" | "x25519" | "mlkem768-x25519",
 *    "key_id": 32 lowercase hex,
 *    "key":   PKCS #8 "ENCRYPTED PRIVATE KEY" PEM (the X25519 part of the hybrid key),
 *    "mlkem": the same, of the ML-KEM-768 part: present for mlkem768-x25519 only}
 * </pre>
 *
 * <p>Every member is text; another member, a missing one or the wrong {@code mlkem} for the
 * algorithm is a damaged file. Nothing here is trusted yet: {@link KeySeeds} checks the key id
 * against the key once it is unsealed.
 */
record SealedKeyFile(String alg, String keyId, String keyPem, String mlkemPem) {
  static final String HYBRID = "mlkem768-x25519";
  static final Set<String> ALGS = Set.of("ed25519", "ml-dsa-65", "x25519", HYBRID);

  /** Parse a key file's bytes; refuses a damaged one without quoting it. */
  static SealedKeyFile parse(byte[] raw, String fileName) throws Refused {
    Map<String, Object> doc;
    try {
      // The integer code does not matter: a key file holds no number.
      doc = StrictJson.parseObject(raw, Keystore.CODE);
    } catch (Refused e) {
      throw damaged(fileName, "not one JSON object");
    }
    boolean hybrid = HYBRID.equals(doc.get("alg"));
    Set<String> expected =
        hybrid ? Set.of("alg", "key_id", "key", "mlkem") : Set.of("alg", "key_id", "key");
    if (!doc.keySet().equals(expected)) {
      throw damaged(fileName, "its members are not those of a key file of its algorithm");
    }
    for (Object value : doc.values()) {
      if (!(value instanceof String)) {
        throw damaged(fileName, "a member is not text");
      }
    }
    String alg = (String) doc.get("alg");
    if (!ALGS.contains(alg)) {
      throw damaged(fileName, "unknown key algorithm");
    }
    return new SealedKeyFile(
        alg, (String) doc.get("key_id"), (String) doc.get("key"), (String) doc.get("mlkem"));
  }

  static Refused damaged(String fileName, String problem) {
    return new Refused(Keystore.CODE, "damaged key file " + fileName + " (" + problem + ")");
  }

  /** Not the PEM text: a record's generated toString would print it. */
  @Override
  public String toString() {
    return "SealedKeyFile[" + alg + " " + keyId + "]";
  }
}
