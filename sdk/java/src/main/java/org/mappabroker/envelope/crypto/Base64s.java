package org.mappabroker.envelope.crypto;

import java.util.Base64;
import java.util.regex.Pattern;
import org.mappabroker.envelope.Refused;

/**
 * Strict standard base64 with padding (RFC 4648 §4), as docs/envelope.md's {@code b64}.
 *
 * <p>{@link #strict} accepts what Python's {@code base64.b64decode(text, validate=True)}
 * accepts: the standard alphabet only, no whitespace, a length that is a multiple of four,
 * at most two {@code =} at the end. {@link #canonical} also requires the unused bits before
 * the padding to be zero, so each byte string has exactly one spelling (the spec's pattern
 * for publication path hashes, §2.3).
 */
public final class Base64s {
  private static final Pattern ALPHABET = Pattern.compile("[A-Za-z0-9+/]*={0,2}");
  private static final String ALPHABET_CHARS =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

  private Base64s() {}

  /** As {@link #strict(String, String)} with Python's code for bad base64, {@code schema.base64}. */
  public static byte[] strict(String text) throws Refused {
    return strict(text, "schema.base64");
  }

  /**
   * Decode {@code text}, refusing anything but strict padded base64 with {@code code}
   * (the caller's refusal code, e.g. {@code envelope.malformed}).
   */
  public static byte[] strict(String text, String code) throws Refused {
    if (text.length() % 4 != 0 || !ALPHABET.matcher(text).matches()) {
      throw new Refused(code, "invalid base64");
    }
    try {
      return Base64.getDecoder().decode(text);
    } catch (IllegalArgumentException e) {
      throw new Refused(code, "invalid base64");
    }
  }

  /** As {@link #strict}, and the bits padding leaves unused are zero: the one spelling. */
  public static byte[] canonical(String text, String code) throws Refused {
    byte[] bytes = strict(text, code);
    int pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
    if (pad > 0) {
      int last = ALPHABET_CHARS.indexOf(text.charAt(text.length() - 1 - pad));
      int unusedBits = pad == 2 ? 4 : 2;
      if ((last & ((1 << unusedBits) - 1)) != 0) {
        throw new Refused(code, "base64 not in its canonical spelling");
      }
    }
    return bytes;
  }

  /** Standard base64 with padding. */
  public static String encode(byte[] bytes) {
    return Base64.getEncoder().encodeToString(bytes);
  }
}
