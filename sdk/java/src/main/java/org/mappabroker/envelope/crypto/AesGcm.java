package org.mappabroker.envelope.crypto;

import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.crypto.engines.AESEngine;
import org.bouncycastle.crypto.modes.GCMBlockCipher;
import org.bouncycastle.crypto.modes.GCMModeCipher;
import org.bouncycastle.crypto.params.AEADParameters;
import org.bouncycastle.crypto.params.KeyParameter;

/** AES-256-GCM with a 128-bit tag, from Bouncy Castle. */
public final class AesGcm {
  /** GCM's tag, appended to the ciphertext. */
  public static final int TAG_BYTES = 16;

  private AesGcm() {}

  /**
   * Decrypt {@code ciphertextAndTag} under {@code key} (32 bytes) and {@code nonce} with
   * {@code aad}.
   *
   * @throws InvalidCipherTextException if the tag does not verify or the input is too short
   */
  public static byte[] decrypt(byte[] key, byte[] nonce, byte[] ciphertextAndTag, byte[] aad)
      throws InvalidCipherTextException {
    GCMModeCipher gcm = GCMBlockCipher.newInstance(AESEngine.newInstance());
    gcm.init(false, new AEADParameters(new KeyParameter(key), TAG_BYTES * 8, nonce, aad));
    byte[] out = new byte[gcm.getOutputSize(ciphertextAndTag.length)];
    int n = gcm.processBytes(ciphertextAndTag, 0, ciphertextAndTag.length, out, 0);
    n += gcm.doFinal(out, n);
    return n == out.length ? out : java.util.Arrays.copyOf(out, n);
  }
}
