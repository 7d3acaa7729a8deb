package org.mappabroker.envelope.receipt;

import java.util.Map;

/**
 * Routing (docs/receipts.md §5), before any check: the kind of receipt a record claims to be
 * and the agency it claims to be for (a delivery receipt's {@code sender}, a ledger receipt's
 * {@code agency}). Nothing read here is trusted: a record routed to the reader is then checked
 * from step 1, and strict JSON refuses the duplicate keys this reading lets through, so the
 * addressee checked is the one routed on.
 */
final class ReceiptRouting {
  /**
   * What the receipts topic takes: an envelope's 1 MiB and 64 KiB for key and headers
   * (docs/receipts.md §7). A larger record is passed over unread.
   */
  static final int MAX_ROUTED_BYTES = 1_114_112;

  /** Where a record claims to go. */
  record Route(String kind, String addressee) {}

  private ReceiptRouting() {}

  /** The route {@code raw} claims, or {@code null}: passed over. */
  static Route of(byte[] raw) {
    if (raw.length > MAX_ROUTED_BYTES) {
      return null;
    }
    if (!(RoutingJson.parse(raw) instanceof Map<?, ?> document)
        || !(document.get("receipt") instanceof Map<?, ?> receipt)
        || !(receipt.get("kind") instanceof String kind)) {
      return null;
    }
    String member;
    if (ReceiptFormat.DELIVERY_KIND.equals(kind)) {
      member = "sender";
    } else if (ReceiptFormat.LEDGER_KIND.equals(kind)) {
      member = "agency";
    } else {
      return null;
    }
    return receipt.get(member) instanceof String addressee ? new Route(kind, addressee) : null;
  }
}
