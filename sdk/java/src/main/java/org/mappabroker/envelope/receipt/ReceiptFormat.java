package org.mappabroker.envelope.receipt;

import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.temporal.ChronoUnit;
import java.util.Locale;
import java.util.regex.Pattern;
import org.mappabroker.envelope.Refused;

/**
 * The constants of docs/receipts.md: kinds, payload types, limits, and the patterns of §2-§4.
 * Every pattern matches the whole text ({@link java.util.regex.Matcher#matches()}): no final
 * newline slips past a {@code $}.
 */
final class ReceiptFormat {
  static final String DELIVERY_KIND = "mappa.delivery-receipt";
  static final String LEDGER_KIND = "mappa.ledger-receipt";
  static final String DELIVERY_PAYLOAD = "application/vnd.mappa.delivery-receipt+json; version=1";
  static final String LEDGER_PAYLOAD = "application/vnd.mappa.ledger-receipt+json; version=1";
  static final String DELIVERED = "delivered";
  static final String REFUSED = "refused";
  static final String MALFORMED = "receipt.malformed";

  /** §7: a ledger receipt at its other limits is about 172 kB written compactly. */
  static final int MAX_RECEIPT_BYTES = 262_144;

  /** §7: one fetched batch of the audit topic (500 records) fits. */
  static final int MAX_EVENTS = 1000;

  /** §7: the largest signature any document of ours carries, 3,309 bytes, in base64. */
  static final int MAX_SIGNATURE_CHARS = 4412;

  /** §7: a reason code's length, so that a ledger receipt's size is known in advance. */
  static final int MAX_CODE_CHARS = 64;

  /** §3: the largest integer RFC 8785 writes exactly (2^53 − 1). */
  static final long MAX_TREE_SIZE = 9_007_199_254_740_991L;

  static final Pattern UUID =
      Pattern.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  static final Pattern DIGEST = Pattern.compile("[0-9a-f]{64}");
  static final Pattern AGENCY = Pattern.compile("[a-z][a-z0-9-]{1,31}\\.[a-z0-9][a-z0-9-]{0,62}");
  static final Pattern TOPIC = Pattern.compile("[a-z][a-z0-9-]{0,30}\\.[a-z0-9.-]{1,120}");
  static final Pattern CODE = Pattern.compile("[a-z][a-z0-9-]*(\\.[a-z0-9-]+)*");
  static final Pattern TIME = Pattern.compile(
      "([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\\.([0-9]{3})Z");
  static final Pattern KEY_ID = Pattern.compile("[0-9a-f]{32}");
  static final Pattern BASE64 =
      Pattern.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?");

  private ReceiptFormat() {}

  static boolean matches(Pattern pattern, Object value) {
    return value instanceof String s && pattern.matcher(s).matches();
  }

  static boolean isCode(Object value) {
    return matches(CODE, value) && ((String) value).length() <= MAX_CODE_CHARS;
  }

  /**
   * The moment a §2 timestamp names; {@code receipt.malformed} unless it is spelt
   * {@code YYYY-MM-DDTHH:MM:SS.mmmZ} and is a real time (years 0001-9999, as Python's
   * {@code datetime}; no {@code 2026-02-30}, no second 60).
   */
  static Instant parseTime(String text) throws Refused {
    var m = TIME.matcher(text);
    if (!m.matches()) {
      throw new Refused(MALFORMED, "a receipt time not spelt YYYY-MM-DDTHH:MM:SS.mmmZ");
    }
    int year = Integer.parseInt(m.group(1));
    try {
      if (year < 1) {
        throw new DateTimeException("year 0");
      }
      return LocalDateTime.of(
              year,
              Integer.parseInt(m.group(2)),
              Integer.parseInt(m.group(3)),
              Integer.parseInt(m.group(4)),
              Integer.parseInt(m.group(5)),
              Integer.parseInt(m.group(6)),
              Integer.parseInt(m.group(7)) * 1_000_000)
          .toInstant(ZoneOffset.UTC);
    } catch (DateTimeException e) {
      throw new Refused(MALFORMED, "a receipt time that is not a real time");
    }
  }

  /** {@code time} as §2 writes it, to the millisecond (truncated), in UTC. */
  static String formatTime(Instant time) {
    LocalDateTime t = LocalDateTime.ofInstant(time.truncatedTo(ChronoUnit.MILLIS), ZoneOffset.UTC);
    if (t.getYear() < 1 || t.getYear() > 9999) {
      throw new IllegalArgumentException("a receipt time must fall in the years 0001-9999");
    }
    return String.format(
        Locale.ROOT,
        "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
        t.getYear(),
        t.getMonthValue(),
        t.getDayOfMonth(),
        t.getHour(),
        t.getMinute(),
        t.getSecond(),
        t.getNano() / 1_000_000);
  }
}
