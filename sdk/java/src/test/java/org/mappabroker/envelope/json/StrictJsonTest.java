package org.mappabroker.envelope.json;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.mappabroker.envelope.Refused;

/** Each refusal of the strict parser, and the order in which they decide (docs/envelope.md §2). */
class StrictJsonTest {
  private static Map<String, Object> parse(String text) throws Refused {
    return StrictJson.parseObject(text.getBytes(StandardCharsets.UTF_8), "schema.integer-range");
  }

  private static String refusal(String text) {
    return assertThrows(Refused.class, () -> parse(text)).code();
  }

  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(
      delimiter = '|',
      value = {
        "{\"a\":1,\"a\":2}|schema.duplicate-key",
        "{\"a\":1.5}|schema.float",
        "{\"a\":1e3}|schema.float",
        "{\"a\":-0E-1}|schema.float",
        "{\"a\":NaN}|schema.constant",
        "{\"a\":Infinity}|schema.constant",
        "{\"a\":-Infinity}|schema.constant",
        "{\"a\":9007199254740992}|schema.integer-range",
        "{\"a\":-9007199254740992}|schema.integer-range",
        "{\"a\":00000000000000000000000001}|schema.not-json",
        "{\"a\":123456789012345678901234567890}|schema.integer-range",
        "{\"a\":01}|schema.not-json",
        "{\"a\":1.}|schema.not-json",
        "{\"a\":.5}|schema.not-json",
        "{\"a\":+1}|schema.not-json",
        "{\"a\":tru}|schema.not-json",
        "{\"a\":1,}|schema.not-json",
        "{\"a\" 1}|schema.not-json",
        "{\"a\":\"\\x\"}|schema.not-json",
        "{\"a\":\"\\u12g4\"}|schema.not-json",
        "{'a':1}|schema.not-json",
        "{\"a\":1} x|schema.not-json",
        "[1,2]|schema.not-object",
        "\"text\"|schema.not-object",
        "|schema.not-json",
        "{\"a\":\"\\ud800\"}|schema.encoding",
        "{\"\\udc00\":1}|schema.encoding",
        "{\"a\":\"\\ud83d\\u0041\"}|schema.encoding",
      })
  void refuses(String text, String code) {
    assertEquals(code, refusal(text == null ? "" : text));
  }

  @Test
  void aFloatInsideTheObjectWithTheDuplicateComesFirst() {
    // vector float-before-its-object-closes: the duplicate is noticed when its object closes
    assertEquals("schema.float", refusal("{\"a\":1,\"a\":{\"b\":1.5}}"));
    assertEquals("schema.float", refusal("{\"a\":1,\"a\":2,\"c\":1.5}"));
  }

  @Test
  void aDuplicateInAnObjectClosedEarlierComesBeforeALaterFloat() {
    // vector duplicate-key-in-an-earlier-object
    assertEquals("schema.duplicate-key", refusal("{\"x\":{\"a\":1,\"a\":2},\"y\":1.5}"));
  }

  @Test
  void theFirstProblemInTheTextDecides() {
    assertEquals("schema.float", refusal("{\"a\":1.5,\"b\":NaN}"));
    assertEquals("schema.constant", refusal("{\"a\":NaN,\"b\":1.5}"));
    assertEquals("schema.integer-range", refusal("{\"a\":99999999999999999,\"b\":1.5"));
    assertEquals("schema.float", refusal("{\"a\":1.5,"));
    assertEquals("schema.not-json", refusal("{\"a\":[1 2],\"b\":1.5}"));
  }

  @Test
  void notObjectComesBeforeDepthAndDepthBeforeSurrogates() {
    assertEquals("schema.not-object", refusal("[[[[[[[[[[[[[[\"\\ud800\"]]]]]]]]]]]]]]"));
    assertEquals(
        "schema.too-deep", refusal("{\"a\":[[[[[[[[[[[\"\\ud800\"]]]]]]]]]]]}"));
  }

  @Test
  void depthCountsTheTopObjectAsOneAndScalarsToo() throws Refused {
    // 11 containers inside the top object: a scalar in the innermost is at depth 13.
    assertEquals("schema.too-deep", refusal("{\"a\":[[[[[[[[[[[1]]]]]]]]]]]}"));
    assertEquals("schema.too-deep", refusal("{\"a\":[[[[[[[[[[[[]]]]]]]]]]]]}"));
    parse("{\"a\":[[[[[[[[[[1]]]]]]]]]]}");
    parse("{\"a\":[[[[[[[[[[[]]]]]]]]]]]}");
  }

  @Test
  void aVeryDeepDocumentIsRefusedWithoutOverflowingTheStack() {
    String deep = "{\"a\":" + "[".repeat(200_000) + "]".repeat(200_000) + "}";
    assertEquals("schema.too-deep", refusal(deep));
  }

  @Test
  void encodingIsCheckedBeforeSyntax() {
    byte[] bom = {(byte) 0xef, (byte) 0xbb, (byte) 0xbf, '{', '}'};
    assertEquals(
        "schema.encoding",
        assertThrows(Refused.class, () -> StrictJson.parseObject(bom, "x")).code());
    byte[] latin1 = {'{', '"', (byte) 0xe9, '"', ':', '1', ','};
    assertEquals(
        "schema.encoding",
        assertThrows(Refused.class, () -> StrictJson.parseObject(latin1, "x")).code());
  }

  @Test
  void theIntegerRangeCodeIsTheCallers() {
    byte[] raw = "{\"a\":9007199254740992}".getBytes(StandardCharsets.UTF_8);
    assertEquals(
        "receipt.malformed",
        assertThrows(Refused.class, () -> StrictJson.parseObject(raw, "receipt.malformed"))
            .code());
  }

  @Test
  void rawControlCharactersInStringsAreNotJson() {
    assertEquals("schema.not-json", refusal("{\"a\":\"line\nbreak\"}"));
  }

  @Test
  void givesTheDocumentedValueTypes() throws Refused {
    Map<String, Object> v =
        parse(" {\"s\":\"\\u00e9\\ud83d\\ude00\",\"n\":-9007199254740991,\"t\":true,"
            + "\"z\":null,\"l\":[1,{}]}\r\n");
    assertEquals("é😀", v.get("s"));
    assertEquals(-9_007_199_254_740_991L, v.get("n"));
    assertEquals(Boolean.TRUE, v.get("t"));
    assertTrue(v.containsKey("z"));
    assertNull(v.get("z"));
    assertEquals(List.of(1L, Map.of()), v.get("l"));
    assertEquals(List.of("s", "n", "t", "z", "l"), List.copyOf(v.keySet()));
  }
}
