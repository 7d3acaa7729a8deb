package org.mappabroker.envelope.crypto;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mappabroker.envelope.json.Jcs;

/**
 * The Merkle tree of a publication (docs/envelope.md §3.6): RFC 9162's with SHA-256, leaves
 * and nodes domain-separated by a first byte, and the signed bytes of its root.
 */
public final class PublicationTree {
  /** DSSE payload type of a publication root. */
  public static final String PAYLOAD_TYPE = "application/vnd.mappa.publication+json; version=1";

  /** A publication holds 2 to 256 envelopes, so a path holds 1 to 8 hashes. */
  public static final int MAX_SIZE = 256;

  public static final int MAX_PATH = 8;

  public static final int HASH_BYTES = 32;

  private PublicationTree() {}

  /** {@code SHA-256(0x00 || signedBytes)}. */
  public static byte[] leafHash(byte[] signedBytes) {
    return Digests.sha256(new byte[] {0}, signedBytes);
  }

  /** {@code SHA-256(0x01 || left || right)}. */
  public static byte[] nodeHash(byte[] left, byte[] right) {
    return Digests.sha256(new byte[] {1}, left, right);
  }

  /** How many hashes RFC 9162's {@code PATH(index, D[size])} holds. */
  public static int pathLength(long index, long size) {
    int length = 0;
    while (size > 1) {
      long k = Long.highestOneBit(size - 1); // the largest power of two below size
      if (index < k) {
        size = k;
      } else {
        index -= k;
        size -= k;
      }
      length++;
    }
    return length;
  }

  /**
   * The root {@code path} leads to from {@code leaf} at {@code index} of {@code size} (RFC 9162
   * §2.1.3.2 steps 2-4). The caller has checked the bounds and the path's exact length.
   */
  public static byte[] rootFromPath(byte[] leaf, long index, long size, List<byte[]> path) {
    long fn = index;
    long sn = size - 1;
    byte[] r = leaf;
    for (byte[] p : path) {
      if ((fn & 1) == 1 || fn == sn) {
        r = nodeHash(p, r);
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      } else {
        r = nodeHash(r, p);
      }
      fn >>= 1;
      sn >>= 1;
    }
    return r;
  }

  /** {@code PAE(PAYLOAD_TYPE, JCS({"root": hex(root), "size": size}))}. */
  public static byte[] rootSignedBytes(byte[] root, long size) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("root", Digests.hex(root));
    body.put("size", size);
    return Pae.encode(PAYLOAD_TYPE, Jcs.canonical(body));
  }

}
