package org.mappabroker.envelope.interop;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.Delivery;
import org.mappabroker.envelope.EnvelopeReceiver;
import org.mappabroker.envelope.InMemoryReplayMemory;
import org.mappabroker.envelope.ReceiverSettings;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.VerifiedEnvelope;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.Digests;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.keystore.Keystore;
import org.mappabroker.envelope.receipt.DeliveryReceipts;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * An agency's system on the JVM, as tests/test_java_sdk.py runs it against a Python sender: reads
 * one topic from its beginning, receives each envelope with the library, and answers each one
 * addressed to the agency with a signed delivery receipt on the receipts topic (docs/receipts.md
 * §1-2), then exits.
 *
 * <p>Arguments, each {@code --name value}: {@code bootstrap} (servers), {@code topic} (the area
 * topic to read), {@code agency} (the agency id it receives as), {@code namespace} (the
 * deployment's topic namespace; receipts go to {@code <namespace>.receipts}), {@code suites}
 * (allowed suites, comma-separated), {@code key-root} (the product's keystore root: {@code
 * <data dir>/keys}), {@code directory} (the signed {@code directory.json}), {@code
 * governance-key} (the trust anchor, {@code governance.pub}), {@code agreement} and {@code
 * agreement-version} (the agreement the agency holds), {@code expect} (how many envelopes
 * addressed to it to answer before exiting) and {@code timeout-seconds}. The key passphrase comes
 * from {@code MAPPA_KEY_PASSPHRASE}, or the file named by {@code MAPPA_KEY_PASSPHRASE_FILE}, as
 * for the product, never from the command line.
 *
 * <p>Connecting as an agency's system does to a secured cluster, optionally: {@code
 * security-protocol} ({@code PLAINTEXT}, the default, or {@code SASL_SSL}), and for {@code
 * SASL_SSL} {@code ca-file} (the cluster's CA certificate, PEM), {@code sasl-username} (the
 * agency's SCRAM user, its principal in the directory without {@code User:}) and {@code
 * sasl-mechanism} ({@code SCRAM-SHA-512}, the default, or {@code SCRAM-SHA-256}). The password
 * comes from {@code MAPPA_KAFKA_PASSWORD}, or the file named by {@code MAPPA_KAFKA_PASSWORD_FILE}
 * (the product's own variable), never from the command line. As the product's clients
 * (broker/kafka/security.py): TLS 1.2 or newer, each broker's certificate checked against that CA
 * alone and against the host name the client connects to. {@code unreadable-topic}
 * (optional) names a topic the agency's ACLs must not let it see: the program asks the cluster
 * for it first and says whether the cluster refused.
 *
 * <p>Standard output: one JSON line per record read, holding what became of it and, for a view
 * opened, the view's kind and the SHA-256 of its plaintext (never the plaintext); for a receipt
 * sent, the SHA-256 of the receipt's record value; for {@code unreadable-topic}, a line {@code
 * {"topic": ..., "access": "denied" | "described"}}. Exit status 0 once {@code expect} envelopes
 * were answered, 3 if the timeout came first, 2 for bad arguments or unusable trust or keys.
 */
public final class ReceiveAndReceipt {
  private static final Duration POLL = Duration.ofMillis(100);
  private static final Duration METADATA_WAIT = Duration.ofSeconds(10);
  private static final int EXIT_TIMED_OUT = 3;
  private static final int EXIT_UNUSABLE = 2;
  private static final int GOVERNANCE_KEY_BYTES = 32;

  private final Map<String, String> args;
  private final PrintStream out;

  private ReceiveAndReceipt(Map<String, String> args, PrintStream out) {
    this.args = args;
    this.out = out;
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args;
    try {
      args = arguments(argv);
    } catch (IllegalArgumentException e) {
      System.err.println("usage: " + e.getMessage());
      System.exit(EXIT_UNUSABLE);
      return;
    }
    System.exit(new ReceiveAndReceipt(args, System.out).run());
  }

  /** {@code --name value} pairs; every name this program reads must be there. */
  static Map<String, String> arguments(String[] argv) {
    Map<String, String> found = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value, got " + argv[i]);
      }
      found.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String name :
        List.of(
            "bootstrap", "topic", "agency", "namespace", "suites", "key-root", "directory",
            "governance-key", "agreement", "agreement-version", "expect", "timeout-seconds")) {
      if (!found.containsKey(name)) {
        throw new IllegalArgumentException("--" + name + " is missing");
      }
    }
    return found;
  }

  private int run() throws Exception {
    String agency = args.get("agency");
    String topic = args.get("topic");
    EnvelopeReceiver receiver;
    AgencyKeys keys;
    Properties security;
    try {
      security = ClientSecurity.properties(args);
      TrustDirectory directory =
          TrustDirectory.verify(
              Files.readAllBytes(Path.of(args.get("directory"))),
              governanceKey(Path.of(args.get("governance-key"))));
      keys = Keystore.load(Path.of(args.get("key-root")), agency, passphrase());
      receiver = new EnvelopeReceiver(directory, settings(), keys, new InMemoryReplayMemory());
    } catch (Refused e) {
      System.err.println("cannot start: " + e.code() + ": " + e.getMessage());
      return EXIT_UNUSABLE;
    } catch (IOException e) {
      System.err.println("cannot start: " + e);
      return EXIT_UNUSABLE;
    }
    String receipts = args.get("namespace") + ".receipts";
    int expected = Integer.parseInt(args.get("expect"));
    Instant deadline = Instant.now().plusSeconds(Long.parseLong(args.get("timeout-seconds")));
    int answered = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = consumer(security);
        KafkaProducer<byte[], byte[]> producer = producer(security)) {
      String unreadable = args.get("unreadable-topic");
      if (unreadable != null) {
        byte[] line = Jcs.canonical(access(consumer, unreadable));
        out.println(new String(line, StandardCharsets.UTF_8));
        out.flush();
      }
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo p : consumer.partitionsFor(topic, METADATA_WAIT)) {
        partitions.add(new TopicPartition(topic, p.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      while (answered < expected && Instant.now().isBefore(deadline)) {
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(POLL)) {
          Map<String, Object> line = new LinkedHashMap<>();
          line.put("partition", (long) record.partition());
          line.put("offset", record.offset());
          byte[] receipt = handle(receiver, keys, record, line);
          if (receipt != null) {
            String sender = (String) line.get("sender");
            producer
                .send(
                    new ProducerRecord<>(
                        receipts, sender.getBytes(StandardCharsets.UTF_8), receipt))
                .get();
            line.put("receipt_sha256", Digests.hex(Digests.sha256(receipt)));
            answered++;
          }
          out.println(new String(Jcs.canonical(line), StandardCharsets.UTF_8));
          out.flush();
        }
      }
    }
    return answered >= expected ? 0 : EXIT_TIMED_OUT;
  }

  /**
   * Receive one record, saying in {@code line} what became of it; the receipt to send, or null.
   * A refusal by the library's {@code verify} is answered with no receipt: at steps 1-5 its
   * sender is not known to be who it says (docs/receipts.md §2). A refusal after that is
   * answered with a {@code refused} receipt carrying its code (steps 6 to 10, {@code receive}).
   */
  private byte[] handle(
      EnvelopeReceiver receiver,
      AgencyKeys keys,
      ConsumerRecord<byte[], byte[]> record,
      Map<String, Object> line) {
    String agency = args.get("agency");
    Instant recordTime = Instant.ofEpochMilli(record.timestamp());
    VerifiedEnvelope verified;
    try {
      verified = receiver.verify(record.value(), record.topic(), recordTime, Instant.now());
    } catch (Refused e) {
      line.put("outcome", "refused");
      line.put("code", e.code());
      return null;
    }
    line.put("message_id", verified.messageId());
    line.put("sender", verified.sender());
    line.put("envelope_digest", verified.digestHex());
    if (!verified.addressedTo(agency)) {
      line.put("outcome", "not-addressed");
      return null;
    }
    Instant now = Instant.now();
    try {
      Delivery delivery = receiver.receive(verified, now);
      line.put("outcome", delivery.kind().name().toLowerCase(Locale.ROOT));
      if (delivery.plaintext() != null) {
        line.put("view", delivery.viewKind());
        line.put("plaintext_sha256", Digests.hex(Digests.sha256(delivery.plaintext())));
      }
      return DeliveryReceipts.delivered(verified, record.topic(), now, keys);
    } catch (Refused e) {
      line.put("outcome", "refused");
      line.put("code", e.code());
      return DeliveryReceipts.refused(verified, record.topic(), e.code(), now, keys);
    }
  }

  private ReceiverSettings settings() {
    Set<String> suites = new LinkedHashSet<>(List.of(args.get("suites").split(",")));
    return ReceiverSettings.builder(
            args.get("agency"),
            args.get("agreement"),
            Integer.parseInt(args.get("agreement-version")))
        .allowedSuites(suites)
        .topicNamespace(args.get("namespace"))
        .build();
  }

  /**
   * The raw Ed25519 key of the product's {@code governance.pub}, {@code {"alg", "key_id",
   * "public_key"}}, refused as the product refuses it: another algorithm, or a key id that is
   * not the key's.
   */
  private static byte[] governanceKey(Path file) throws IOException, Refused {
    Map<String, Object> doc =
        StrictJson.parseObject(Files.readAllBytes(file), "schema.integer-range");
    if (!"ed25519".equals(doc.get("alg")) || !(doc.get("public_key") instanceof String text)) {
      throw new Refused("config.invalid", file + " is not an Ed25519 governance key");
    }
    byte[] key = Base64s.strict(text);
    if (key.length != GOVERNANCE_KEY_BYTES
        || !KeyIds.of("ed25519", key).equals(doc.get("key_id"))) {
      throw new Refused("config.invalid", file + " is not an Ed25519 governance key");
    }
    return key;
  }

  /** As the product reads it: {@code MAPPA_KEY_PASSPHRASE}, else the file it names, trimmed. */
  private static byte[] passphrase() throws IOException, Refused {
    String direct = System.getenv("MAPPA_KEY_PASSPHRASE");
    if (direct != null && !direct.isEmpty()) {
      return direct.getBytes(StandardCharsets.UTF_8);
    }
    String file = System.getenv("MAPPA_KEY_PASSPHRASE_FILE");
    if (file != null && !file.isEmpty()) {
      return asciiStripped(Files.readAllBytes(Path.of(file)));
    }
    throw new Refused(
        "key.unavailable",
        "no key passphrase: set MAPPA_KEY_PASSPHRASE or MAPPA_KEY_PASSPHRASE_FILE");
  }

  /** {@code bytes} without leading and trailing ASCII whitespace, as Python's bytes.strip(). */
  private static byte[] asciiStripped(byte[] bytes) {
    int start = 0;
    int end = bytes.length;
    while (start < end && isAsciiSpace(bytes[start])) {
      start++;
    }
    while (end > start && isAsciiSpace(bytes[end - 1])) {
      end--;
    }
    return Arrays.copyOfRange(bytes, start, end);
  }

  private static boolean isAsciiSpace(byte b) {
    return b == ' ' || (b >= '\t' && b <= '\r');
  }

  /**
   * Whether the cluster lets this principal see {@code topic}: {@code denied} when it refuses
   * the topic's metadata (no Describe in its ACLs), {@code described} when it answers.
   */
  private static Map<String, Object> access(KafkaConsumer<byte[], byte[]> consumer, String topic) {
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("topic", topic);
    try {
      consumer.partitionsFor(topic, METADATA_WAIT);
      line.put("access", "described");
    } catch (TopicAuthorizationException e) {
      line.put("access", "denied");
    }
    return line;
  }

  private KafkaConsumer<byte[], byte[]> consumer(Properties security) {
    Properties p = new Properties();
    p.putAll(security);
    p.put("bootstrap.servers", args.get("bootstrap"));
    p.put("enable.auto.commit", "false");
    p.put("client.id", "mappa-interop-" + args.get("agency"));
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  private KafkaProducer<byte[], byte[]> producer(Properties security) {
    Properties p = new Properties();
    p.putAll(security);
    p.put("bootstrap.servers", args.get("bootstrap"));
    p.put("acks", "all");
    p.put("client.id", "mappa-interop-receipts-" + args.get("agency"));
    return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
  }

  /**
   * The kafka-clients security properties an agency's system connects with, from the {@code
   * security-protocol}, {@code ca-file}, {@code sasl-username} and {@code sasl-mechanism}
   * arguments and the password's environment variable; none for {@code PLAINTEXT}.
   */
  static final class ClientSecurity {
    private static final Set<String> MECHANISMS = Set.of("SCRAM-SHA-512", "SCRAM-SHA-256");
    private static final String SCRAM_LOGIN =
        "org.apache.kafka.common.security.scram.ScramLoginModule";

    private ClientSecurity() {}

    static Properties properties(Map<String, String> args) throws Refused {
      String protocol = args.getOrDefault("security-protocol", "PLAINTEXT");
      Properties p = new Properties();
      if (protocol.equals("PLAINTEXT")) {
        return p;
      }
      if (!protocol.equals("SASL_SSL")) {
        throw new Refused(
            "config.invalid", "--security-protocol is PLAINTEXT or SASL_SSL, not " + protocol);
      }
      String ca = args.get("ca-file");
      String user = args.get("sasl-username");
      String mechanism = args.getOrDefault("sasl-mechanism", "SCRAM-SHA-512");
      if (ca == null || user == null) {
        throw new Refused(
            "kafka.security-incomplete", "SASL_SSL needs --ca-file and --sasl-username");
      }
      if (!MECHANISMS.contains(mechanism)) {
        throw new Refused("config.invalid", "--sasl-mechanism is SCRAM-SHA-512 or SCRAM-SHA-256");
      }
      if (!Files.isReadable(Path.of(ca))) {
        throw new Refused("kafka.security-incomplete", "cannot read the CA file " + ca);
      }
      p.put("security.protocol", protocol);
      // The cluster's CA alone, as the product's ssl.create_default_context(cafile=...): not
      // the JVM's default trust store.
      p.put("ssl.truststore.type", "PEM");
      p.put("ssl.truststore.location", ca);
      // Host name checked against the certificate (kafka-clients' default, stated because
      // the product's check_hostname depends on it), and TLS 1.2 at least, as the product.
      p.put("ssl.endpoint.identification.algorithm", "https");
      p.put("ssl.enabled.protocols", "TLSv1.3,TLSv1.2");
      p.put("sasl.mechanism", mechanism);
      p.put(
          "sasl.jaas.config",
          SCRAM_LOGIN
              + " required username=\""
              + jaasQuoted(user)
              + "\" password=\""
              + jaasQuoted(password())
              + "\";");
      return p;
    }

    /**
     * {@code MAPPA_KAFKA_PASSWORD}, for a system given its secret in its environment; else the
     * file named by {@code MAPPA_KAFKA_PASSWORD_FILE}, trimmed, as the product reads it.
     */
    private static String password() throws Refused {
      String direct = System.getenv("MAPPA_KAFKA_PASSWORD");
      if (direct != null && !direct.isEmpty()) {
        return direct;
      }
      String file = System.getenv("MAPPA_KAFKA_PASSWORD_FILE");
      if (file == null || file.isEmpty()) {
        throw new Refused(
            "kafka.security-incomplete",
            "SASL_SSL needs MAPPA_KAFKA_PASSWORD or MAPPA_KAFKA_PASSWORD_FILE");
      }
      try {
        return new String(asciiStripped(Files.readAllBytes(Path.of(file))), StandardCharsets.UTF_8);
      } catch (IOException e) {
        // The file's name only: never its content.
        throw new Refused("kafka.security-incomplete", "cannot read the password file " + file);
      }
    }

    /** {@code value} inside a JAAS double-quoted string: backslash and quote escaped. */
    private static String jaasQuoted(String value) {
      return value.replace("\\", "\\\\").replace("\"", "\\\"");
    }
  }
}
