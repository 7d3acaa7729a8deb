package org.mappabroker.envelope;

import java.time.Instant;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * An envelope that passed steps 1-6 of docs/envelope.md §4: its shape, suite, the sender's
 * keys in the trust directory, every signature, its topic binding and its freshness.
 */
public final class VerifiedEnvelope {
  private final UnverifiedEnvelope parts;
  private final Suite suite;
  private final String digestHex;
  private final byte[] headerSha256;

  VerifiedEnvelope(UnverifiedEnvelope parts, Suite suite, String digestHex, byte[] headerSha256) {
    this.parts = parts;
    this.suite = suite;
    this.digestHex = digestHex;
    this.headerSha256 = headerSha256;
  }

  /** The verified header, as parsed (an unmodifiable view). */
  public Map<String, Object> header() {
    return Collections.unmodifiableMap(parts.unverifiedHeader());
  }

  /** {@code header.sender}. */
  public String sender() {
    return parts.sender();
  }

  /** {@code header.message_id}. */
  public String messageId() {
    return parts.messageId();
  }

  /** {@code header.created_at}. */
  public Instant createdAt() {
    return parts.createdAt();
  }

  /** {@code header.topic}. */
  public String topic() {
    return parts.topic();
  }

  /** The suite named in the header. */
  public Suite suite() {
    return suite;
  }

  /** {@code hex(SHA-256(signed_bytes))} (§3.5): what replay memory and receipts name. */
  public String digestHex() {
    return digestHex;
  }

  /** {@code SHA-256(JCS(header))} (§3.1). */
  public byte[] headerSha256() {
    return headerSha256.clone();
  }

  /** Whether a {@code recipients[]} entry names {@code agency}. */
  public boolean addressedTo(String agency) {
    return parts.recipients().stream().anyMatch(r -> r.agency().equals(agency));
  }

  /** The agencies addressed, in order. */
  public List<String> recipients() {
    return parts.recipients().stream().map(UnverifiedEnvelope.Recipient::agency).toList();
  }

  UnverifiedEnvelope parts() {
    return parts;
  }

  @Override
  public String toString() {
    return "VerifiedEnvelope[" + parts.sender() + " " + parts.messageId() + "]";
  }
}
