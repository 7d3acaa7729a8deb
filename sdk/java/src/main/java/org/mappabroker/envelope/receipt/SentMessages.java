package org.mappabroker.envelope.receipt;

/**
 * What the reading agency sent and still tracks: for step 6 of docs/receipts.md §5. The
 * caller's own sending state (its outbox table) answers it.
 */
@FunctionalInterface
public interface SentMessages {
  /**
   * The envelope digest ({@code docs/receipts.md} §2, 64 lowercase hex) of the envelope this
   * agency sent under {@code messageId} to {@code recipient}, or {@code null} if it never sent
   * that message to that recipient.
   */
  String digestSentTo(String messageId, String recipient);
}
