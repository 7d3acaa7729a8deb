package org.mappabroker.envelope;

/**
 * What a receiver remembers of the messages it delivered (docs/envelope.md §4 step 8), keyed
 * by sender and message id together; kept for at least the replay window.
 */
public interface ReplayMemory {
  /** The digest (hex) remembered for {@code (sender, messageId)}, or {@code null}. */
  String digestOf(String sender, String messageId);

  /** Remember that {@code (sender, messageId)} was delivered with {@code digestHex}. */
  void remember(String sender, String messageId, String digestHex);
}
