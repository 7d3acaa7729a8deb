package org.mappabroker.envelope.receipt;

import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.json.Jcs;

/**
 * What a receipt's signature covers, docs/receipts.md §4:
 * {@code signed = PAE(payload_type, JCS(receipt))}. The payload type keeps a delivery receipt,
 * a ledger receipt, an envelope and an audit event apart, though one key signs several of them
 * (vectors {@code signed-as-a-ledger-receipt}, {@code ledger-signed-as-a-delivery-receipt}).
 */
final class ReceiptSignatures {
  private ReceiptSignatures() {}

  /** The payload type of a receipt of {@code kind}. */
  static String payloadType(String kind) {
    return ReceiptFormat.DELIVERY_KIND.equals(kind)
        ? ReceiptFormat.DELIVERY_PAYLOAD
        : ReceiptFormat.LEDGER_PAYLOAD;
  }

  /** The bytes signed for a receipt of {@code kind} whose JSON object is {@code receiptJson}. */
  static byte[] signedBytes(String kind, Object receiptJson) {
    return Pae.encode(payloadType(kind), Jcs.canonical(receiptJson));
  }
}
