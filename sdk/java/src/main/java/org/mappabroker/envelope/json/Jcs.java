package org.mappabroker.envelope.json;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.erdtman.jcs.JsonCanonicalizer;

/**
 * The JSON Canonicalization Scheme, RFC 8785, of a value {@link StrictJson} gives (or one built
 * of the same types: {@link Map} with {@link String} keys, {@link List}, {@link String},
 * {@link Long}/{@link Integer}, {@link Boolean}, {@code null}).
 *
 * <p>The value is written as compact JSON here, then canonicalised by erdtman's
 * java-json-canonicalization (the reference Java implementation named by RFC 8785), which
 * sorts members by UTF-16 code units and writes strings and numbers as the RFC says. Numbers
 * are integers within ±(2^53−1) ({@link StrictJson} refuses others), so erdtman's
 * double-based number formatting writes them exactly.
 */
public final class Jcs {
  private Jcs() {}

  /** {@code JCS(value)} as UTF-8 bytes. */
  public static byte[] canonical(Object value) {
    try {
      return new JsonCanonicalizer(compactText(value)).getEncodedUTF8();
    } catch (IOException e) {
      // Only reachable if the compact form written above were not JSON: a bug here.
      throw new UncheckedIOException("JCS of a value this class wrote", e);
    }
  }

  /**
   * {@code value} written compactly (no insignificant whitespace), members in each map's own
   * order: how mappa writes a record value whose member order its format fixes (a receipt,
   * docs/receipts.md §1), though signatures cover only the canonical form.
   */
  public static byte[] compact(Object value) {
    return compactText(value).getBytes(StandardCharsets.UTF_8);
  }

  private static String compactText(Object value) {
    StringBuilder out = new StringBuilder(512);
    write(value, out);
    return out.toString();
  }

  private static void write(Object value, StringBuilder out) {
    if (value == null) {
      out.append("null");
    } else if (value instanceof String s) {
      writeString(s, out);
    } else if (value instanceof Long || value instanceof Integer) {
      long n = ((Number) value).longValue();
      if (Math.abs(n) > StrictJson.MAX_SAFE_INTEGER) {
        throw new IllegalArgumentException("integer beyond +-(2^53-1) has no canonical form");
      }
      out.append(n);
    } else if (value instanceof Boolean b) {
      out.append(b ? "true" : "false");
    } else if (value instanceof Map<?, ?> map) {
      out.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        if (!first) {
          out.append(',');
        }
        first = false;
        writeString((String) entry.getKey(), out);
        out.append(':');
        write(entry.getValue(), out);
      }
      out.append('}');
    } else if (value instanceof List<?> list) {
      out.append('[');
      for (int i = 0; i < list.size(); i++) {
        if (i > 0) {
          out.append(',');
        }
        write(list.get(i), out);
      }
      out.append(']');
    } else {
      throw new IllegalArgumentException("no JSON form for " + value.getClass().getName());
    }
  }

  private static void writeString(String s, StringBuilder out) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    out.append('"');
  }
}
