package org.mappabroker.envelope;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Set;
import java.util.Map;
import org.bouncycastle.crypto.digests.SHAKEDigest;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * tests/vectors/envelope-vectors.json and how its receivers are set up (its "receiver" block
 * and "_about"): keys from published seeds, directories verified with the governance key.
 */
final class EnvelopeVectorFile {
  private static final String SEED_LABEL = "mappa-broker envelope test vector seed v1";

  final Map<String, Object> data;
  final Map<String, Object> receiver;
  final byte[] governanceKey;
  private final Map<String, TrustDirectory> directories = new LinkedHashMap<>();

  private EnvelopeVectorFile(Map<String, Object> data) throws Refused {
    this.data = data;
    this.receiver = map(data.get("receiver"));
    this.governanceKey = java.util.Base64.getDecoder().decode(str(data.get("governance_public_key")));
    for (Map.Entry<String, Object> d : map(data.get("directories")).entrySet()) {
      directories.put(d.getKey(), TrustDirectory.verify(Jcs.canonical(d.getValue()), governanceKey));
    }
  }

  static Path vectorsDir() {
    return Path.of(System.getProperty("mappa.vectors", "../../tests/vectors"));
  }

  static EnvelopeVectorFile load() throws IOException, Refused {
    byte[] raw = Files.readAllBytes(vectorsDir().resolve("envelope-vectors.json"));
    return new EnvelopeVectorFile(StrictJson.parseObject(raw, "schema.integer-range"));
  }

  /** The published seed of {@code owner}'s {@code alg} key: SHAKE256(label|owner|alg). */
  byte[] seed(String owner, String alg) {
    int size = ((Long) map(data.get("seed_bytes")).get(alg)).intValue();
    byte[] in = (SEED_LABEL + "|" + owner + "|" + alg).getBytes(StandardCharsets.UTF_8);
    SHAKEDigest shake = new SHAKEDigest(256);
    shake.update(in, 0, in.length);
    byte[] out = new byte[size];
    shake.doFinal(out, 0, size);
    return out;
  }

  AgencyKeys keysOf(String agency) {
    return AgencyKeys.of(
        agency,
        List.of(
            new PrivateKeySeed("ed25519", seed(agency, "ed25519")),
            new PrivateKeySeed("x25519", seed(agency, "x25519")),
            new PrivateKeySeed("mlkem768-x25519", seed(agency, "mlkem768-x25519"))));
  }

  TrustDirectory directory(String name) {
    return directories.get(name);
  }

  /** The settings of {@code agency}'s receiver, holding the file's agreement at {@code version}. */
  /** The members a vector may have: anything else is a setting this harness would ignore. */
  static final Set<String> VECTOR_MEMBERS =
      Set.of(
          "name", "base", "receiver", "expect", "envelope", "suite", "topic", "record_time",
          "now", "directory", "agreement_version", "allowed_suites", "seen", "append_spaces",
          "data_keys", "derived", "publication");

  ReceiverSettings settings(String agency, long agreementVersion) {
    return settings(Map.of(), agency, agreementVersion);
  }

  ReceiverSettings settings(Map<String, Object> vector, String agency, long agreementVersion) {
    Map<String, Object> agreement = map(data.get("agreement"));
    Object suites =
        vector.containsKey("allowed_suites")
            ? vector.get("allowed_suites")
            : receiver.get("allowed_suites");
    return ReceiverSettings.builder(agency, str(agreement.get("isa_id")), (int) agreementVersion)
        .allowedSuites(new HashSet<>(strings(suites)))
        .topicNamespace(str(receiver.get("topic_namespace")))
        .clockSkew(Duration.ofSeconds((Long) receiver.get("clock_skew_seconds")))
        .replayWindow(Duration.ofSeconds((Long) receiver.get("replay_window_seconds")))
        .build();
  }

  long agreementVersion() {
    return (Long) map(data.get("agreement")).get("isa_version");
  }

  /** The vector's value for {@code key}, else the receiver block's default. */
  String setting(Map<String, Object> vector, String key) {
    return str(vector.containsKey(key) ? vector.get(key) : receiver.get(key));
  }

  Instant time(Map<String, Object> vector, String key) {
    return Instant.parse(setting(vector, key));
  }

  List<Map<String, Object>> vectors(String kind) {
    return ((List<?>) data.get(kind)).stream().map(EnvelopeVectorFile::map).toList();
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> map(Object o) {
    return (Map<String, Object>) o;
  }

  static String str(Object o) {
    return (String) o;
  }

  static List<String> strings(Object o) {
    return ((List<?>) o).stream().map(String.class::cast).toList();
  }
}
