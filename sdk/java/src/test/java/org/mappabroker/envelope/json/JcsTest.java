package org.mappabroker.envelope.json;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.bouncycastle.util.encoders.Hex;
import org.junit.jupiter.api.Test;

/** JCS here equals Python's rfc8785 (the reference implementation's output, pinned below). */
class JcsTest {
  /** Python: json.dumps(d) of the document below (every non-ASCII char escaped). */
  private static final String INPUT =
      "{\"b\": 1, \"a\": [true, false, null, -9007199254740991, 0, 9007199254740991],"
          + " \"\\u00e9\": \"x\", \"\\u20ac\": \"\\u20ac\\u0000\\u001f\\b\\t\\n\\f\\r\\\"\\\\/"
          + "\\u007f\\u2028\\ud83d\\ude00\", \"\\ud83d\\ude00\": 1, \"\\ufb33\": 2, \"aa\": {},"
          + " \"\\u0080\": []}";

  /** Python: rfc8785.dumps(d).hex(): keys in UTF-16 order, U+1F600 before U+FB33. */
  private static final String EXPECTED_HEX =
      "7b2261223a5b747275652c66616c73652c6e756c6c2c2d393030373139393235343734303939312c302c3930"
          + "30373139393235343734303939315d2c226161223a7b7d2c2262223a312c22c280223a5b5d2c22c3a9"
          + "223a2278222c22e282ac223a22e282ac5c75303030305c75303031665c625c745c6e5c665c725c225c"
          + "5c2f7fe280a8f09f9880222c22f09f9880223a312c22efacb3223a327d";

  @Test
  void matchesPythonRfc8785OnEscapesNonAsciiAndKeyOrder() throws Exception {
    Map<String, Object> parsed =
        StrictJson.parseObject(INPUT.getBytes(StandardCharsets.UTF_8), "schema.integer-range");
    assertEquals(EXPECTED_HEX, Hex.toHexString(Jcs.canonical(parsed)));
  }

  @Test
  void writesIntegersPlainAndNestedValues() {
    assertArrayEquals(
        "{\"a\":[1,-2,{\"x\":null}],\"b\":\"\"}".getBytes(StandardCharsets.UTF_8),
        Jcs.canonical(Map.of("b", "", "a", List.of(1L, -2, new java.util.HashMap<>(
            java.util.Collections.singletonMap("x", null))))));
  }

  @Test
  void refusesAnIntegerWithNoCanonicalForm() {
    assertThrows(IllegalArgumentException.class, () -> Jcs.canonical(List.of(1L << 53)));
  }
}
