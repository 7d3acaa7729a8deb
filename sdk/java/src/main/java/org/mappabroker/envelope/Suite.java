package org.mappabroker.envelope;

import java.util.List;
import java.util.Optional;

/** The suites of docs/envelope.md §1: the signatures each requires and its HPKE key kind. */
public enum Suite {
  /** Ed25519; HPKE DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. */
  CLASSIC("classic", List.of("ed25519"), "x25519", 80),
  /** Ed25519 then ML-DSA-65; HPKE MLKEM768-X25519 (X-Wing), HKDF-SHA256, AES-256-GCM. */
  PQ_HYBRID("pq-hybrid", List.of("ed25519", "ml-dsa-65"), "mlkem768-x25519", 1168);

  private final String wireName;
  private final List<String> signatureAlgs;
  private final String kemKeyAlg;
  private final int wrappedKeyBytes;

  Suite(String wireName, List<String> signatureAlgs, String kemKeyAlg, int wrappedKeyBytes) {
    this.wireName = wireName;
    this.signatureAlgs = signatureAlgs;
    this.kemKeyAlg = kemKeyAlg;
    this.wrappedKeyBytes = wrappedKeyBytes;
  }

  /** The suite a header names, if known. */
  public static Optional<Suite> named(String name) {
    for (Suite s : values()) {
      if (s.wireName.equals(name)) {
        return Optional.of(s);
      }
    }
    return Optional.empty();
  }

  /** The name in {@code header.suite}. */
  public String wireName() {
    return wireName;
  }

  /** The signature algorithms required, in order. */
  public List<String> signatureAlgs() {
    return signatureAlgs;
  }

  /** The algorithm of the recipients' encryption keys. */
  public String kemKeyAlg() {
    return kemKeyAlg;
  }

  /**
   * The exact wrapped key length: HPKE {@code enc} (32 or 1120) + data key (32) + tag (16).
   */
  public int wrappedKeyBytes() {
    return wrappedKeyBytes;
  }
}
