package org.mappabroker.envelope.receipt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * What the receipt vectors leave out: routing's edges, the checks' edges, a directory key that
 * is not an Ed25519 key's size, the ledger key file, and what an accepted receipt holds.
 */
class ReceiptReaderTest {
  private static ReceiptVectors vectors;
  private static String delivered;
  private static String ledger;

  @BeforeAll
  static void load() throws Refused {
    vectors = new ReceiptVectors();
    delivered = valueOf("delivered");
    ledger = valueOf("ledger");
  }

  private static String valueOf(String name) {
    return (String) vectors.vectors("valid").stream()
        .filter(v -> name.equals(v.get("name"))).findFirst().orElseThrow().get("value");
  }

  private static ReceiptReader reader(TrustDirectory directory) {
    return new ReceiptReader(vectors.reader, directory, vectors.ledgerKey, vectors.sentMessages());
  }

  /** {@code accepted}, {@code not-addressed} or the refusal code. */
  private static String read(byte[] value) {
    try {
      Optional<Receipt> r =
          reader(vectors.directories.get("default")).read(value, vectors.recordTime);
      return r.isPresent() ? "accepted" : "not-addressed";
    } catch (Refused e) {
      return e.code();
    }
  }

  private static String read(String value) {
    return read(value.getBytes(StandardCharsets.UTF_8));
  }

  private static String replaceOnce(String text, String old, String with) {
    assertEquals(text.indexOf(old), text.lastIndexOf(old), old);
    assertTrue(text.contains(old), old);
    return text.replace(old, with);
  }

  @Test
  void theBaseRecordsAreAccepted() {
    assertEquals("accepted", read(delivered));
    assertEquals("accepted", read(ledger));
  }

  @Test
  void passesOverWhatItCannotRouteToItself() {
    String reader = "\"sender\":\"police.staffordshire\"";
    byte[] notUtf8 = delivered.getBytes(StandardCharsets.UTF_8);
    notUtf8[notUtf8.length - 3] = (byte) 0xFF; // inside the signature's text
    List<String> passedOver = List.of(
        "",
        "[]",
        "{\"receipt\":[]}",
        replaceOnce(delivered, "\"kind\":\"mappa.delivery-receipt\"", "\"kind\":1"),
        replaceOnce(delivered, reader, "\"sender\":null"),
        replaceOnce(delivered, reader, "\"sender\":[\"police.staffordshire\"]"),
        replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":01"),
        replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":1."),
        replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":+1"),
        replaceOnce(delivered, "\"topic\":\"", "\"topic\":\"\t"),
        replaceOnce(delivered, "\"topic\":\"", "\"topic\":\"\\x"),
        delivered + "x",
        // The last of duplicate keys decides routing: here another agency.
        replaceOnce(delivered, reader, reader + ",\"sender\":\"probation.staffordshire\""));
    for (String value : passedOver) {
      assertEquals("not-addressed", read(value), value);
    }
    assertEquals("not-addressed", read(notUtf8));
  }

  @Test
  void passesOverARecordLargerThanTheTopicTakes() {
    String spaces = " ".repeat(ReceiptRouting.MAX_ROUTED_BYTES + 1 - delivered.length());
    assertEquals("not-addressed", read(delivered + spaces));
    assertEquals("receipt.too-large", read(delivered + spaces.substring(1)));
  }

  @Test
  void routesWhatOnlyTheStrictParserRefuses() {
    String reader = "\"sender\":\"police.staffordshire\"";
    // Routing takes the last of duplicate keys, strict JSON refuses the duplicate.
    assertEquals("schema.duplicate-key",
        read(replaceOnce(delivered, reader, "\"sender\":\"x.y\"," + reader)));
    assertEquals("schema.constant",
        read(replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":NaN")));
    assertEquals("schema.constant",
        read(replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":-Infinity")));
    assertEquals("schema.float",
        read(replaceOnce(delivered, "\"receipt_version\":1", "\"receipt_version\":1e0")));
    assertEquals("receipt.malformed",
        read(replaceOnce(delivered, "\"receipt_version\":1",
            "\"receipt_version\":-9007199254740992")));
    String deep = "[".repeat(100) + "]".repeat(100);
    assertEquals("schema.too-deep", read(delivered.substring(0, delivered.length() - 1)
        + ",\"note\":" + deep + "}"));
  }

  @Test
  void passesOverNestingRoutingWillNotParse() {
    int depth = RoutingJson.MAX_DEPTH; // the record is depth 1, the note one deeper
    String deep = "[".repeat(depth) + "]".repeat(depth);
    String value = delivered.substring(0, delivered.length() - 1) + ",\"note\":" + deep + "}";
    assertEquals("not-addressed", read(value));
    String lessDeep = "[".repeat(depth - 1) + "]".repeat(depth - 1);
    assertEquals("schema.too-deep",
        read(delivered.substring(0, delivered.length() - 1) + ",\"note\":" + lessDeep + "}"));
  }

  @Test
  void routingReadsJsonAsPythonDoes() {
    assertEquals(Map.of("a", RoutingJson.NUMBER),
        RoutingJson.parse(" {\"a\" : 1e400 } ".getBytes(StandardCharsets.UTF_8)));
    assertEquals(List.of(RoutingJson.NUMBER, RoutingJson.NUMBER, RoutingJson.NUMBER,
            RoutingJson.NULL, true, false, "\uD800/\u00e9"),
        RoutingJson.parse("[NaN,Infinity,-0.5E-3,null,true,false,\"\\ud800\\/\\u00E9\"]"
            .getBytes(StandardCharsets.UTF_8)));
    byte[] bom = "\uFEFF{}".getBytes(StandardCharsets.UTF_8);
    assertEquals(Map.of(), RoutingJson.parse(bom));
    for (String notJson : List.of("", "{", "{\"a\"}", "{\"a\":1,}", "[1,]", "-", "1.", "tru",
        "\"\\u12\"", "{} {}", "{\"a\":1}}", "nul")) {
      assertNull(RoutingJson.parse(notJson.getBytes(StandardCharsets.UTF_8)), notJson);
    }
    assertNotNull(RoutingJson.parse("\"x\"".getBytes(StandardCharsets.UTF_8)));
  }

  @Test
  void refusesASignatureOfAnotherLength() {
    String sig = delivered.substring(delivered.indexOf("\"signature\":\"") + 13,
        delivered.length() - 2);
    assertEquals("verification.signature-invalid",
        read(replaceOnce(delivered, sig, "AAAA")));
    assertEquals("verification.signature-invalid",
        read(replaceOnce(delivered, sig, "A".repeat(128)))); // 96 bytes
    assertEquals("receipt.malformed", read(replaceOnce(delivered, sig, sig + "AAAA")));
    assertEquals("receipt.malformed", read(replaceOnce(delivered, sig, sig.substring(1))));
    assertEquals("receipt.malformed", read(replaceOnce(delivered, sig, "A".repeat(4416))));
  }

  @Test
  void refusesARecipientKeyThatIsNotAnEd25519KeysSize() throws Refused {
    TrustDirectory directory = directoryWithProbationsSigningKey(key -> {
      byte[] raw = Base64.getDecoder().decode((String) key.get("public_key"));
      key.put("public_key", Base64.getEncoder().encodeToString(Arrays.copyOf(raw, 31)));
    });
    Refused refused = assertThrows(Refused.class, () -> reader(directory)
        .read(delivered.getBytes(StandardCharsets.UTF_8), vectors.recordTime));
    assertEquals("verification.bad-public-key", refused.code());
  }

  /**
   * The bounds of step 4, to the millisecond: revoked when {@code revoked_at <= max(time,
   * record time)}; valid when {@code not_before <= time < not_after}. The delivered vector's
   * time is 12:00:00.250, its record time 12:00:01.000.
   */
  @Test
  void keyTimesAreCheckedToTheirBounds() throws Refused {
    Map<String, String> outcomes = new LinkedHashMap<>();
    outcomes.put("revoked_at=2026-11-23T12:00:01.000Z", "directory.key-revoked");
    outcomes.put("revoked_at=2026-11-23T12:00:01.001Z", "accepted");
    outcomes.put("not_after=2026-11-23T12:00:00.250Z", "directory.key-expired");
    outcomes.put("not_after=2026-11-23T12:00:00.251Z", "accepted");
    outcomes.put("not_before=2026-11-23T12:00:00.250Z", "accepted");
    outcomes.put("not_before=2026-11-23T12:00:00.251Z", "directory.key-expired");
    for (Map.Entry<String, String> c : outcomes.entrySet()) {
      String[] change = c.getKey().split("=");
      TrustDirectory directory =
          directoryWithProbationsSigningKey(key -> key.put(change[0], change[1]));
      String got;
      try {
        reader(directory).read(delivered.getBytes(StandardCharsets.UTF_8), vectors.recordTime);
        got = "accepted";
      } catch (Refused e) {
        got = e.code();
      }
      assertEquals(c.getValue(), got, c.getKey());
    }
  }

  /** The default directory with probation's Ed25519 key entry changed, signed again. */
  private static TrustDirectory directoryWithProbationsSigningKey(
      Consumer<Map<String, Object>> change) throws Refused {
    Map<String, Object> signed =
        copy(ReceiptVectors.map(vectors.file.get("directories")).get("default"));
    Map<String, Object> document = ReceiptVectors.map(signed.get("document"));
    for (Object a : (List<?>) document.get("agencies")) {
      Map<String, Object> agency = ReceiptVectors.map(a);
      if (agency.get("agency_id").equals("probation.staffordshire")) {
        for (Object k : (List<?>) agency.get("keys")) {
          if (ReceiptVectors.map(k).get("alg").equals("ed25519")) {
            change.accept(ReceiptVectors.map(k));
          }
        }
      }
    }
    byte[] governance = ReceiptVectors.seed("governance", "ed25519");
    Ed25519Signer signer = new Ed25519Signer();
    signer.init(true, new Ed25519PrivateKeyParameters(governance, 0));
    byte[] message = Pae.encode(TrustDirectory.PAYLOAD_TYPE, Jcs.canonical(document));
    signer.update(message, 0, message.length);
    ReceiptVectors.map(signed.get("signature"))
        .put("signature", Base64.getEncoder().encodeToString(signer.generateSignature()));
    return TrustDirectory.verify(Jcs.canonical(signed), ReceiptVectors.publicKey(governance));
  }

  @Test
  void refusesAReceiptTimeThatIsNoRealTime() {
    for (String time : List.of("2026-02-29T00:00:00.000Z", "2026-11-23T24:00:00.000Z",
        "2026-11-23T12:60:00.000Z", "2026-11-23T12:00:60.000Z", "0000-01-01T00:00:00.000Z",
        "2026-13-01T00:00:00.000Z", "2026-11-23T12:00:00.000+00:00", "2026-11-23 12:00:00.000Z",
        "\uFF12026-11-23T12:00:00.000Z")) {
      Refused refused = assertThrows(Refused.class, () -> ReceiptFormat.parseTime(time), time);
      assertEquals("receipt.malformed", refused.code());
    }
    assertEquals("receipt.malformed", read(replaceOnce(delivered,
        "2026-11-23T12:00:00.250Z", "2026-04-31T12:00:00.250Z")));
  }

  @Test
  void refusesARecordOfOtherMembers() {
    String keyId = "\"key_id\":\"6333fd921a13c9a7b8ac2af16161ac7b\"";
    for (String value : List.of(
        delivered.substring(0, delivered.length() - 1) + ",\"note\":\"x\"}",
        replaceOnce(delivered, keyId + ",", ""),
        replaceOnce(delivered, keyId, keyId.toUpperCase().replace("KEY_ID", "key_id")),
        replaceOnce(delivered, keyId, "\"key_id\":null"))) {
      assertEquals("receipt.malformed", read(value), value);
    }
  }

  @Test
  void readsRealTimes() throws Refused {
    assertEquals(Instant.parse("2028-02-29T23:59:59.999Z"),
        ReceiptFormat.parseTime("2028-02-29T23:59:59.999Z"));
    assertEquals(Instant.parse("0001-01-01T00:00:00Z"),
        ReceiptFormat.parseTime("0001-01-01T00:00:00.000Z"));
  }

  @Test
  void anAcceptedLedgerReceiptHoldsItsEvents() throws Refused {
    Receipt receipt = reader(vectors.directories.get("default"))
        .read(ledger.getBytes(StandardCharsets.UTF_8), vectors.recordTime).orElseThrow();
    LedgerReceipt l = (LedgerReceipt) receipt;
    assertEquals("police.staffordshire", l.agency());
    assertEquals(List.of("019ab1c0-0000-7000-8000-000000000001",
        "019ab1c0-0000-7000-8000-000000000002"), l.held());
    assertEquals(List.of(new LedgerReceipt.RefusedEvent(
        "019ab1c0-0000-7000-8000-000000000003", "audit.wrong-signer")), l.refused());
    assertEquals(365, l.treeSize());
    Map<String, Object> parsed = StrictJson.parseObject(
        ledger.getBytes(StandardCharsets.UTF_8), "receipt.malformed");
    assertEquals(new String(Jcs.canonical(parsed.get("receipt")), StandardCharsets.UTF_8),
        new String(Jcs.canonical(l.toJson()), StandardCharsets.UTF_8));
  }

  @Test
  void refusesALedgerRefusedEventOfAnotherShape() {
    for (String event : List.of(
        "{\"event_id\":\"019ab1c0-0000-7000-8000-000000000003\"}",
        "{\"event_id\":\"019ab1c0-0000-7000-8000-000000000003\",\"reason_code\":\"a.b\",\"x\":1}",
        "{\"event_id\":\"019AB1C0-0000-7000-8000-000000000003\",\"reason_code\":\"a.b\"}",
        "\"019ab1c0-0000-7000-8000-000000000003\"")) {
      String value = replaceOnce(ledger, "{\"event_id\":\"019ab1c0-0000-7000-8000-000000000003\","
          + "\"reason_code\":\"audit.wrong-signer\"}", event);
      assertEquals("receipt.malformed", read(value), event);
    }
    for (String size : List.of("-1", "\"365\"", "true", "null")) {
      assertEquals("receipt.malformed",
          read(replaceOnce(ledger, "\"tree_size\":365", "\"tree_size\":" + size)), size);
    }
  }

  @Test
  void readsTheLedgerKeyFile() throws Refused {
    Map<String, Object> pub = ReceiptVectors.map(vectors.file.get("ledger_public"));
    LedgerKey key = LedgerKey.parse(Jcs.canonical(pub));
    assertEquals(pub.get("key_id"), key.keyId());
    assertEquals(key.keyId(), KeyIds.of("ed25519", key.publicKey()));
    String id = (String) pub.get("key_id");
    String b64 = (String) pub.get("public_key");
    String shortKey = Base64.getEncoder().encodeToString(new byte[31]);
    for (String bad : List.of(
        "not json",
        "{\"alg\":\"x25519\",\"key_id\":\"" + id + "\",\"public_key\":\"" + b64 + "\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"public_key\":\"" + b64 + "\",\"x\":1}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"public_key\":\"" + b64 + "x\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"public_key\":\"" + shortKey + "\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + "0".repeat(32)
            + "\",\"public_key\":\"" + b64 + "\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"public_key\":\"" + b64 + "\"}"
            + " ".repeat(LedgerKey.MAX_FILE_BYTES))) {
      Refused refused = assertThrows(Refused.class,
          () -> LedgerKey.parse(bad.getBytes(StandardCharsets.UTF_8)), bad);
      assertEquals("config.invalid", refused.code());
    }
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> copy(Object value) {
    return (Map<String, Object>) deepCopy(value);
  }

  private static Object deepCopy(Object value) {
    if (value instanceof Map<?, ?> m) {
      Map<String, Object> out = new LinkedHashMap<>();
      m.forEach((k, v) -> out.put((String) k, deepCopy(v)));
      return out;
    }
    if (value instanceof List<?> l) {
      List<Object> out = new ArrayList<>();
      l.forEach(v -> out.add(deepCopy(v)));
      return out;
    }
    return value;
  }
}
