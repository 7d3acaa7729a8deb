package org.mappabroker.envelope;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.mappabroker.envelope.EnvelopeVectorFile.map;
import static org.mappabroker.envelope.EnvelopeVectorFile.str;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * The receiver's refusals that no published vector reaches, each made to happen here from the
 * vector classic-two-views: a directory re-signed with the vectors' governance key, an
 * envelope re-signed with the sender's published seed, or another receiver setting.
 */
class EnvelopeReceiverTest {
  private static final String SENDER = "police.staffordshire";
  private static final String RECEIVER = "probation.staffordshire";
  private static EnvelopeVectorFile file;
  private static Map<String, Object> base;
  private static Governance governance;

  @BeforeAll
  static void load() throws Exception {
    file = EnvelopeVectorFile.load();
    base = file.vectors("valid").get(0);
    assertEquals("classic-two-views", base.get("name"));
    governance = new Governance(file.seed("governance", "ed25519"));
  }

  private static Instant recordTime() {
    return file.time(base, "record_time");
  }

  private static Instant now() {
    return file.time(base, "now");
  }

  private static byte[] value() {
    return str(base.get("envelope")).getBytes(StandardCharsets.UTF_8);
  }

  private static EnvelopeReceiver receiver(
      TrustDirectory directory, ReceiverSettings settings, AgencyKeys keys) {
    return new EnvelopeReceiver(directory, settings, keys, new InMemoryReplayMemory());
  }

  private static EnvelopeReceiver receiver() {
    return receiver(
        file.directory("default"),
        file.settings(RECEIVER, file.agreementVersion()),
        file.keysOf(RECEIVER));
  }

  private static String refusal(EnvelopeReceiver receiver, byte[] value, String topic) {
    return assertThrows(
            Refused.class, () -> receiver.receive(value, topic, recordTime(), now()))
        .code();
  }

  private static String refusal(EnvelopeReceiver receiver, byte[] value) {
    return refusal(receiver, value, file.setting(base, "topic"));
  }

  private static Map<String, Object> document() throws Refused {
    return StrictJson.parseObject(value(), "schema.integer-range");
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> member(Map<String, Object> m, String key, int i) {
    Object v = m.get(key);
    return (Map<String, Object>) (v instanceof List<?> l ? l.get(i) : v);
  }

  /** The envelope changed by {@code change}, its signature left as it was. */
  private static byte[] changed(Consumer<Map<String, Object>> change) throws Refused {
    Map<String, Object> d = document();
    change.accept(d);
    return Jcs.canonical(d);
  }

  /** The envelope changed by {@code change} and signed again with the sender's key. */
  private static byte[] resigned(Consumer<Map<String, Object>> change) throws Refused {
    Map<String, Object> d = document();
    change.accept(d);
    Ed25519Signer signer = new Ed25519Signer();
    signer.init(true, new Ed25519PrivateKeyParameters(file.seed(SENDER, "ed25519"), 0));
    byte[] message = EnvelopeReceiver.signedBytes(d);
    signer.update(message, 0, message.length);
    member(d, "signatures", 0)
        .put("signature", Base64.getEncoder().encodeToString(signer.generateSignature()));
    return Jcs.canonical(d);
  }

  /** The default directory changed by {@code change}, signed again by governance. */
  private static TrustDirectory directory(Consumer<Map<String, Object>> change) throws Refused {
    Map<String, Object> doc =
        StrictJson.parseObject(
            Jcs.canonical(map(map(file.data.get("directories")).get("default")).get("document")),
            "x");
    change.accept(doc);
    return TrustDirectory.verify(governance.sign(doc), file.governanceKey);
  }

  private static Map<String, Object> policeKey(Map<String, Object> doc) {
    return member(member(doc, "agencies", 0), "keys", 0);
  }

  @Test
  void theReceiversOwnSuiteListDecides() {
    EnvelopeReceiver pqOnly =
        receiver(
            file.directory("default"),
            ReceiverSettings.builder(RECEIVER, "mappa-default.staffordshire", 1)
                .allowedSuites(java.util.Set.of("pq-hybrid"))
                .build(),
            file.keysOf(RECEIVER));
    assertEquals("envelope.suite-not-allowed", refusal(pqOnly, value()));
  }

  @Test
  void aSuspendedSenderIsInactive() throws Refused {
    TrustDirectory d = directory(doc -> member(doc, "agencies", 0).put("status", "suspended"));
    assertEquals(
        "suspended", d.agency(SENDER).orElseThrow().status(), "the first agency is the sender");
    assertEquals(
        "directory.agency-inactive",
        refusal(receiver(d, file.settings(RECEIVER, 1), file.keysOf(RECEIVER)), value()));
  }

  @Test
  void aKeyNotYetValidAtCreatedAtIsExpired() throws Refused {
    TrustDirectory d =
        directory(doc -> policeKey(doc).put("not_before", "2026-11-23T11:59:00.001Z"));
    assertEquals(
        "directory.key-expired",
        refusal(receiver(d, file.settings(RECEIVER, 1), file.keysOf(RECEIVER)), value()));
    TrustDirectory cut =
        directory(doc -> policeKey(doc).put("not_after", "2026-11-23T11:59:00.000Z"));
    assertEquals(
        "directory.key-expired",
        refusal(receiver(cut, file.settings(RECEIVER, 1), file.keysOf(RECEIVER)), value()));
  }

  @Test
  void revocationAtTheAppendTimeCountsThoughCreatedAtIsEarlier() throws Refused {
    // created 11:59:00, appended 11:59:01: revoked at the append time is revoked
    TrustDirectory d =
        directory(doc -> policeKey(doc).put("revoked_at", "2026-11-23T11:59:01.000Z"));
    assertEquals(
        "directory.key-revoked",
        refusal(receiver(d, file.settings(RECEIVER, 1), file.keysOf(RECEIVER)), value()));
    TrustDirectory later =
        directory(doc -> policeKey(doc).put("revoked_at", "2026-11-23T11:59:01.001Z"));
    receiver(later, file.settings(RECEIVER, 1), file.keysOf(RECEIVER))
        .receive(value(), file.setting(base, "topic"), recordTime(), now());
  }

  @Test
  void aSenderKeyOfAnotherAlgorithmThanTheSuitesIsASignatureMissing() throws Refused {
    String mldsaKeyId =
        (String) member(member(rawDirectory(), "agencies", 0), "keys", 1)
            .get("key_id");
    byte[] wrongAlg =
        changed(d -> member(d, "header", 0).put("sender_keys", List.of(mldsaKeyId)));
    assertEquals("envelope.signature-missing", refusal(receiver(), wrongAlg));
  }

  private static Map<String, Object> rawDirectory() {
    Map<String, Object> doc =
        map(map(map(file.data.get("directories")).get("default")).get("document"));
    assertEquals("ml-dsa-65", member(member(doc, "agencies", 0), "keys", 1).get("alg"));
    return doc;
  }

  @Test
  void aPublicKeyOfTheWrongSizeIsRefused() throws Refused {
    TrustDirectory d =
        directory(
            doc -> policeKey(doc).put("public_key", Base64.getEncoder().encodeToString(new byte[31])));
    assertEquals(
        "verification.bad-public-key",
        refusal(receiver(d, file.settings(RECEIVER, 1), file.keysOf(RECEIVER)), value()));
  }

  @Test
  void aWrappedKeyForAKeyNotHeldIsAnUnknownRecipientKey() {
    AgencyKeys onlyHybrid =
        AgencyKeys.of(
            RECEIVER,
            List.of(
                new PrivateKeySeed(
                    "mlkem768-x25519", file.seed(RECEIVER, "mlkem768-x25519"))));
    assertEquals(
        "envelope.unknown-recipient-key",
        refusal(receiver(file.directory("default"), file.settings(RECEIVER, 1), onlyHybrid), value()));
    AgencyKeys anotherAgencysKey =
        AgencyKeys.of(
            RECEIVER,
            List.of(new PrivateKeySeed("x25519", file.seed("prison.hmp-stafford", "x25519"))));
    assertEquals(
        "envelope.unknown-recipient-key",
        refusal(
            receiver(file.directory("default"), file.settings(RECEIVER, 1), anotherAgencysKey),
            value()));
  }

  @Test
  void decryptionFailuresSayNothingMore() throws Refused {
    byte[] tampered =
        resigned(
            d -> {
              Map<String, Object> view = member(d, "views", 0);
              byte[] nonce = Base64.getDecoder().decode((String) view.get("nonce"));
              nonce[0] ^= 1;
              view.put("nonce", Base64.getEncoder().encodeToString(nonce));
            });
    Refused refused =
        assertThrows(
            Refused.class,
            () -> receiver().receive(tampered, file.setting(base, "topic"), recordTime(), now()));
    assertEquals("decryption.failed", refused.code());
    assertEquals("Decryption failed.", refused.getMessage());
  }

  @Test
  void aDeliveryIsRememberedSoItsRedeliveryIsADuplicate() throws Refused {
    EnvelopeReceiver r = receiver();
    String topic = file.setting(base, "topic");
    assertEquals(Delivery.Kind.OPENED, r.receive(value(), topic, recordTime(), now()).kind());
    assertEquals(Delivery.Kind.DUPLICATE, r.receive(value(), topic, recordTime(), now()).kind());
    // another spelling of the same envelope is the same message (§2)
    byte[] spaced = (" " + str(base.get("envelope")) + "\n").getBytes(StandardCharsets.UTF_8);
    assertEquals(Delivery.Kind.DUPLICATE, r.receive(spaced, topic, recordTime(), now()).kind());
  }

  @Test
  void anAreaTopicNeedsAScopeSomeRoleHas() throws Refused {
    byte[] housing =
        resigned(d -> member(d, "header", 0).put("topic", "mappa.staffordshire.dtc.housing"));
    receiver().verify(housing, "mappa.staffordshire.dtc.housing", recordTime(), now());
    // the responsible authority shares one topic: there is no dtc.police
    byte[] police =
        resigned(d -> member(d, "header", 0).put("topic", "mappa.staffordshire.dtc.police"));
    assertEquals(
        "envelope.topic-mismatch", refusal(receiver(), police, "mappa.staffordshire.dtc.police"));
    // the transfer topic is the transfer desk's, not an area's
    byte[] transfer = resigned(d -> member(d, "header", 0).put("topic", "mappa.transfers"));
    assertEquals("envelope.topic-mismatch", refusal(receiver(), transfer, "mappa.transfers"));
    byte[] bogus =
        resigned(d -> member(d, "header", 0).put("topic", "mappa.staffordshire.bogus"));
    assertEquals(
        "envelope.topic-mismatch", refusal(receiver(), bogus, "mappa.staffordshire.bogus"));
    byte[] otherNs = resigned(d -> member(d, "header", 0).put("topic", "staging.staffordshire.ra"));
    assertEquals("envelope.topic-mismatch", refusal(receiver(), otherNs, "staging.staffordshire.ra"));
  }

  @Test
  void lengthsCountCodePointsNotUtf16Units() throws Refused {
    // 200 astral characters are 400 UTF-16 units, and within the 1-200 bound: the envelope
    // gets past step 1 to its signature, which no longer covers it.
    String astral = "\uD83D\uDE00".repeat(200);
    assertEquals(
        "verification.signature-invalid",
        refusal(receiver(), changed(d -> member(d, "header", 0).put("purpose", astral))));
    assertEquals(
        "envelope.malformed",
        refusal(receiver(), changed(d -> member(d, "header", 0).put("purpose", astral + "x"))));
  }

  @Test
  void shapeRefusalsComeAtStepOne() throws Refused {
    List<Consumer<Map<String, Object>>> changes =
        List.of(
            d -> d.put("extra", 1L),
            d -> d.remove("signatures"),
            d -> member(d, "header", 0).remove("supersedes"),
            d -> member(d, "header", 0).put("envelope_version", 2L),
            d -> member(d, "header", 0).put("schema_version", "1"),
            d -> member(d, "header", 0).put("created_at", "2026-02-30T11:59:00.000Z"),
            d -> member(d, "header", 0).put("created_at", "2026-11-23T11:59:60.000Z"),
            d -> member(d, "header", 0).put("message_id", "88D35B01-4A91-5DC4-B613-D824D9D0297E"),
            d -> member(d, "header", 0).put("sender_keys", List.of()),
            d -> member(d, "header", 0).put("classification", "SECRET"),
            d -> member(d, "views", 0).put("nonce", "AAAAAAAAAAA="),
            d -> member(d, "views", 0).put("key_commitment", "AAAA"),
            d -> member(d, "views", 1).put("view_id", 0L),
            d -> member(d, "views", 1).put("kind", "full"),
            d -> member(d, "recipients", 1).put("agency", RECEIVER),
            d -> member(d, "recipients", 1).put("view_id", 2L),
            d -> member(d, "recipients", 0).put("wrapped_key", "A".repeat(1564)),
            d -> member(d, "recipients", 0).put("wrapped_key", "not base64"),
            d -> member(d, "signatures", 0).put("alg", "rsa"),
            d -> member(d, "header", 0).put("subject_ref", "0".repeat(63)));
    for (int i = 0; i < changes.size(); i++) {
      assertEquals("envelope.malformed", refusal(receiver(), changed(changes.get(i))), "change " + i);
    }
  }

  @Test
  void everySingleBitFlipIsRefusedButAnUnusedPaddingBitOfTheSignature() throws Refused {
    byte[] value = value();
    String text = str(base.get("envelope"));
    // The signature's base64 ends "X==": X carries 2 bits of signature and 4 unused bits, so
    // flipping its lowest bit spells the same signature (docs/envelope.md §2: outside the
    // signed bytes and the digest).
    String signature = (String) member(document(), "signatures", 0).get("signature");
    int unusedBitsAt = text.indexOf(signature) + signature.length() - 3;
    String topic = file.setting(base, "topic");
    // Another spelling of the same signature, its unused bits set, is delivered.
    String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int last = alphabet.indexOf(text.charAt(unusedBitsAt));
    byte[] respelt = value.clone();
    respelt[unusedBitsAt] = (byte) alphabet.charAt((last & 0x30) | (~last & 0x0f));
    assertEquals(
        Delivery.Kind.OPENED, receiver().receive(respelt, topic, recordTime(), now()).kind());
    for (int i = 0; i < value.length; i++) {
      byte[] flipped = value.clone();
      flipped[i] ^= 1;
      if (i == unusedBitsAt && sameSignature(signature, flipped[i])) {
        assertEquals(
            Delivery.Kind.OPENED, receiver().receive(flipped, topic, recordTime(), now()).kind());
        continue;
      }
      EnvelopeReceiver r = receiver();
      assertThrows(
          Refused.class, () -> r.receive(flipped, topic, recordTime(), now()), "byte " + i);
    }
  }

  /** Whether {@code signature} with its last data character replaced decodes alike. */
  private static boolean sameSignature(String signature, byte lastChar) {
    String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int before = alphabet.indexOf(signature.charAt(signature.length() - 3));
    int after = alphabet.indexOf((char) lastChar);
    return after >= 0 && (before >> 4) == (after >> 4);
  }

  @Test
  void theSubjectReferenceIsTheVectorsOne() {
    Map<String, Object> ref = map(file.data.get("subject_ref"));
    assertEquals(
        ref.get("subject_ref"),
        SubjectRef.of(
            org.bouncycastle.util.encoders.Hex.decode(str(ref.get("subject_key"))),
            str(ref.get("pnc_id"))));
    assertEquals(
        ref.get("subject_ref"),
        SubjectRef.of(file.seed("deployment", "subject-key"), str(file.data.get("subject_pnc"))));
  }
}
