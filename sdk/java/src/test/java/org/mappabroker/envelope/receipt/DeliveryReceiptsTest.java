package org.mappabroker.envelope.receipt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.InMemoryReplayMemory;
import org.mappabroker.envelope.PrivateKeySeed;
import org.mappabroker.envelope.ReceiverSettings;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.VerifiedEnvelope;
import org.mappabroker.envelope.EnvelopeReceiver;
import org.mappabroker.envelope.json.StrictJson;

/**
 * {@link DeliveryReceipts} rebuilds the receipt vectors exactly: Ed25519 is deterministic, so
 * the vector's fields signed with the vector's seed key give the vector's bytes.
 */
class DeliveryReceiptsTest {
  private static final String PROBATION = "probation.staffordshire";
  private static final String PRISON = "prison.hmp-stafford";
  private static final String TOPIC = "mappa.staffordshire.ra";

  private static ReceiptVectors vectors;

  @BeforeAll
  static void load() throws Refused {
    vectors = new ReceiptVectors();
  }

  private static Map<String, Object> vector(String name) {
    return vectors.vectors("valid").stream()
        .filter(v -> name.equals(v.get("name"))).findFirst().orElseThrow();
  }

  private static AgencyKeys keysOf(String agency) {
    return AgencyKeys.of(
        agency, List.of(new PrivateKeySeed("ed25519", ReceiptVectors.seed(agency, "ed25519"))));
  }

  /** The vector's receipt, field by field. */
  private static DeliveryReceipt fieldsOf(String name) throws Refused {
    Map<String, Object> r = ReceiptVectors.map(StrictJson.parseObject(
        ReceiptVectors.recordValue(vector(name)), "receipt.malformed").get("receipt"));
    return new DeliveryReceipt(
        (String) r.get("message_id"), (String) r.get("envelope_digest"), (String) r.get("sender"),
        (String) r.get("recipient"), (String) r.get("topic"), (String) r.get("outcome"),
        (String) r.get("reason_code"), (String) r.get("time"));
  }

  private static String text(byte[] value) {
    return new String(value, StandardCharsets.UTF_8);
  }

  @Test
  void rebuildsTheDeliveredVectorFromItsFields() throws Refused {
    byte[] value = DeliveryReceipts.sign(fieldsOf("delivered"), keysOf(PROBATION));
    assertEquals(vector("delivered").get("value"), text(value));
  }

  @Test
  void rebuildsTheRefusedVectorFromItsFields() throws Refused {
    byte[] value = DeliveryReceipts.sign(fieldsOf("refused"), keysOf(PRISON));
    assertEquals(vector("refused").get("value"), text(value));
  }

  @Test
  void signsTheDerivedSignedBytes() throws Refused {
    for (String name : List.of("delivered", "refused")) {
      DeliveryReceipt receipt = fieldsOf(name);
      Map<String, Object> derived = ReceiptVectors.map(vector(name).get("derived"));
      assertArrayEquals(
          ((String) derived.get("signed_bytes")).getBytes(StandardCharsets.UTF_8),
          ReceiptSignatures.signedBytes(receipt.kind(), receipt.toJson()), name);
    }
  }

  /** The envelope as the recipient verifies it, then receipted: the vectors' bytes again. */
  @Test
  void receiptsAVerifiedEnvelope() throws Refused {
    byte[] envelope = ((String) ReceiptVectors.map(vectors.file.get("sent")).get("envelope"))
        .getBytes(StandardCharsets.UTF_8);
    Instant recordTime = Instant.parse("2026-11-23T11:59:01Z");
    Instant now = Instant.parse("2026-11-23T12:00:00Z");
    Instant time = Instant.parse("2026-11-23T12:00:00.250999Z"); // written to the millisecond

    VerifiedEnvelope forProbation = receiverOf(PROBATION).verify(envelope, TOPIC, recordTime, now);
    assertEquals(vector("delivered").get("value"),
        text(DeliveryReceipts.delivered(forProbation, TOPIC, time, keysOf(PROBATION))));

    VerifiedEnvelope forPrison = receiverOf(PRISON).verify(envelope, TOPIC, recordTime, now);
    assertEquals(vector("refused").get("value"), text(DeliveryReceipts.refused(
        forPrison, TOPIC, "policy.breach-view-too-rich", time, keysOf(PRISON))));

    // Not addressed to the outsider: it makes no receipt.
    String outsider = "education.staffordshire";
    assertThrows(IllegalArgumentException.class,
        () -> DeliveryReceipts.delivered(forProbation, TOPIC, time, keysOf(outsider)));
  }

  private static EnvelopeReceiver receiverOf(String agency) {
    return new EnvelopeReceiver(
        vectors.directories.get("default"),
        ReceiverSettings.builder(agency, "mappa-default.staffordshire", 1).build(),
        keysOf(agency),
        new InMemoryReplayMemory());
  }

  @Test
  void aReceiptItMakesReadsBackAsAccepted() throws Refused {
    DeliveryReceipt receipt = fieldsOf("delivered");
    byte[] value = DeliveryReceipts.sign(receipt, keysOf(PROBATION));
    ReceiptReader reader = new ReceiptReader(vectors.reader, vectors.directories.get("default"),
        vectors.ledgerKey, vectors.sentMessages());
    assertEquals(receipt, reader.read(value, vectors.recordTime).orElseThrow());
  }

  @Test
  void refusesToSignAMalformedReceipt() throws Refused {
    DeliveryReceipt good = fieldsOf("delivered");
    List<DeliveryReceipt> bad = List.of(
        withOutcome(good, "delivered", "policy.no-agreement"),
        withOutcome(good, "refused", null),
        withOutcome(good, "refused", "Not a code"),
        withOutcome(good, "lost", null),
        new DeliveryReceipt(good.messageId(), good.envelopeDigest().toUpperCase(), good.sender(),
            good.recipient(), good.topic(), good.outcome(), null, good.time()),
        new DeliveryReceipt(good.messageId(), good.envelopeDigest(), good.sender(),
            good.recipient(), good.topic(), good.outcome(), null, "2026-02-30T12:00:00.000Z"));
    for (DeliveryReceipt receipt : bad) {
      assertThrows(IllegalArgumentException.class,
          () -> DeliveryReceipts.sign(receipt, keysOf(PROBATION)), receipt.toString());
    }
  }

  @Test
  void refusesToSignAnotherAgencysReceipt() throws Refused {
    DeliveryReceipt receipt = fieldsOf("delivered");
    assertThrows(IllegalArgumentException.class,
        () -> DeliveryReceipts.sign(receipt, keysOf(PRISON)));
  }

  @Test
  void needsASigningKey() throws Refused {
    DeliveryReceipt receipt = fieldsOf("delivered");
    AgencyKeys none = AgencyKeys.of(PROBATION, List.of());
    assertThrows(IllegalStateException.class, () -> DeliveryReceipts.sign(receipt, none));
  }

  @Test
  void writesTimeToTheMillisecondInUtc() {
    assertEquals("2026-11-23T12:00:00.250Z",
        ReceiptFormat.formatTime(Instant.parse("2026-11-23T12:00:00.250999999Z")));
    assertEquals("0001-01-01T00:00:00.000Z",
        ReceiptFormat.formatTime(Instant.parse("0001-01-01T00:00:00Z")));
    assertThrows(IllegalArgumentException.class,
        () -> ReceiptFormat.formatTime(Instant.parse("+10000-01-01T00:00:00Z")));
    assertTrue(ReceiptFormat.TIME.matcher(ReceiptFormat.formatTime(Instant.EPOCH)).matches());
  }

  private static DeliveryReceipt withOutcome(DeliveryReceipt r, String outcome, String code) {
    return new DeliveryReceipt(r.messageId(), r.envelopeDigest(), r.sender(), r.recipient(),
        r.topic(), outcome, code, r.time());
  }
}
