package org.mappabroker.envelope.json;

import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.format.ResolverStyle;
import java.util.regex.Pattern;

/**
 * The product's one timestamp spelling, {@code YYYY-MM-DDTHH:MM:SS.mmmZ} (UTC, exactly three
 * fraction digits), and the moment it names.
 */
public final class Timestamps {
  private static final Pattern SPELLING =
      Pattern.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z");

  private static final DateTimeFormatter MOMENT =
      DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'")
          .withResolverStyle(ResolverStyle.STRICT);

  private Timestamps() {}

  /**
   * The moment {@code text} names.
   *
   * @throws IllegalArgumentException if it is not in the spelling or names no real moment
   *     (month 13, 30 February, hour 24, a leap second, year 0)
   */
  public static Instant parse(String text) {
    if (!SPELLING.matcher(text).matches() || text.startsWith("0000")) {
      // Year 0 is no time in Python's datetime, the reference.
      throw new IllegalArgumentException("not a timestamp");
    }
    try {
      // STRICT: no hour 24 (ISO_INSTANT reads 24:00 as the next midnight), no second 60,
      // no 30 February.
      return LocalDateTime.parse(text, MOMENT).toInstant(ZoneOffset.UTC);
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException("not a timestamp", e);
    }
  }
}
