package org.mappabroker.envelope.receipt;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bouncycastle.crypto.digests.SHAKEDigest;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.Digests;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * tests/vectors/receipt-vectors.json, read as its {@code _about} says: the reader, the record
 * time, the signed directories (checked with the governance key the vectors' seed gives), the
 * ledger's public key, and the one envelope the reader sent, to each of its recipients.
 */
public final class ReceiptVectors {
  /** The seed label of every vector key: {@code SHAKE256(label|owner|alg)}. */
  static final String SEED_LABEL = "mappa-broker envelope test vector seed v1";

  static final String ENVELOPE_PAYLOAD = "application/vnd.mappa.envelope+json; version=1";

  /** Every top-level member the file has; a new one fails the suite rather than be ignored. */
  static final List<String> TOP_LEVEL = List.of(
      "_about", "reader", "record_time", "directories", "governance_key_id", "ledger_public",
      "sent", "valid", "invalid");

  /** Every member a vector may have (see _about); a new one fails the suite. */
  static final List<String> VECTOR_MEMBERS = List.of(
      "name", "value", "append_spaces", "record_time", "directory", "ledger_key", "expect",
      "derived", "base");

  final Map<String, Object> file;
  public final String reader;
  public final Instant recordTime;
  public final Map<String, TrustDirectory> directories = new HashMap<>();
  public final LedgerKey ledgerKey;
  final Map<String, String> sent = new HashMap<>();
  final String sentDigest;

  public ReceiptVectors() throws Refused {
    Path dir = Path.of(System.getProperty("mappa.vectors", "../../tests/vectors"));
    try {
      file = StrictJson.parseObject(
          Files.readAllBytes(dir.resolve("receipt-vectors.json")), "schema.integer-range");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (!new ArrayList<>(file.keySet()).equals(TOP_LEVEL)) {
      throw new IllegalStateException("receipt-vectors.json's members changed: " + file.keySet());
    }
    reader = (String) file.get("reader");
    recordTime = ReceiptFormat.parseTime((String) file.get("record_time"));
    byte[] governance = publicKey(seed("governance", "ed25519"));
    if (!KeyIds.of("ed25519", governance).equals(file.get("governance_key_id"))) {
      throw new IllegalStateException("the governance seed does not give governance_key_id");
    }
    for (Map.Entry<String, Object> d : map(file.get("directories")).entrySet()) {
      directories.put(d.getKey(), TrustDirectory.verify(Jcs.canonical(d.getValue()), governance));
    }
    ledgerKey = LedgerKey.parse(Jcs.canonical(file.get("ledger_public")));
    Map<String, Object> sentBlock = map(file.get("sent"));
    Map<String, Object> envelope = StrictJson.parseObject(
        ((String) sentBlock.get("envelope")).getBytes(StandardCharsets.UTF_8),
        "schema.integer-range");
    sentDigest = envelopeDigest(envelope);
    if (!sentDigest.equals(sentBlock.get("envelope_digest"))) {
      throw new IllegalStateException("the sent envelope's digest is not the file's");
    }
    String messageId = (String) map(envelope.get("header")).get("message_id");
    for (Object r : (List<?>) envelope.get("recipients")) {
      sent.put(messageId + " " + map(r).get("agency"), sentDigest);
    }
  }

  /** What the reader sent: a message id and recipient to the digest it sent them. */
  public SentMessages sentMessages() {
    return (messageId, recipient) -> sent.get(messageId + " " + recipient);
  }

  @SuppressWarnings("unchecked")
  List<Map<String, Object>> vectors(String kind) {
    return (List<Map<String, Object>>) (List<?>) file.get(kind);
  }

  /** docs/receipts.md §2: {@code hex(SHA-256(PAE(type, JCS({header, recipients, views}))))}. */
  static String envelopeDigest(Map<String, Object> envelope) {
    Map<String, Object> signed = new LinkedHashMap<>();
    for (String member : List.of("header", "recipients", "views")) {
      signed.put(member, envelope.get(member));
    }
    return Digests.hex(Digests.sha256(Pae.encode(ENVELOPE_PAYLOAD, Jcs.canonical(signed))));
  }

  /** The record value a vector gives: its text, then {@code append_spaces} spaces. */
  static byte[] recordValue(Map<String, Object> vector) {
    String text = (String) vector.get("value");
    long spaces = vector.containsKey("append_spaces") ? (Long) vector.get("append_spaces") : 0;
    return (text + " ".repeat((int) spaces)).getBytes(StandardCharsets.UTF_8);
  }

  /** A vector key's 32-byte seed: SHAKE256(label|owner|alg). */
  static byte[] seed(String owner, String alg) {
    byte[] in = (SEED_LABEL + "|" + owner + "|" + alg).getBytes(StandardCharsets.UTF_8);
    SHAKEDigest shake = new SHAKEDigest(256);
    shake.update(in, 0, in.length);
    byte[] out = new byte[32];
    shake.doFinal(out, 0, out.length);
    return out;
  }

  static byte[] publicKey(byte[] ed25519Seed) {
    return new Ed25519PrivateKeyParameters(ed25519Seed, 0).generatePublicKey().getEncoded();
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> map(Object value) {
    return (Map<String, Object>) value;
  }
}
