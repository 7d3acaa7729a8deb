package org.mappabroker.envelope;

/**
 * One private key as its seed (docs/envelope.md §1): {@code alg} is {@code ed25519},
 * {@code ml-dsa-65}, {@code x25519} (32 bytes each) or {@code mlkem768-x25519} (96 bytes: the
 * ML-KEM-768 seed {@code d || z}, then the X25519 private key). Its key id is derived from the
 * public key it gives. {@link #toString()} never shows the seed.
 */
public record PrivateKeySeed(String alg, byte[] seed) {
  /** Copies {@code seed}, so the caller may clear its own array. */
  public PrivateKeySeed {
    seed = seed.clone();
  }

  @Override
  public byte[] seed() {
    return seed.clone();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof PrivateKeySeed o
        && o.alg.equals(alg)
        && org.bouncycastle.util.Arrays.constantTimeAreEqual(o.seed, seed);
  }

  @Override
  public int hashCode() {
    return alg.hashCode();
  }

  @Override
  public String toString() {
    return "PrivateKeySeed[" + alg + ", " + seed.length + " bytes]";
  }
}
