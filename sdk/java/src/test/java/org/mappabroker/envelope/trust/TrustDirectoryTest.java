package org.mappabroker.envelope.trust;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.bouncycastle.crypto.digests.SHAKEDigest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mappabroker.envelope.Governance;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;

/** The signed trust directory's checks, in order (docs/envelope.md §5, directory.py). */
class TrustDirectoryTest {
  private Map<String, Object> vectors;
  private byte[] governanceKey;
  private Governance governance;

  @BeforeEach
  void load() throws Exception {
    Path dir = Path.of(System.getProperty("mappa.vectors", "../../tests/vectors"));
    vectors =
        StrictJson.parseObject(
            Files.readAllBytes(dir.resolve("envelope-vectors.json")), "schema.integer-range");
    governanceKey = Base64.getDecoder().decode((String) vectors.get("governance_public_key"));
    byte[] in =
        "mappa-broker envelope test vector seed v1|governance|ed25519"
            .getBytes(StandardCharsets.UTF_8);
    SHAKEDigest shake = new SHAKEDigest(256);
    shake.update(in, 0, in.length);
    byte[] seed = new byte[32];
    shake.doFinal(seed, 0, 32);
    governance = new Governance(seed);
    assertEquals(vectors.get("governance_key_id"), governance.keyId(), "the governance seed");
  }

  @SuppressWarnings("unchecked")
  private Map<String, Object> signed(String name) {
    return (Map<String, Object>) ((Map<String, Object>) vectors.get("directories")).get(name);
  }

  /** A deep copy of a published directory document. */
  private Map<String, Object> document(String name) throws Refused {
    return StrictJson.parseObject(Jcs.canonical(signed(name).get("document")), "x");
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> agency(Map<String, Object> document, int i) {
    return (Map<String, Object>) ((List<Object>) document.get("agencies")).get(i);
  }

  private String refusal(byte[] signed) {
    return assertThrows(Refused.class, () -> TrustDirectory.verify(signed, governanceKey)).code();
  }

  private String refusalOfResigned(Consumer<Map<String, Object>> change) throws Refused {
    Map<String, Object> doc = document("default");
    change.accept(doc);
    return refusal(governance.sign(doc));
  }

  @Test
  void everyPublishedDirectoryVerifies() throws Refused {
    for (String name : List.of("default", "revoked", "superseded", "pq-hybrid-only", "expired")) {
      TrustDirectory d = TrustDirectory.verify(Jcs.canonical(signed(name)), governanceKey);
      assertTrue(d.agency("police.staffordshire").isPresent(), name);
    }
    TrustDirectory d = TrustDirectory.verify(Jcs.canonical(signed("default")), governanceKey);
    assertEquals(1, d.version());
    assertEquals(Instant.parse("2027-01-01T00:00:00Z"), d.validUntil());
  }

  @Test
  void aDocumentChangedAfterSigningIsRefused() throws Refused {
    Map<String, Object> s = signed("default");
    Map<String, Object> doc = document("default");
    agency(doc, 0).put("status", "suspended");
    byte[] tampered =
        Jcs.canonical(Map.of("document", doc, "signature", s.get("signature")));
    assertEquals("verification.signature-invalid", refusal(tampered));
  }

  @Test
  void aDirectorySignedByAnotherKeyIsTheWrongSigner() throws Refused {
    byte[] other = new Governance(new byte[32]).sign(document("default"));
    assertEquals("directory.wrong-signer", refusal(other));
  }

  @Test
  void anOlderVersionThanOneAcceptedIsARollback() {
    byte[] v1 = Jcs.canonical(signed("default"));
    assertEquals(
        "directory.rollback",
        assertThrows(Refused.class, () -> TrustDirectory.verify(v1, governanceKey, 2)).code());
  }

  @Test
  void malformedDocumentsAreRefusedBeforeTheSignature() throws Refused {
    assertEquals("directory.malformed", refusal("{\"document\":1.5}".getBytes(StandardCharsets.UTF_8)));
    assertEquals("directory.malformed", refusal("[]".getBytes(StandardCharsets.UTF_8)));
    assertEquals("directory.malformed", refusalOfResigned(d -> d.put("extra", 1L)));
    assertEquals("directory.malformed", refusalOfResigned(d -> d.put("version", 0L)));
    assertEquals(
        "directory.malformed",
        refusalOfResigned(d -> d.put("valid_until", d.get("issued_at"))));
    assertEquals(
        "directory.malformed",
        refusalOfResigned(d -> agency(d, 0).put("role", "wizard")));
    assertEquals(
        "directory.malformed",
        refusalOfResigned(d -> agency(d, 1).put("agency_id", agency(d, 0).get("agency_id"))));
    assertEquals(
        "directory.malformed",
        refusalOfResigned(d -> agency(d, 0).put("suites", List.of("classic", "classic"))));
  }

  @Test
  void anUpdateMustBeNewerOrTheSameDocument() throws Refused {
    TrustDirectory v1 = TrustDirectory.verify(Jcs.canonical(signed("default")), governanceKey);
    assertTrue(v1 == v1.update(Jcs.canonical(signed("default")), governanceKey));
    TrustDirectory v2 = v1.update(Jcs.canonical(signed("revoked")), governanceKey);
    assertEquals(2, v2.version());
    assertEquals(
        "directory.rollback",
        assertThrows(
                Refused.class,
                () -> v2.update(Jcs.canonical(signed("default")), governanceKey))
            .code());
    Map<String, Object> other = document("default");
    other.put("issued_at", "2026-11-23T00:00:00.001Z");
    assertEquals(
        "directory.version-conflict",
        assertThrows(Refused.class, () -> v1.update(governance.sign(other), governanceKey))
            .code());
  }

  @Test
  void expiryIsJudgedAtTheGivenClock() throws Refused {
    TrustDirectory d = TrustDirectory.verify(Jcs.canonical(signed("expired")), governanceKey);
    d.checkCurrent(d.validUntil().minusMillis(1));
    assertEquals(
        "directory.expired",
        assertThrows(Refused.class, () -> d.checkCurrent(d.validUntil())).code());
  }
}
