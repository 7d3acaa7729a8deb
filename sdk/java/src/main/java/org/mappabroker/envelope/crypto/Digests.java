package org.mappabroker.envelope.crypto;

import org.bouncycastle.crypto.digests.SHA256Digest;
import org.bouncycastle.util.encoders.Hex;

/** SHA-256 from Bouncy Castle, and the lowercase hex the spec writes digests in. */
public final class Digests {
  private Digests() {}

  /** SHA-256 of the concatenation of {@code parts}. */
  public static byte[] sha256(byte[]... parts) {
    SHA256Digest digest = new SHA256Digest();
    for (byte[] part : parts) {
      digest.update(part, 0, part.length);
    }
    byte[] out = new byte[digest.getDigestSize()];
    digest.doFinal(out, 0);
    return out;
  }

  /** Lowercase hexadecimal, the spec's {@code hex(x)}. */
  public static String hex(byte[] bytes) {
    return Hex.toHexString(bytes);
  }
}
