package org.mappabroker.envelope.json;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.regex.Pattern;

/**
 * The product's one timestamp spelling, {@code YYYY-MM-DDTHH:MM:SS.mmmZ} (UTC, exactly three
 * fraction digits), and the moment it names.
 */
public final class Timestamps {
  private static final Pattern SPELLING =
      Pattern.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z");

  private Timestamps() {}

  /**
   * The moment {@code text} names.
   *
   * @throws IllegalArgumentException if it is not in the spelling or names no real moment
   *     (month 13, 30 February, a leap second, year 0)
   */
  public static Instant parse(String text) {
    if (!SPELLING.matcher(text).matches()
        || text.startsWith("0000")
        || text.substring(17, 19).equals("60")) {
      // Year 0 and second 60 are no time in Python's datetime, the reference; Java's
      // ISO_INSTANT would read the second as a leap second.
      throw new IllegalArgumentException("not a timestamp");
    }
    try {
      return Instant.parse(text);
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException("not a timestamp", e);
    }
  }
}
