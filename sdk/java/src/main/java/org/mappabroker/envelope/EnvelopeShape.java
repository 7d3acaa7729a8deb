package org.mappabroker.envelope;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.PublicationTree;
import org.mappabroker.envelope.json.Fields;
import org.mappabroker.envelope.json.StrictJson;

/**
 * Step 1 of docs/envelope.md §4: the size, the strict parse and the shape of §2.1-2.3.
 *
 * <p>Refusals, in order: {@code envelope.too-large}; the strict parser's ({@code schema.*},
 * see {@link StrictJson}); then every field missing, unknown, of the wrong type or out of
 * bounds, a view id or kind twice, an agency addressed twice, a wrapped key for a missing view,
 * and a {@code publication} out of bounds or with a path of the wrong length
 * ({@code envelope.malformed}).
 */
final class EnvelopeShape {
  /** Kafka's default {@code max.message.bytes}: an envelope must fit one record. */
  static final int MAX_ENVELOPE_BYTES = 1_048_576;

  /** One view per kind. */
  private static final int MAX_VIEWS = 3;

  /** Every agency of an area plus the co-ordination unit, with a wide margin. */
  private static final int MAX_RECIPIENTS = 128;

  /** One canonical message per view: 512 KiB, and the GCM tag. */
  private static final int MAX_CIPHERTEXT_BYTES = 524_288 + 16;

  /** The hybrid suite's wrapped key: 1120 (encapsulation) + 32 (data key) + 16 (tag). */
  private static final int MAX_WRAPPED_KEY_BYTES = 1168;

  /** ML-DSA-65's signature, the largest. */
  private static final int MAX_SIGNATURE_BYTES = 3309;

  private static final int NONCE_BYTES = 12;
  private static final int COMMITMENT_BYTES = 32;
  private static final int SHORT_TEXT = 200;

  private static final String MALFORMED = "envelope.malformed";

  private static final Pattern SUITE = Pattern.compile("[a-z0-9-]{1,32}");
  private static final Pattern UUID =
      Pattern.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  private static final Pattern AGENCY_ID =
      Pattern.compile("[a-z][a-z0-9-]{1,31}\\.[a-z0-9][a-z0-9-]{0,62}");
  private static final Pattern KEY_ID = Pattern.compile("[0-9a-f]{32}");
  private static final Pattern AREA = Pattern.compile("[a-z][a-z-]{1,40}[a-z]");
  private static final Pattern TOPIC = Pattern.compile("[a-z][a-z0-9-]{0,30}\\.[a-z0-9.-]{1,120}");
  private static final Pattern MESSAGE_TYPE = Pattern.compile("[a-z][a-z-]{1,48}[a-z]");
  private static final Pattern SUBJECT_REF = Pattern.compile("[0-9a-f]{64}");
  /** A SHA-256 hash in canonical base64: the two padding bits zero. */
  private static final Pattern B64_HASH =
      Pattern.compile("[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=");

  private static final Set<String> HEADER_FIELDS =
      Set.of(
          "envelope_version", "suite", "message_id", "created_at", "sender", "sender_keys",
          "area", "topic", "message_type", "schema_version", "subject_ref", "isa_id",
          "isa_version", "purpose", "lawful_basis", "classification", "supersedes");

  private EnvelopeShape() {}

  static UnverifiedEnvelope parse(byte[] value) throws Refused {
    if (value.length > MAX_ENVELOPE_BYTES) {
      throw new Refused(
          "envelope.too-large",
          "record of " + value.length + " bytes exceeds the " + MAX_ENVELOPE_BYTES
              + "-byte envelope limit");
    }
    Map<String, Object> document = StrictJson.parseObject(value, "schema.integer-range");
    Fields top =
        Fields.of(
            document,
            MALFORMED,
            "envelope",
            Set.of("header", "views", "recipients", "signatures"),
            Set.of("publication"));

    Fields h = Fields.of(top.raw("header"), MALFORMED, "header", HEADER_FIELDS, Set.of());
    h.integer("envelope_version", 1, 1);
    String suite = h.string("suite", SUITE);
    String messageId = h.string("message_id", UUID);
    Instant createdAt = h.timestamp("created_at");
    String sender = h.string("sender", AGENCY_ID);
    List<String> senderKeys = new ArrayList<>();
    for (Object k : h.array("sender_keys", 1, 2)) {
      if (!(k instanceof String s) || !KEY_ID.matcher(s).matches()) {
        throw new Refused(MALFORMED, "header.sender_keys holds an invalid key id");
      }
      senderKeys.add(s);
    }
    String area = h.string("area", AREA);
    String topic = h.string("topic", TOPIC);
    h.string("message_type", MESSAGE_TYPE);
    h.integer("schema_version", 1, 1000);
    h.string("subject_ref", SUBJECT_REF);
    String isaId = h.text("isa_id", 1, SHORT_TEXT);
    long isaVersion = h.integer("isa_version", 1, StrictJson.MAX_SAFE_INTEGER);
    h.text("purpose", 1, SHORT_TEXT);
    h.text("lawful_basis", 1, SHORT_TEXT);
    h.oneOf("classification", Set.of("OFFICIAL", "OFFICIAL-SENSITIVE"));
    h.stringOrNull("supersedes", UUID);

    List<UnverifiedEnvelope.View> views = new ArrayList<>();
    for (Object v : top.array("views", 1, MAX_VIEWS)) {
      views.add(view(v));
    }
    Set<Long> viewIds = new HashSet<>();
    Set<String> kinds = new HashSet<>();
    for (UnverifiedEnvelope.View v : views) {
      if (!viewIds.add(v.viewId()) || !kinds.add(v.kind())) {
        throw new Refused(MALFORMED, "a view id or kind appears twice");
      }
    }
    List<UnverifiedEnvelope.Recipient> recipients = new ArrayList<>();
    Set<String> agencies = new HashSet<>();
    for (Object r : top.array("recipients", 1, MAX_RECIPIENTS)) {
      UnverifiedEnvelope.Recipient recipient = recipient(r);
      if (!agencies.add(recipient.agency())) {
        throw new Refused(MALFORMED, "an agency is addressed twice");
      }
      if (!viewIds.contains(recipient.viewId())) {
        throw new Refused(MALFORMED, "a wrapped key for a view that is not there");
      }
      recipients.add(recipient);
    }
    List<UnverifiedEnvelope.SignatureEntry> signatures = new ArrayList<>();
    for (Object s : top.array("signatures", 1, 2)) {
      signatures.add(signature(s));
    }
    UnverifiedEnvelope.Publication publication =
        top.has("publication") ? publication(top.raw("publication")) : null;
    @SuppressWarnings("unchecked")
    Map<String, Object> header = (Map<String, Object>) top.raw("header");
    return new UnverifiedEnvelope(
        document, header, suite, sender, messageId, createdAt, List.copyOf(senderKeys), topic,
        area, isaId, isaVersion, List.copyOf(views), List.copyOf(recipients),
        List.copyOf(signatures), publication);
  }

  private static UnverifiedEnvelope.View view(Object value) throws Refused {
    Fields v =
        Fields.of(
            value,
            MALFORMED,
            "view",
            Set.of("view_id", "kind", "nonce", "key_commitment", "ciphertext"),
            Set.of());
    long viewId = v.integer("view_id", 0, MAX_VIEWS - 1);
    String kind = v.oneOf("kind", Set.of("full", "redacted", "summary"));
    byte[] nonce = bytes(v, "nonce", NONCE_BYTES, NONCE_BYTES);
    byte[] commitment = bytes(v, "key_commitment", COMMITMENT_BYTES, COMMITMENT_BYTES);
    byte[] ciphertext = bytes(v, "ciphertext", 0, MAX_CIPHERTEXT_BYTES);
    return new UnverifiedEnvelope.View(viewId, kind, nonce, commitment, ciphertext);
  }

  private static UnverifiedEnvelope.Recipient recipient(Object value) throws Refused {
    Fields r =
        Fields.of(
            value,
            MALFORMED,
            "recipient",
            Set.of("agency", "key_id", "view_id", "wrapped_key"),
            Set.of());
    String agency = r.string("agency", AGENCY_ID);
    String keyId = r.string("key_id", KEY_ID);
    long viewId = r.integer("view_id", 0, MAX_VIEWS - 1);
    // Only the maximum here: the suite's exact length is step 10's check (decryption.failed).
    byte[] wrapped = bytes(r, "wrapped_key", 0, MAX_WRAPPED_KEY_BYTES);
    return new UnverifiedEnvelope.Recipient(agency, keyId, viewId, wrapped);
  }

  private static UnverifiedEnvelope.SignatureEntry signature(Object value) throws Refused {
    Fields s =
        Fields.of(value, MALFORMED, "signature", Set.of("alg", "key_id", "signature"), Set.of());
    String alg = s.oneOf("alg", Set.of("ed25519", "ml-dsa-65"));
    String keyId = s.string("key_id", KEY_ID);
    byte[] signature = bytes(s, "signature", 0, MAX_SIGNATURE_BYTES);
    return new UnverifiedEnvelope.SignatureEntry(alg, keyId, signature);
  }

  private static UnverifiedEnvelope.Publication publication(Object value) throws Refused {
    Fields p =
        Fields.of(value, MALFORMED, "publication", Set.of("index", "size", "path"), Set.of());
    long size = p.integer("size", 2, PublicationTree.MAX_SIZE);
    long index = p.integer("index", 0, size - 1);
    List<Object> hashes = p.array("path", 1, PublicationTree.MAX_PATH);
    if (hashes.size() != PublicationTree.pathLength(index, size)) {
      throw new Refused(
          MALFORMED, "the inclusion path's length is not the one its index and size give");
    }
    List<byte[]> path = new ArrayList<>();
    for (Object hash : hashes) {
      if (!(hash instanceof String s) || !B64_HASH.matcher(s).matches()) {
        throw new Refused(MALFORMED, "publication.path holds a value that is no hash");
      }
      path.add(Base64s.canonical(s, MALFORMED));
    }
    return new UnverifiedEnvelope.Publication(index, size, List.copyOf(path));
  }

  /** A base64 member decoding to {@code min}-{@code max} bytes. */
  private static byte[] bytes(Fields f, String key, int min, int max) throws Refused {
    String text = f.string(key, Pattern.compile("[A-Za-z0-9+/=]*"));
    // Bound the text before decoding it: 4 characters per 3 bytes.
    if (text.length() > 4 * ((max + 2) / 3)) {
      throw new Refused(MALFORMED, key + " is too long");
    }
    byte[] bytes = Base64s.strict(text, MALFORMED);
    if (bytes.length < min || bytes.length > max) {
      throw new Refused(MALFORMED, key + " must be " + min + "-" + max + " bytes");
    }
    return bytes;
  }
}
