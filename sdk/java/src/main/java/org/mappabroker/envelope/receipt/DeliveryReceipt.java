package org.mappabroker.envelope.receipt;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A delivery receipt, docs/receipts.md §2: what a recipient made of one envelope, for its
 * sender. A record of text, as the receipt spells each field; {@code reasonCode} is
 * {@code null} when {@code outcome} is {@code delivered}. The reader returns one only once it
 * passed every check; built by hand, it is checked when {@link DeliveryReceipts} signs it.
 */
public record DeliveryReceipt(
    String messageId,
    String envelopeDigest,
    String sender,
    String recipient,
    String topic,
    String outcome,
    String reasonCode,
    String time)
    implements Receipt {

  @Override
  public String kind() {
    return ReceiptFormat.DELIVERY_KIND;
  }

  @Override
  public String addressee() {
    return sender;
  }

  /** Whether the recipient took the envelope ({@code delivered}), rather than refused it. */
  public boolean delivered() {
    return ReceiptFormat.DELIVERED.equals(outcome);
  }

  @Override
  public Map<String, Object> toJson() {
    Map<String, Object> json = new LinkedHashMap<>();
    json.put("kind", kind());
    json.put("receipt_version", 1L);
    json.put("message_id", messageId);
    json.put("envelope_digest", envelopeDigest);
    json.put("sender", sender);
    json.put("recipient", recipient);
    json.put("topic", topic);
    json.put("outcome", outcome);
    json.put("reason_code", reasonCode);
    json.put("time", time);
    return json;
  }
}
