package org.mappabroker.envelope;

import java.time.Instant;
import java.util.List;
import java.util.Map;

/**
 * A record value that passed step 1 (size, strict parse and shape, docs/envelope.md §2) and
 * nothing else: nothing in it is trusted yet.
 *
 * @param document the whole parsed value (JCS of its parts gives the signed bytes)
 * @param unverifiedHeader the parsed {@code header}
 * @param createdAt {@code header.created_at}, a claim
 * @param publication the {@code publication} member, or {@code null} for a lone envelope
 */
record UnverifiedEnvelope(
    Map<String, Object> document,
    Map<String, Object> unverifiedHeader,
    String suite,
    String sender,
    String messageId,
    Instant createdAt,
    List<String> senderKeys,
    String topic,
    String area,
    String isaId,
    long isaVersion,
    List<View> views,
    List<Recipient> recipients,
    List<SignatureEntry> signatures,
    Publication publication) {

  /** One sealed view; the byte fields are decoded and of the sizes §2.2 allows. */
  record View(long viewId, String kind, byte[] nonce, byte[] keyCommitment, byte[] ciphertext) {}

  /** One wrapped data key. */
  record Recipient(String agency, String keyId, long viewId, byte[] wrappedKey) {}

  /** One signature, as named. */
  record SignatureEntry(String alg, String keyId, byte[] signature) {}

  /** Where the envelope sits in its publication's tree (§2.3). */
  record Publication(long index, long size, List<byte[]> path) {}
}
