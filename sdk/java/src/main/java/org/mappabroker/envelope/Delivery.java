package org.mappabroker.envelope;

/**
 * What {@link EnvelopeReceiver#receive} did with a record that was not refused.
 *
 * @param kind {@link Kind#OPENED}: {@code viewKind} and {@code plaintext} hold the view opened;
 *     {@link Kind#NOT_ADDRESSED} and {@link Kind#DUPLICATE}: both are {@code null}
 * @param plaintext the view's plaintext (JCS of the message body); never logged by this library
 */
public record Delivery(Kind kind, VerifiedEnvelope envelope, String viewKind, byte[] plaintext) {
  /** The three outcomes of a record that is not refused. */
  public enum Kind {
    /** The view addressed to this agency was opened. */
    OPENED,
    /** No recipient entry names this agency (step 7): skipped, not refused. */
    NOT_ADDRESSED,
    /** Delivered before with the same digest (step 8): delivered once. */
    DUPLICATE
  }

  @Override
  public byte[] plaintext() {
    return plaintext == null ? null : plaintext.clone();
  }

  @Override
  public String toString() {
    return "Delivery[" + kind + ", " + envelope + (viewKind == null ? "" : ", " + viewKind) + "]";
  }
}
