package org.mappabroker.envelope.receipt;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The forgiving JSON reading that routing needs (docs/receipts.md §5), on bytes nobody has
 * verified: only to find whom a record claims to be for. It is not the strict parser, on
 * purpose: a receipt meant for this agency must reach the strict checks (step 2) to be refused
 * with their code, not be passed over. So, as Python's {@code json.loads} that mappa routes
 * with:
 *
 * <ul>
 *   <li>a UTF-8 byte-order mark is skipped (vector {@code byte-order-mark}: routed, then
 *       {@code schema.encoding});
 *   <li>the last of duplicate keys wins;
 *   <li>no number is read: any integer, however long, a fraction, an exponent, {@code NaN} and
 *       {@code Infinity} are each {@link #NUMBER};
 *   <li>a string may hold a lone surrogate escape;
 *   <li>nesting is allowed to {@link #MAX_DEPTH}, deeper is not parsed.
 * </ul>
 *
 * <p>Anything else that is not RFC 8259 JSON in UTF-8 (a syntax error, text after the value,
 * a control character in a string, bytes that are not UTF-8) gives {@code null}: passed over.
 * JSON {@code null} is {@link #NULL}.
 */
final class RoutingJson {
  /** Stands for every number: routing reads none. */
  static final Object NUMBER = new Object();

  /** JSON {@code null}, to tell it from "not parsed". */
  static final Object NULL = new Object();

  /**
   * Arrays and objects nested deeper than this are passed over unparsed (docs/receipts.md §5):
   * a receipt is 3 deep and the strict parser refuses beyond 12; the bound keeps the recursion
   * well inside a default Java stack.
   */
  static final int MAX_DEPTH = 512;

  private final String text;
  private int pos;

  private RoutingJson(String text) {
    this.text = text;
  }

  /** The value {@code raw} holds, or {@code null} if it is not JSON as above. */
  static Object parse(byte[] raw) {
    int start = raw.length >= 3
            && raw[0] == (byte) 0xEF && raw[1] == (byte) 0xBB && raw[2] == (byte) 0xBF ? 3 : 0;
    String text;
    try {
      text = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw, start, raw.length - start))
          .toString();
    } catch (CharacterCodingException e) {
      return null;
    }
    RoutingJson parser = new RoutingJson(text);
    try {
      Object value = parser.value(1);
      parser.skipWhitespace();
      return parser.pos == text.length() ? value : null;
    } catch (NotJson e) {
      return null;
    }
  }

  /** Thrown inside the parser only; never leaves this class. */
  private static final class NotJson extends Exception {
    private static final long serialVersionUID = 1L;

    NotJson() {
      super(null, null, false, false);
    }
  }

  /** A value whose container, if it is one, is {@code depth} deep (the record's object 1). */
  private Object value(int depth) throws NotJson {
    skipWhitespace();
    if (pos >= text.length()) {
      throw new NotJson();
    }
    char c = text.charAt(pos);
    if ((c == '{' || c == '[') && depth > MAX_DEPTH) {
      throw new NotJson();
    }
    switch (c) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string();
      case 't':
        word("true");
        return Boolean.TRUE;
      case 'f':
        word("false");
        return Boolean.FALSE;
      case 'n':
        word("null");
        return NULL;
      case 'N':
        word("NaN");
        return NUMBER;
      case 'I':
        word("Infinity");
        return NUMBER;
      default:
        if (c == '-' && text.startsWith("-Infinity", pos)) {
          pos += "-Infinity".length();
          return NUMBER;
        }
        number();
        return NUMBER;
    }
  }

  private Map<String, Object> object(int depth) throws NotJson {
    pos++; // '{'
    Map<String, Object> members = new LinkedHashMap<>();
    skipWhitespace();
    if (peek() == '}') {
      pos++;
      return members;
    }
    while (true) {
      skipWhitespace();
      if (peek() != '"') {
        throw new NotJson();
      }
      String key = string();
      skipWhitespace();
      expect(':');
      members.put(key, value(depth + 1)); // the last of duplicate keys wins
      skipWhitespace();
      char c = next();
      if (c == '}') {
        return members;
      }
      if (c != ',') {
        throw new NotJson();
      }
    }
  }

  private List<Object> array(int depth) throws NotJson {
    pos++; // '['
    List<Object> items = new ArrayList<>();
    skipWhitespace();
    if (peek() == ']') {
      pos++;
      return items;
    }
    while (true) {
      items.add(value(depth + 1));
      skipWhitespace();
      char c = next();
      if (c == ']') {
        return items;
      }
      if (c != ',') {
        throw new NotJson();
      }
    }
  }

  private String string() throws NotJson {
    pos++; // '"'
    StringBuilder out = new StringBuilder();
    while (true) {
      char c = next();
      if (c == '"') {
        return out.toString();
      }
      if (c < 0x20) {
        throw new NotJson();
      }
      if (c != '\\') {
        out.append(c);
        continue;
      }
      char e = next();
      switch (e) {
        case '"', '\\', '/' -> out.append(e);
        case 'b' -> out.append('\b');
        case 'f' -> out.append('\f');
        case 'n' -> out.append('\n');
        case 'r' -> out.append('\r');
        case 't' -> out.append('\t');
        case 'u' -> out.append(hex4());
        default -> throw new NotJson();
      }
    }
  }

  private char hex4() throws NotJson {
    if (pos + 4 > text.length()) {
      throw new NotJson();
    }
    int v = 0;
    for (int i = 0; i < 4; i++) {
      int d = Character.digit(text.charAt(pos++), 16);
      if (d < 0) {
        throw new NotJson();
      }
      v = v * 16 + d;
    }
    return (char) v;
  }

  /** RFC 8259's number grammar, scanned and not converted. */
  private void number() throws NotJson {
    if (peek() == '-') {
      pos++;
    }
    if (peek() == '0') {
      pos++;
    } else if (isDigit(peek())) {
      digits();
    } else {
      throw new NotJson();
    }
    if (peek() == '.') {
      pos++;
      if (!isDigit(peek())) {
        throw new NotJson();
      }
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      pos++;
      if (peek() == '+' || peek() == '-') {
        pos++;
      }
      if (!isDigit(peek())) {
        throw new NotJson();
      }
      digits();
    }
  }

  private void digits() {
    while (isDigit(peek())) {
      pos++;
    }
  }

  private static boolean isDigit(char c) {
    return c >= '0' && c <= '9';
  }

  private void word(String word) throws NotJson {
    if (!text.startsWith(word, pos)) {
      throw new NotJson();
    }
    pos += word.length();
  }

  private void expect(char c) throws NotJson {
    if (next() != c) {
      throw new NotJson();
    }
  }

  /** The character at the position, or NUL at the end (which no rule accepts there). */
  private char peek() {
    return pos < text.length() ? text.charAt(pos) : '\0';
  }

  private char next() throws NotJson {
    if (pos >= text.length()) {
      throw new NotJson();
    }
    return text.charAt(pos++);
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
}
