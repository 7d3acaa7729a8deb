package org.mappabroker.envelope.keystore;

import org.mappabroker.envelope.PrivateKeySeed;

/**
 * One key file opened: its seed (docs/envelope.md §1), and the public key and key id that seed
 * gives (checked equal to the id the file records). {@link PrivateKeySeed#toString()} hides the
 * seed, so this record's does too.
 */
record UnsealedKey(String alg, String keyId, byte[] publicKey, PrivateKeySeed seed) {
  /** Whether this is a signing key (Ed25519 or ML-DSA-65), not a decryption key. */
  boolean signs() {
    return alg.equals("ed25519") || alg.equals("ml-dsa-65");
  }
}
