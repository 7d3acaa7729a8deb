package org.mappabroker.envelope;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bouncycastle.crypto.digests.SHAKEDigest;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * tests/vectors/envelope-vectors.json and how its receivers are set up (its "receiver" block
 * and "_about"): keys from published seeds, directories verified with the governance key.
 */
public final class EnvelopeVectorFile {
  private static final String SEED_LABEL = "mappa-broker envelope test vector seed v1";

  public final Map<String, Object> data;
  public final Map<String, Object> receiver;
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

  public static EnvelopeVectorFile load() throws IOException, Refused {
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

  public AgencyKeys keysOf(String agency) {
    return AgencyKeys.of(
        agency,
        List.of(
            new PrivateKeySeed("ed25519", seed(agency, "ed25519")),
            new PrivateKeySeed("x25519", seed(agency, "x25519")),
            new PrivateKeySeed("mlkem768-x25519", seed(agency, "mlkem768-x25519"))));
  }

  public TrustDirectory directory(String name) {
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

  public ReceiverSettings settings(
      Map<String, Object> vector, String agency, long agreementVersion) {
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

  public long agreementVersion() {
    return (Long) map(data.get("agreement")).get("isa_version");
  }

  /** The vector's value for {@code key}, else the receiver block's default. */
  public String setting(Map<String, Object> vector, String key) {
    return str(vector.containsKey(key) ? vector.get(key) : receiver.get(key));
  }

  public Instant time(Map<String, Object> vector, String key) {
    return Instant.parse(setting(vector, key));
  }

  public List<Map<String, Object>> vectors(String kind) {
    return ((List<?>) data.get(kind)).stream().map(EnvelopeVectorFile::map).toList();
  }

  @SuppressWarnings("unchecked")
  public static Map<String, Object> map(Object o) {
    return (Map<String, Object>) o;
  }

  public static String str(Object o) {
    return (String) o;
  }

  static List<String> strings(Object o) {
    return ((List<?>) o).stream().map(String.class::cast).toList();
  }

  /**
   * What {@code agency}'s receiver does with the record {@code value}, set up as {@code vector}
   * says (its overrides of the receiver block; {@code base}, the valid vector it mutates, taken
   * first where it names "seen"): a view kind whose plaintext is the published one,
   * "not-addressed", "duplicate", "wrong-plaintext", or the refusal code. A fresh receiver and
   * replay memory each time.
   */
  public String outcome(
      Map<String, Object> vector, String agency, Map<String, Object> base, byte[] value)
      throws Refused {
    long agreementVersion =
        vector.containsKey("agreement_version")
            ? (Long) vector.get("agreement_version")
            : agreementVersion();
    ReplayMemory memory = new InMemoryReplayMemory();
    EnvelopeReceiver envelopeReceiver =
        new EnvelopeReceiver(
            directory(setting(vector, "directory")),
            settings(vector, agency, agreementVersion),
            keysOf(agency),
            memory);
    if (vector.containsKey("seen")) {
      // The base was taken first: verified on its own topic and time, remembered under its
      // sender and id with its digest, or under another agency with another digest.
      VerifiedEnvelope earlier =
          envelopeReceiver.verify(
              str(base.get("envelope")).getBytes(StandardCharsets.UTF_8),
              setting(base, "topic"),
              time(base, "record_time"),
              time(base, "now"));
      boolean other = str(vector.get("seen")).equals("other-sender");
      memory.remember(
          other ? str(receiver.get("other_sender")) : earlier.sender(),
          earlier.messageId(),
          other ? "0".repeat(64) : earlier.digestHex());
    }
    Delivery delivery;
    try {
      delivery =
          envelopeReceiver.receive(
              value, setting(vector, "topic"), time(vector, "record_time"), time(vector, "now"));
    } catch (Refused refused) {
      return refused.code();
    }
    return switch (delivery.kind()) {
      case NOT_ADDRESSED -> "not-addressed";
      case DUPLICATE -> "duplicate";
      case OPENED -> {
        Object expected = map(data.get("plaintexts")).get(delivery.viewKind());
        yield expected != null
                && Arrays.equals(
                    str(expected).getBytes(StandardCharsets.UTF_8), delivery.plaintext())
            ? delivery.viewKind()
            : "wrong-plaintext";
      }
    };
  }
}
