package org.mappabroker.envelope.crypto;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * DSSE's pre-authentication encoding (docs/envelope.md §3.5):
 * {@code "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body}, LEN the byte length in ASCII
 * decimal, SP one space.
 */
public final class Pae {
  private Pae() {}

  /** The bytes a signature covers for a document of {@code payloadType} with {@code body}. */
  public static byte[] encode(String payloadType, byte[] body) {
    byte[] type = payloadType.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream out = new ByteArrayOutputStream(type.length + body.length + 32);
    out.writeBytes(("DSSEv1 " + type.length + " ").getBytes(StandardCharsets.US_ASCII));
    out.writeBytes(type);
    out.writeBytes((" " + body.length + " ").getBytes(StandardCharsets.US_ASCII));
    out.writeBytes(body);
    return out.toByteArray();
  }
}
