package org.mappabroker.envelope.receipt;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A ledger receipt, docs/receipts.md §3: the audit events of one agency the ledger holds
 * ({@code held}) and those it refused, after one batch, and the ledger's size after it.
 */
public record LedgerReceipt(
    String agency, List<String> held, List<RefusedEvent> refused, long treeSize, String time)
    implements Receipt {

  /** An audit event the ledger refused that claimed to be this agency's, and the code. */
  public record RefusedEvent(String eventId, String reasonCode) {}

  public LedgerReceipt {
    held = List.copyOf(held);
    refused = List.copyOf(refused);
  }

  @Override
  public String kind() {
    return ReceiptFormat.LEDGER_KIND;
  }

  @Override
  public String addressee() {
    return agency;
  }

  @Override
  public Map<String, Object> toJson() {
    List<Object> refusedJson = new ArrayList<>();
    for (RefusedEvent event : refused) {
      Map<String, Object> item = new LinkedHashMap<>();
      item.put("event_id", event.eventId());
      item.put("reason_code", event.reasonCode());
      refusedJson.add(item);
    }
    Map<String, Object> json = new LinkedHashMap<>();
    json.put("kind", kind());
    json.put("receipt_version", 1L);
    json.put("agency", agency);
    json.put("held", new ArrayList<Object>(held));
    json.put("refused", refusedJson);
    json.put("tree_size", treeSize);
    json.put("time", time);
    return json;
  }
}
