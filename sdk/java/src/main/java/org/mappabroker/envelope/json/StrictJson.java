package org.mappabroker.envelope.json;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mappabroker.envelope.Refused;

/**
 * The strict JSON parser of docs/envelope.md §2 and docs/receipts.md §1.
 *
 * <p>Refusals, the first failure deciding, in this order:
 *
 * <ol>
 *   <li>not UTF-8, or a byte-order mark first ({@code schema.encoding});
 *   <li>one pass over the text from its start, the first problem met deciding: a syntax error
 *       ({@code schema.not-json}), a number with a fraction or exponent ({@code schema.float}),
 *       an integer beyond ±(2^53−1) (the caller's {@code integerRangeCode}), {@code NaN},
 *       {@code Infinity} or {@code -Infinity} ({@code schema.constant}), a duplicate key
 *       ({@code schema.duplicate-key}), noticed when the object holding it closes;
 *   <li>a top-level value that is not an object ({@code schema.not-object});
 *   <li>a value nested deeper than {@link #MAX_DEPTH} ({@code schema.too-deep});
 *   <li>a string (key or value) holding a lone surrogate ({@code schema.encoding}).
 * </ol>
 *
 * <p>Values: objects are {@link LinkedHashMap} (member order as sent), arrays {@link ArrayList},
 * strings {@link String}, integers {@link Long}, {@code true}/{@code false} {@link Boolean},
 * and JSON {@code null} is Java {@code null} (use {@code containsKey} to tell it from a missing
 * member). The size bound is the caller's check, made before this one.
 *
 * <p>The parser is iterative (an explicit stack), so a deeply nested input costs heap, not
 * Java stack, and reaches the depth check instead of a {@link StackOverflowError}.
 */
public final class StrictJson {
  /** Nesting limit: the top-level object is depth 1, its members' values depth 2, and so on. */
  public static final int MAX_DEPTH = 12;

  /** I-JSON's integer range, RFC 7493 §2.2: the only one every JCS implementation writes alike. */
  public static final long MAX_SAFE_INTEGER = 9_007_199_254_740_991L;

  /** Digits of {@link #MAX_SAFE_INTEGER}: more digits are out of range without converting. */
  private static final int MAX_INTEGER_DIGITS = 16;

  private final String text;
  private final String integerRangeCode;
  private int pos;
  private int deepest;

  private StrictJson(String text, String integerRangeCode) {
    this.text = text;
    this.integerRangeCode = integerRangeCode;
  }

  /**
   * Parse {@code raw} as one JSON object.
   *
   * @param integerRangeCode the refusal code for an integer out of range: envelopes say
   *     {@code schema.integer-range}, receipts {@code receipt.malformed}
   */
  public static Map<String, Object> parseObject(byte[] raw, String integerRangeCode)
      throws Refused {
    String text = decodeUtf8(raw);
    StrictJson parser = new StrictJson(text, integerRangeCode);
    Object value = parser.parseDocument();
    if (!(value instanceof Map)) {
      throw new Refused("schema.not-object", "expected a JSON object");
    }
    if (parser.deepest > MAX_DEPTH) {
      throw new Refused("schema.too-deep", "JSON nested too deeply");
    }
    if (hasLoneSurrogate(value)) {
      throw new Refused("schema.encoding", "a lone surrogate in a string");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> object = (Map<String, Object>) value;
    return object;
  }

  private static String decodeUtf8(byte[] raw) throws Refused {
    if (raw.length >= 3 && (raw[0] & 0xff) == 0xef && (raw[1] & 0xff) == 0xbb
        && (raw[2] & 0xff) == 0xbf) {
      throw new Refused("schema.encoding", "a byte-order mark before the JSON text");
    }
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw))
          .toString();
    } catch (CharacterCodingException e) {
      throw new Refused("schema.encoding", "not UTF-8");
    }
  }

  /** A container being filled: an object (with the key awaiting its value) or an array. */
  private static final class Frame {
    final Map<String, Object> object;
    final List<Object> array;
    final Set<String> duplicateKeys = new HashSet<>();
    String pendingKey;
    boolean duplicate;

    Frame(Map<String, Object> object, List<Object> array) {
      this.object = object;
      this.array = array;
    }
  }

  private Object parseDocument() throws Refused {
    Deque<Frame> stack = new ArrayDeque<>();
    skipWhitespace();
    Object result = null;
    boolean done = false;
    // Each turn reads one value (scalar or container opening) at the current position, then
    // closes every container that ends after it.
    while (!done) {
      Object value;
      boolean opened = false;
      int depth = stack.size() + 1;
      deepest = Math.max(deepest, depth);
      char c = peek();
      if (c == '{' || c == '[') {
        pos++;
        Frame frame =
            c == '{' ? new Frame(new LinkedHashMap<>(), null) : new Frame(null, new ArrayList<>());
        stack.push(frame);
        skipWhitespace();
        if (c == '{') {
          if (peek() == '}') {
            pos++;
            value = closeObject(stack.pop());
          } else {
            readKey(frame);
            continue;
          }
        } else if (peek() == ']') {
          pos++;
          value = stack.pop().array;
        } else {
          opened = true;
          value = null;
        }
        if (opened) {
          continue;
        }
      } else {
        value = readScalar();
      }
      // Place the value, then close what ends after it.
      while (true) {
        if (stack.isEmpty()) {
          result = value;
          done = true;
          break;
        }
        Frame top = stack.peek();
        if (top.object != null) {
          if (top.object.containsKey(top.pendingKey)) {
            top.duplicate = true;
          }
          top.object.put(top.pendingKey, value);
        } else {
          top.array.add(value);
        }
        skipWhitespace();
        char next = peek();
        if (next == ',') {
          pos++;
          skipWhitespace();
          if (top.object != null) {
            readKey(top);
          }
          break;
        }
        if (top.object != null && next == '}') {
          pos++;
          value = closeObject(stack.pop());
        } else if (top.array != null && next == ']') {
          pos++;
          value = stack.pop().array;
        } else {
          throw notJson();
        }
      }
    }
    skipWhitespace();
    if (pos != text.length()) {
      throw notJson();
    }
    return result;
  }

  private static Map<String, Object> closeObject(Frame frame) throws Refused {
    if (frame.duplicate) {
      throw new Refused("schema.duplicate-key", "a key appears twice in one object");
    }
    return frame.object;
  }

  private void readKey(Frame frame) throws Refused {
    if (peek() != '"') {
      throw notJson();
    }
    frame.pendingKey = readString();
    skipWhitespace();
    if (peek() != ':') {
      throw notJson();
    }
    pos++;
    skipWhitespace();
  }

  private Object readScalar() throws Refused {
    char c = peek();
    switch (c) {
      case '"':
        return readString();
      case 't':
        expectWord("true");
        return Boolean.TRUE;
      case 'f':
        expectWord("false");
        return Boolean.FALSE;
      case 'n':
        expectWord("null");
        return null;
      case 'N':
        expectConstant("NaN");
        return null;
      case 'I':
        expectConstant("Infinity");
        return null;
      default:
        if (c == '-' && text.startsWith("-Infinity", pos)) {
          expectConstant("-Infinity");
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
          return readNumber();
        }
        throw notJson();
    }
  }

  private void expectWord(String word) throws Refused {
    if (!text.startsWith(word, pos)) {
      throw notJson();
    }
    pos += word.length();
  }

  private void expectConstant(String word) throws Refused {
    if (!text.startsWith(word, pos)) {
      throw notJson();
    }
    throw new Refused("schema.constant", "JSON constant " + word + " is not allowed");
  }

  /** JSON's number grammar; a fraction or exponent is a float, refused once it is whole. */
  private Long readNumber() throws Refused {
    int start = pos;
    if (peek() == '-') {
      pos++;
    }
    int digitsStart = pos;
    if (peek() == '0') {
      pos++;
    } else if (isDigit(peek())) {
      while (isDigit(peek())) {
        pos++;
      }
    } else {
      throw notJson();
    }
    int digitsEnd = pos;
    boolean isFloat = false;
    if (peek() == '.') {
      if (!isDigit(peekAt(pos + 1))) {
        throw notJson();
      }
      pos++;
      while (isDigit(peek())) {
        pos++;
      }
      isFloat = true;
    }
    if (peek() == 'e' || peek() == 'E') {
      int at = pos + 1;
      if (peekAt(at) == '+' || peekAt(at) == '-') {
        at++;
      }
      if (!isDigit(peekAt(at))) {
        throw notJson();
      }
      pos = at;
      while (isDigit(peek())) {
        pos++;
      }
      isFloat = true;
    }
    if (isFloat) {
      throw new Refused("schema.float", "JSON numbers must be integers");
    }
    String digits = text.substring(digitsStart, digitsEnd);
    if (digits.length() > MAX_INTEGER_DIGITS || Long.parseLong(digits) > MAX_SAFE_INTEGER) {
      throw new Refused(
          integerRangeCode, "JSON integers must be within +-" + MAX_SAFE_INTEGER);
    }
    return Long.parseLong(text.substring(start, digitsEnd));
  }

  private String readString() throws Refused {
    pos++; // the opening quote
    StringBuilder out = new StringBuilder();
    while (true) {
      if (pos >= text.length()) {
        throw notJson();
      }
      char c = text.charAt(pos++);
      if (c == '"') {
        return out.toString();
      }
      if (c < 0x20) {
        throw notJson(); // control characters must be escaped
      }
      if (c != '\\') {
        out.append(c);
        continue;
      }
      if (pos >= text.length()) {
        throw notJson();
      }
      char e = text.charAt(pos++);
      switch (e) {
        case '"' -> out.append('"');
        case '\\' -> out.append('\\');
        case '/' -> out.append('/');
        case 'b' -> out.append('\b');
        case 'f' -> out.append('\f');
        case 'n' -> out.append('\n');
        case 'r' -> out.append('\r');
        case 't' -> out.append('\t');
        case 'u' -> out.append(readHex4());
        default -> throw notJson();
      }
    }
  }

  private char readHex4() throws Refused {
    if (pos + 4 > text.length()) {
      throw notJson();
    }
    int value = 0;
    for (int i = 0; i < 4; i++) {
      int d = Character.digit(text.charAt(pos + i), 16);
      if (d < 0 || text.charAt(pos + i) > 'f') {
        throw notJson();
      }
      value = value * 16 + d;
    }
    pos += 4;
    return (char) value;
  }

  private static boolean hasLoneSurrogate(Object root) {
    Deque<Object> pending = new ArrayDeque<>();
    pending.push(root);
    while (!pending.isEmpty()) {
      Object item = pending.pop();
      if (item instanceof Map<?, ?> map) {
        for (Map.Entry<?, ?> entry : map.entrySet()) {
          pending.push(entry.getKey());
          if (entry.getValue() != null) {
            pending.push(entry.getValue());
          }
        }
      } else if (item instanceof List<?> list) {
        for (Object element : list) {
          if (element != null) {
            pending.push(element);
          }
        }
      } else if (item instanceof String s && isLoneSurrogateIn(s)) {
        return true;
      }
    }
    return false;
  }

  private static boolean isLoneSurrogateIn(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
          i++;
        } else {
          return true;
        }
      } else if (Character.isLowSurrogate(c)) {
        return true;
      }
    }
    return false;
  }

  private void skipWhitespace() {
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        return;
      }
      pos++;
    }
  }

  private char peek() {
    return peekAt(pos);
  }

  private char peekAt(int at) {
    return at < text.length() ? text.charAt(at) : '\0';
  }

  private static boolean isDigit(char c) {
    return c >= '0' && c <= '9';
  }

  private static Refused notJson() {
    return new Refused("schema.not-json", "not a JSON document");
  }
}
