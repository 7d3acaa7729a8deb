package org.mappabroker.envelope.crypto;

import java.nio.charset.StandardCharsets;

/** Key ids (docs/envelope.md §1): {@code hex(SHA-256(alg || 0x00 || public_key))[:32]}. */
public final class KeyIds {
  /** A key id is 16 bytes of the digest, 32 hex characters. */
  public static final int HEX_LENGTH = 32;

  private KeyIds() {}

  /** The key id of {@code publicKey} (raw bytes) under {@code alg}, e.g. {@code ed25519}. */
  public static String of(String alg, byte[] publicKey) {
    byte[] digest =
        Digests.sha256(alg.getBytes(StandardCharsets.US_ASCII), new byte[] {0}, publicKey);
    return Digests.hex(digest).substring(0, HEX_LENGTH);
  }
}
