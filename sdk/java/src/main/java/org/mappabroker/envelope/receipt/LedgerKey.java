package org.mappabroker.envelope.receipt;

import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.json.StrictJson;

/**
 * The audit ledger's Ed25519 checkpoint key, which signs ledger receipts (docs/receipts.md
 * §4): the {@code ledger.pub} of every deployment's data directory,
 * {@code {"alg": "ed25519", "key_id": …, "public_key": b64(raw)}}.
 */
public final class LedgerKey {
  /** {@code ledger.pub} is a few dozen bytes; anything near this is not one. */
  public static final int MAX_FILE_BYTES = 4096;

  private static final String CODE = "config.invalid";
  private static final int ED25519_PUBLIC_BYTES = 32;

  private final String keyId;
  private final byte[] publicKey;

  private LedgerKey(String keyId, byte[] publicKey) {
    this.keyId = keyId;
    this.publicKey = publicKey;
  }

  /** The key {@code ledger.pub} holds; {@code config.invalid} unless the file is exactly one. */
  public static LedgerKey parse(byte[] ledgerPub) throws Refused {
    if (ledgerPub.length > MAX_FILE_BYTES) {
      throw new Refused(CODE, "ledger.pub is too large to be one");
    }
    Map<String, Object> doc;
    try {
      doc = StrictJson.parseObject(ledgerPub, CODE);
    } catch (Refused e) {
      throw new Refused(CODE, "ledger.pub is not one JSON object");
    }
    if (!doc.keySet().equals(Set.of("alg", "key_id", "public_key"))
        || !"ed25519".equals(doc.get("alg"))
        || !(doc.get("key_id") instanceof String keyId)
        || !(doc.get("public_key") instanceof String encoded)) {
      throw new Refused(CODE, "ledger.pub is not an ed25519 key of {alg, key_id, public_key}");
    }
    return of(keyId, Base64s.strict(encoded, CODE));
  }

  /** The ledger key of raw Ed25519 {@code publicKey}, which must give {@code keyId}. */
  public static LedgerKey of(String keyId, byte[] publicKey) throws Refused {
    if (publicKey.length != ED25519_PUBLIC_BYTES) {
      throw new Refused(CODE, "the ledger key is not a 32-byte Ed25519 public key");
    }
    if (!KeyIds.of("ed25519", publicKey).equals(keyId)) {
      throw new Refused(CODE, "the ledger key does not give its key_id");
    }
    return new LedgerKey(keyId, publicKey.clone());
  }

  /** Its key id, {@code hex(SHA-256("ed25519" || 0x00 || raw))[:32]}. */
  public String keyId() {
    return keyId;
  }

  /** The raw 32-byte public key. */
  public byte[] publicKey() {
    return publicKey.clone();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof LedgerKey k && Arrays.equals(publicKey, k.publicKey);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(publicKey);
  }

  @Override
  public String toString() {
    return "LedgerKey[" + keyId + "]";
  }
}
