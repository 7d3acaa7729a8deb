package org.mappabroker.envelope.receipt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;

/**
 * Every valid and invalid vector of tests/vectors/receipt-vectors.json, one test each, read by
 * {@link ReceiptReader} as the file's reader: it must reach exactly the vector's
 * {@code expect} ({@code accepted}, {@code not-addressed} or the refusal code).
 */
class ReceiptVectorsTest {
  private static ReceiptVectors vectors;

  @BeforeAll
  static void load() throws Refused {
    vectors = new ReceiptVectors();
  }

  @TestFactory
  Stream<DynamicTest> valid() {
    return tests("valid");
  }

  @TestFactory
  Stream<DynamicTest> invalid() {
    return tests("invalid");
  }

  @Test
  void theFileHoldsBothKinds() {
    assertFalse(vectors.vectors("valid").isEmpty());
    assertFalse(vectors.vectors("invalid").isEmpty());
    assertTrue(vectors.vectors("valid").stream().allMatch(v -> "accepted".equals(v.get("expect"))));
  }

  /** Each valid vector's derived values: the canonical receipt, the signed bytes, the signer. */
  @TestFactory
  Stream<DynamicTest> derivedValues() {
    return vectors.vectors("valid").stream().map(v -> DynamicTest.dynamicTest(
        (String) v.get("name"), () -> {
          Map<String, Object> derived = ReceiptVectors.map(v.get("derived"));
          Map<String, Object> record =
              StrictJson.parseObject(ReceiptVectors.recordValue(v), "receipt.malformed");
          Map<String, Object> receipt = ReceiptVectors.map(record.get("receipt"));
          String kind = (String) receipt.get("kind");
          assertEquals(derived.get("payload_type"), ReceiptSignatures.payloadType(kind));
          assertEquals(derived.get("receipt_jcs"),
              new String(Jcs.canonical(receipt), StandardCharsets.UTF_8));
          assertArrayEquals(((String) derived.get("signed_bytes")).getBytes(StandardCharsets.UTF_8),
              ReceiptSignatures.signedBytes(kind, receipt));
          byte[] signer = Base64.getDecoder().decode((String) derived.get("signer_public_key"));
          assertEquals(record.get("key_id"), KeyIds.of("ed25519", signer));
        }));
  }

  private Stream<DynamicTest> tests(String kind) {
    List<DynamicTest> tests = new ArrayList<>();
    for (Map<String, Object> vector : vectors.vectors(kind)) {
      String name = (String) vector.get("name");
      tests.add(DynamicTest.dynamicTest(name, () -> {
        assertTrue(ReceiptVectors.VECTOR_MEMBERS.containsAll(vector.keySet()),
            "a vector member this suite does not know: " + vector.keySet());
        assertEquals(vector.get("expect"), outcome(vector), name);
      }));
    }
    return tests.stream();
  }

  /** What the file's reader makes of the vector, as receipts.py's {@code evaluate} does. */
  private static String outcome(Map<String, Object> vector) {
    String directory = (String) vector.getOrDefault("directory", "default");
    boolean ledgerHeld = (Boolean) vector.getOrDefault("ledger_key", Boolean.TRUE);
    ReceiptReader reader = new ReceiptReader(
        vectors.reader,
        vectors.directories.get(directory),
        ledgerHeld ? vectors.ledgerKey : null,
        vectors.sentMessages());
    try {
      Instant recordTime = vector.containsKey("record_time")
          ? ReceiptFormat.parseTime((String) vector.get("record_time"))
          : vectors.recordTime;
      Optional<Receipt> read = reader.read(ReceiptVectors.recordValue(vector), recordTime);
      return read.isPresent() ? "accepted" : "not-addressed";
    } catch (Refused refused) {
      return refused.code();
    }
  }
}
