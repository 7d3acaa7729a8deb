package org.mappabroker.envelope.receipt;

import java.util.Map;

/**
 * A receipt of docs/receipts.md: a {@link DeliveryReceipt} (§2) or a {@link LedgerReceipt}
 * (§3).
 */
public sealed interface Receipt permits DeliveryReceipt, LedgerReceipt {
  /** Its {@code kind}: {@code mappa.delivery-receipt} or {@code mappa.ledger-receipt}. */
  String kind();

  /** Whom it is for: a delivery receipt's {@code sender}, a ledger receipt's {@code agency}. */
  String addressee();

  /** When its signer made it, {@code YYYY-MM-DDTHH:MM:SS.mmmZ}. */
  String time();

  /** Its JSON object, members in its table's order (what is signed is this object's JCS). */
  Map<String, Object> toJson();
}
