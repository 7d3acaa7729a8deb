package org.mappabroker.envelope;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.mappabroker.envelope.EnvelopeVectorFile.map;
import static org.mappabroker.envelope.EnvelopeVectorFile.str;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.mappabroker.envelope.crypto.Digests;
import org.mappabroker.envelope.crypto.Hkdf;
import org.mappabroker.envelope.crypto.PublicationTree;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * The envelope vectors (tests/vectors/envelope-vectors.json) are the contract: every valid
 * vector reaches, for each receiver of its "expect", exactly that outcome (the view kind with
 * the published plaintext, or not-addressed); every invalid vector reaches exactly its
 * "expect"; and each valid vector's derived values are the ones computed here.
 */
class EnvelopeVectorsTest {
  private static EnvelopeVectorFile file;

  @BeforeAll
  static void load() throws Exception {
    file = EnvelopeVectorFile.load();
  }

  @TestFactory
  Stream<DynamicTest> validVectorsReachTheirOutcomeForEachReceiver() {
    List<DynamicTest> tests = new ArrayList<>();
    for (Map<String, Object> vector : file.vectors("valid")) {
      for (Map.Entry<String, Object> e : map(vector.get("expect")).entrySet()) {
        tests.add(
            DynamicTest.dynamicTest(
                str(vector.get("name")) + " for " + e.getKey(),
                () ->
                    assertEquals(
                        str(e.getValue()),
                        outcome(vector, e.getKey(), null),
                        str(vector.get("name")) + " for " + e.getKey())));
      }
    }
    return tests.stream();
  }

  @TestFactory
  Stream<DynamicTest> invalidVectorsReachTheirExpectedOutcome() {
    Map<String, Map<String, Object>> valid = new LinkedHashMap<>();
    for (Map<String, Object> v : file.vectors("valid")) {
      valid.put(str(v.get("name")), v);
    }
    return file.vectors("invalid").stream()
        .map(
            vector ->
                DynamicTest.dynamicTest(
                    str(vector.get("name")) + " -> " + vector.get("expect"),
                    () ->
                        assertEquals(
                            str(vector.get("expect")),
                            outcome(
                                vector,
                                str(vector.get("receiver")),
                                valid.get(str(vector.get("base")))),
                            str(vector.get("name")))));
  }

  @TestFactory
  Stream<DynamicTest> validVectorsDerivedValuesAreComputedAlike() {
    return file.vectors("valid").stream()
        .map(v -> DynamicTest.dynamicTest(str(v.get("name")), () -> checkDerived(v)));
  }

  /**
   * What {@code agency}'s receiver does with {@code vector}: a view kind (its plaintext being
   * the published one), "not-addressed", "duplicate", or the refusal code.
   */
  private static String outcome(
      Map<String, Object> vector, String agency, Map<String, Object> base) throws Exception {
    Set<String> unknown = new TreeSet<>(vector.keySet());
    unknown.removeAll(EnvelopeVectorFile.VECTOR_MEMBERS);
    assertEquals(Set.of(), unknown, "members this harness does not apply");
    byte[] value = str(vector.get("envelope")).getBytes(StandardCharsets.UTF_8);
    if (vector.containsKey("append_spaces")) {
      int spaces = ((Long) vector.get("append_spaces")).intValue();
      byte[] padded = Arrays.copyOf(value, value.length + spaces);
      Arrays.fill(padded, value.length, padded.length, (byte) ' ');
      value = padded;
    }
    return file.outcome(vector, agency, base, value);
  }

  /** Each derived value of a valid vector, each assertion naming its step of the spec. */
  private static void checkDerived(Map<String, Object> vector) throws Exception {
    Map<String, Object> derived = map(vector.get("derived"));
    Map<String, Object> document =
        StrictJson.parseObject(
            str(vector.get("envelope")).getBytes(StandardCharsets.UTF_8), "schema.integer-range");
    byte[] headerJcs = Jcs.canonical(document.get("header"));
    assertEquals(
        str(derived.get("header_jcs")),
        new String(headerJcs, StandardCharsets.UTF_8),
        "§3.1 JCS(header)");
    byte[] h = Digests.sha256(headerJcs);
    assertEquals(str(derived.get("header_sha256")), Digests.hex(h), "§3.1 header digest");
    byte[] signed = EnvelopeReceiver.signedBytes(document);
    String prefix = str(derived.get("signed_bytes_prefix"));
    assertEquals(
        prefix,
        new String(Arrays.copyOf(signed, prefix.length()), StandardCharsets.UTF_8),
        "§3.5 PAE prefix of signed_bytes");
    assertEquals(
        str(derived.get("signed_bytes_sha256")),
        Digests.hex(Digests.sha256(signed)),
        "§3.5 SHA-256(signed_bytes)");
    Map<String, Object> dataKeys = map(vector.get("data_keys"));
    List<?> views = (List<?>) document.get("views");
    for (Map.Entry<String, Object> e : map(derived.get("views")).entrySet()) {
      Map<String, Object> expected = map(e.getValue());
      Map<String, Object> view =
          views.stream()
              .map(EnvelopeVectorFile::map)
              .filter(v -> String.valueOf(v.get("view_id")).equals(e.getKey()))
              .findFirst()
              .orElseThrow();
      byte[] dataKey = org.bouncycastle.util.encoders.Hex.decode(str(dataKeys.get(e.getKey())));
      Map<String, Object> aad = new LinkedHashMap<>();
      aad.put("context", "mappa-envelope-v1 view");
      aad.put("header_sha256", Digests.hex(h));
      aad.put("kind", view.get("kind"));
      aad.put("view_id", view.get("view_id"));
      assertEquals(
          str(expected.get("aad")),
          new String(Jcs.canonical(aad), StandardCharsets.UTF_8),
          "§3.2 aad of view " + e.getKey());
      assertEquals(
          str(expected.get("view_key")),
          Digests.hex(Hkdf.sha256(dataKey, h, ascii("mappa-envelope-v1 view-key"), 32)),
          "§3.2 view_key of view " + e.getKey());
      assertEquals(
          str(expected.get("key_commitment")),
          Digests.hex(Hkdf.sha256(dataKey, h, ascii("mappa-envelope-v1 key-commitment"), 32)),
          "§3.3 key commitment of view " + e.getKey());
    }
    if (derived.containsKey("publication")) {
      Map<String, Object> expected = map(derived.get("publication"));
      Map<String, Object> proof = map(document.get("publication"));
      byte[] leaf = PublicationTree.leafHash(signed);
      assertEquals(str(expected.get("leaf_hash")), Digests.hex(leaf), "§3.6 leaf hash");
      List<byte[]> path =
          ((List<?>) proof.get("path"))
              .stream().map(p -> java.util.Base64.getDecoder().decode((String) p)).toList();
      long size = (Long) proof.get("size");
      byte[] root = PublicationTree.rootFromPath(leaf, (Long) proof.get("index"), size, path);
      assertEquals(str(expected.get("root")), Digests.hex(root), "§3.6 root from the path");
      assertArrayEquals(
          str(expected.get("signed_root_bytes")).getBytes(StandardCharsets.UTF_8),
          PublicationTree.rootSignedBytes(root, size),
          "§3.6 root_signed_bytes");
    }
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }
}
