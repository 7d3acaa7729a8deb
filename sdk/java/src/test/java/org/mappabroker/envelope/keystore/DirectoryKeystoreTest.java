package org.mappabroker.envelope.keystore;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bouncycastle.crypto.digests.SHAKEDigest;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * {@link Keystore#load(Path, TrustDirectory.Agency, Instant, byte[])}: the keys a trust
 * directory entry names, the current signing key chosen as mappa's gateway chooses it. The
 * directories here are made for the test and signed with the vectors' governance seed.
 */
class DirectoryKeystoreTest {
  private static final Instant AT = Instant.parse("2026-11-23T12:00:00Z");
  private static final String FAR = "2099-01-01T00:00:00.000Z";

  private static Path root;
  private static Map<String, Object> expected;
  private static byte[] passphrase;
  private static List<String> twoSigners;

  @BeforeAll
  @SuppressWarnings("unchecked")
  static void fixtures() throws IOException, URISyntaxException, Refused {
    Path base = Path.of(DirectoryKeystoreTest.class.getResource("/keystore").toURI());
    root = base.resolve("root");
    expected = StrictJson.parseObject(Files.readAllBytes(base.resolve("expected.json")), "x");
    passphrase = ((String) expected.get("passphrase")).getBytes(StandardCharsets.UTF_8);
    twoSigners = (List<String>) (List<?>) ((Map<String, Object>) expected.get("two_signers"))
        .get("key_ids");
  }

  @SuppressWarnings("unchecked")
  private static List<Map<String, Object>> probationKeys() {
    return (List<Map<String, Object>>) (List<?>) expected.get("keys");
  }

  private static String idOf(String alg) {
    return (String) probationKeys().stream()
        .filter(k -> alg.equals(k.get("alg"))).findFirst().orElseThrow().get("key_id");
  }

  @Test
  void loadsEveryKeyTheEntryNames() throws Refused {
    List<Map<String, Object>> keys = new ArrayList<>();
    for (Map<String, Object> k : probationKeys()) {
      keys.add(key((String) k.get("alg"), (String) k.get("key_id"), (String) k.get("public_key"),
          "2026-01-01T00:00:00.000Z", null));
    }
    TrustDirectory.Agency entry = entry("probation.test", keys);
    AgencyKeys loaded = Keystore.load(root, entry, AT, passphrase);
    assertEquals(idOf("ed25519"), loaded.signingKeyId());
    assertEquals(Set.of(idOf("x25519"), idOf("mlkem768-x25519")), loaded.decryptionKeyIds());
  }

  @Test
  void choosesTheNewestUsableSigningKey() throws Refused {
    String older = twoSigners.get(0);
    String newer = twoSigners.get(1);
    TrustDirectory.Agency both = entry("two.signers", List.of(
        signer(older, "2026-01-01T00:00:00.000Z", null),
        signer(newer, "2026-06-01T00:00:00.000Z", null)));
    assertEquals(newer, Keystore.load(root, both, AT, passphrase).signingKeyId());

    TrustDirectory.Agency newerRevoked = entry("two.signers", List.of(
        signer(older, "2026-01-01T00:00:00.000Z", null),
        signer(newer, "2026-06-01T00:00:00.000Z", "2026-10-01T00:00:00.000Z")));
    assertEquals(older, Keystore.load(root, newerRevoked, AT, passphrase).signingKeyId());

    TrustDirectory.Agency newerNotYet = entry("two.signers", List.of(
        signer(older, "2026-01-01T00:00:00.000Z", null),
        signer(newer, "2026-12-01T00:00:00.000Z", null)));
    assertEquals(older, Keystore.load(root, newerNotYet, AT, passphrase).signingKeyId());
  }

  @Test
  void refusesAKeyFileThatIsNotTheDirectorysKey() {
    String id = twoSigners.get(0);
    String otherKey = Base64.getEncoder().encodeToString(new byte[32]);
    TrustDirectory.Agency entry = entry("two.signers",
        List.of(key("ed25519", id, otherKey, "2026-01-01T00:00:00.000Z", null)));
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.load(root, entry, AT, passphrase));
    assertEquals("key.unavailable", refused.code());
    assertTrue(refused.getMessage().contains("does not hold the key the trust directory lists"));
  }

  @Test
  void refusesWhenNoListedKeyIsHeld() {
    TrustDirectory.Agency entry = entry("two.signers", List.of(
        key("ed25519", "0".repeat(32), Base64.getEncoder().encodeToString(new byte[32]),
            "2026-01-01T00:00:00.000Z", null)));
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.load(root, entry, AT, passphrase));
    assertEquals("key.unavailable", refused.code());
  }

  // -- a directory made for the test ------------------------------------------------------

  /** The Ed25519 key {@code keyId} of two.signers, its public key read from the keystore. */
  private static Map<String, Object> signer(String keyId, String notBefore, String revokedAt) {
    try {
      UnsealedKey k = Keystore.unsealAll(root, "two.signers", passphrase).stream()
          .filter(u -> u.keyId().equals(keyId)).findFirst().orElseThrow();
      return key("ed25519", keyId, Base64.getEncoder().encodeToString(k.publicKey()), notBefore,
          revokedAt);
    } catch (Refused e) {
      throw new AssertionError(e);
    }
  }

  private static Map<String, Object> key(
      String alg, String keyId, String publicKey, String notBefore, String revokedAt) {
    Map<String, Object> key = new LinkedHashMap<>();
    key.put("key_id", keyId);
    key.put("alg", alg);
    key.put("public_key", publicKey);
    key.put("not_before", notBefore);
    key.put("not_after", FAR);
    key.put("revoked_at", revokedAt);
    key.put("revocation_reason", revokedAt == null ? null : "test");
    return key;
  }

  /** {@code agencyId}'s entry in a directory of one agency, signed and verified. */
  private static TrustDirectory.Agency entry(String agencyId, List<Map<String, Object>> keys) {
    Map<String, Object> agency = new LinkedHashMap<>();
    agency.put("agency_id", agencyId);
    agency.put("name", agencyId);
    agency.put("role", "probation");
    agency.put("areas", List.of("staffordshire"));
    agency.put("kafka_principal", "User:" + agencyId);
    agency.put("status", "active");
    agency.put("suites", List.of("classic", "pq-hybrid"));
    agency.put("keys", keys);
    Map<String, Object> document = new LinkedHashMap<>();
    document.put("kind", "mappa.directory");
    document.put("version", 1L);
    document.put("issued_at", "2026-11-23T00:00:00.000Z");
    document.put("valid_until", "2027-01-01T00:00:00.000Z");
    document.put("agencies", List.of(agency));
    byte[] governance = governanceSeed();
    Ed25519PrivateKeyParameters key = new Ed25519PrivateKeyParameters(governance, 0);
    byte[] governancePublic = key.generatePublicKey().getEncoded();
    Ed25519Signer signer = new Ed25519Signer();
    signer.init(true, key);
    byte[] message = Pae.encode(TrustDirectory.PAYLOAD_TYPE, Jcs.canonical(document));
    signer.update(message, 0, message.length);
    Map<String, Object> signature = new LinkedHashMap<>();
    signature.put("alg", "ed25519");
    signature.put("key_id", KeyIds.of("ed25519", governancePublic));
    signature.put("signature", Base64.getEncoder().encodeToString(signer.generateSignature()));
    Map<String, Object> signed = new LinkedHashMap<>();
    signed.put("document", document);
    signed.put("signature", signature);
    try {
      return TrustDirectory.verify(Jcs.canonical(signed), governancePublic)
          .agency(agencyId).orElseThrow();
    } catch (Refused e) {
      throw new AssertionError(e);
    }
  }

  private static byte[] governanceSeed() {
    byte[] in = "mappa-broker envelope test vector seed v1|governance|ed25519"
        .getBytes(StandardCharsets.UTF_8);
    SHAKEDigest shake = new SHAKEDigest(256);
    shake.update(in, 0, in.length);
    byte[] out = new byte[32];
    shake.doFinal(out, 0, out.length);
    return out;
  }
}
