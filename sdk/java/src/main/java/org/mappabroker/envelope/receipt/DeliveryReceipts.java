package org.mappabroker.envelope.receipt;

import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.VerifiedEnvelope;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.json.Jcs;

/**
 * Makes the signed delivery receipt a recipient sends its sender (docs/receipts.md §2, §4):
 *
 * <pre>
 *   signed    = PAE("application/vnd.mappa.delivery-receipt+json; version=1", JCS(receipt))
 *   signature = Ed25519-Sign(the recipient's Ed25519 key, signed)
 *   value     = {"receipt": receipt, "key_id": kid, "signature": b64(signature)}
 * </pre>
 *
 * written compactly, fields in the tables' order: the record value for {@code <ns>.receipts},
 * with the sender's agency id (UTF-8) as the record key.
 *
 * <p>When to make one (§2): for an envelope addressed to this agency that passed steps 1-5 of
 * docs/envelope.md §4: {@code delivered} once taken, {@code refused} with the code of the step
 * (6 or later) that refused it. Never for one refused at steps 1-5 or not addressed here.
 */
public final class DeliveryReceipts {
  private DeliveryReceipts() {}

  /** The signed receipt saying this agency took {@code envelope}, read from {@code topic}. */
  public static byte[] delivered(
      VerifiedEnvelope envelope, String topic, Instant time, AgencyKeys signer) {
    return sign(of(envelope, topic, ReceiptFormat.DELIVERED, null, time, signer), signer);
  }

  /** The signed receipt saying this agency refused {@code envelope} with {@code reasonCode}. */
  public static byte[] refused(
      VerifiedEnvelope envelope, String topic, String reasonCode, Instant time, AgencyKeys signer) {
    return sign(of(envelope, topic, ReceiptFormat.REFUSED, reasonCode, time, signer), signer);
  }

  /**
   * The record value of {@code receipt} signed with {@code signer}'s Ed25519 key.
   *
   * @throws IllegalArgumentException if the receipt breaks §2 (its reason is the checker's), or
   *     its recipient is not the signer's agency
   * @throws IllegalStateException if the signer holds no Ed25519 key
   */
  public static byte[] sign(DeliveryReceipt receipt, AgencyKeys signer) {
    try {
      ReceiptShape.checkToSign(receipt);
    } catch (Refused e) {
      throw new IllegalArgumentException(e.getMessage());
    }
    if (!receipt.recipient().equals(signer.agencyId())) {
      throw new IllegalArgumentException("a receipt is signed by its recipient");
    }
    Map<String, Object> json = receipt.toJson();
    byte[] signature =
        signer.signEd25519(ReceiptSignatures.signedBytes(ReceiptFormat.DELIVERY_KIND, json));
    Map<String, Object> value = new LinkedHashMap<>();
    value.put("receipt", json);
    value.put("key_id", signer.signingKeyId());
    value.put("signature", Base64s.encode(signature));
    return Jcs.compact(value);
  }

  private static DeliveryReceipt of(VerifiedEnvelope envelope, String topic, String outcome,
      String reasonCode, Instant time, AgencyKeys signer) {
    if (!envelope.addressedTo(signer.agencyId())) {
      throw new IllegalArgumentException("no receipt for an envelope not addressed to the signer");
    }
    return new DeliveryReceipt(
        envelope.messageId(),
        envelope.digestHex(),
        envelope.sender(),
        signer.agencyId(),
        topic,
        outcome,
        reasonCode,
        ReceiptFormat.formatTime(time));
  }
}
