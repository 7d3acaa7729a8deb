package org.mappabroker.envelope;

import java.nio.charset.StandardCharsets;
import org.bouncycastle.crypto.digests.SHA256Digest;
import org.bouncycastle.crypto.macs.HMac;
import org.bouncycastle.crypto.params.KeyParameter;
import org.mappabroker.envelope.crypto.Digests;

/**
 * {@code header.subject_ref} (docs/envelope.md §2.1):
 * {@code hex(HMAC-SHA-256(subject_key, "mappa-subject-v1" || 0x00 || pnc_id))}.
 */
public final class SubjectRef {
  private static final byte[] LABEL = "mappa-subject-v1".getBytes(StandardCharsets.US_ASCII);

  private SubjectRef() {}

  /**
   * The reference of {@code pncId} (ASCII, as the body holds it) under the deployment's
   * 32-byte {@code subjectKey}.
   */
  public static String of(byte[] subjectKey, String pncId) {
    HMac mac = new HMac(new SHA256Digest());
    mac.init(new KeyParameter(subjectKey));
    byte[] pnc = pncId.getBytes(StandardCharsets.US_ASCII);
    mac.update(LABEL, 0, LABEL.length);
    mac.update((byte) 0);
    mac.update(pnc, 0, pnc.length);
    byte[] out = new byte[mac.getMacSize()];
    mac.doFinal(out, 0);
    return Digests.hex(out);
  }
}
