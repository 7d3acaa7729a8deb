package org.mappabroker.envelope.json;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.mappabroker.envelope.Refused;

/**
 * Typed reads of a parsed JSON object's members, each refusing with the caller's code
 * (for example {@code envelope.malformed}) when a member is missing, of the wrong type or out
 * of bounds. Integers are JSON integers only ({@link Long}); a string {@code "3"} or a boolean
 * is the wrong type. Lengths count Unicode code points.
 */
public final class Fields {
  private final Map<String, Object> object;
  private final String code;
  private final String where;

  private Fields(Map<String, Object> object, String code, String where) {
    this.object = object;
    this.code = code;
    this.where = where;
  }

  /**
   * Reads of {@code value}, which must be an object with exactly the members {@code required}
   * and perhaps some of {@code optional}.
   */
  public static Fields of(
      Object value, String code, String where, Set<String> required, Set<String> optional)
      throws Refused {
    if (!(value instanceof Map<?, ?> map)) {
      throw new Refused(code, where + " must be an object");
    }
    for (Object key : map.keySet()) {
      if (!required.contains(key) && !optional.contains(key)) {
        throw new Refused(code, where + " has an unknown member");
      }
    }
    for (String key : required) {
      if (!map.containsKey(key)) {
        throw new Refused(code, where + "." + key + " is missing");
      }
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> object = (Map<String, Object>) map;
    return new Fields(object, code, where);
  }

  /** Whether the member is present (with any value, {@code null} included). */
  public boolean has(String key) {
    return object.containsKey(key);
  }

  /** The raw member value. */
  public Object raw(String key) {
    return object.get(key);
  }

  /** A string matching {@code pattern} in full. */
  public String string(String key, Pattern pattern) throws Refused {
    String s = anyString(key);
    if (!pattern.matcher(s).matches()) {
      throw refused(key, "does not match its pattern");
    }
    return s;
  }

  /** A string of {@code min} to {@code max} Unicode code points. */
  public String text(String key, int min, int max) throws Refused {
    String s = anyString(key);
    int n = s.codePointCount(0, s.length());
    if (n < min || n > max) {
      throw refused(key, "must be " + min + "-" + max + " characters");
    }
    return s;
  }

  /** A string matching {@code pattern}, or {@code null}. */
  public String stringOrNull(String key, Pattern pattern) throws Refused {
    return object.get(key) == null ? null : string(key, pattern);
  }

  /** One of {@code allowed}. */
  public String oneOf(String key, Set<String> allowed) throws Refused {
    String s = anyString(key);
    if (!allowed.contains(s)) {
      throw refused(key, "is not one of the allowed values");
    }
    return s;
  }

  private String anyString(String key) throws Refused {
    if (!(object.get(key) instanceof String s)) {
      throw refused(key, "must be a string");
    }
    return s;
  }

  /** A JSON integer in {@code [min, max]}. */
  public long integer(String key, long min, long max) throws Refused {
    if (!(object.get(key) instanceof Long n)) {
      throw refused(key, "must be an integer");
    }
    if (n < min || n > max) {
      throw refused(key, "must be " + min + "-" + max);
    }
    return n;
  }

  /** An array of {@code min} to {@code max} elements. */
  public List<Object> array(String key, int min, int max) throws Refused {
    if (!(object.get(key) instanceof List<?> list)) {
      throw refused(key, "must be an array");
    }
    if (list.size() < min || list.size() > max) {
      throw refused(key, "must hold " + min + "-" + max + " elements");
    }
    @SuppressWarnings("unchecked")
    List<Object> elements = (List<Object>) list;
    return elements;
  }

  /** A timestamp in the spec's one spelling (UTC, milliseconds, Z) naming a real moment. */
  public Instant timestamp(String key) throws Refused {
    String s = anyString(key);
    try {
      return Timestamps.parse(s);
    } catch (IllegalArgumentException e) {
      throw refused(key, "is not a timestamp");
    }
  }

  /** A timestamp or {@code null}. */
  public Instant timestampOrNull(String key) throws Refused {
    return object.get(key) == null ? null : timestamp(key);
  }

  private Refused refused(String key, String problem) {
    return new Refused(code, where + "." + key + " " + problem);
  }
}
