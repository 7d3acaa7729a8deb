package org.mappabroker.envelope.receipt;

import static org.mappabroker.envelope.receipt.ReceiptFormat.AGENCY;
import static org.mappabroker.envelope.receipt.ReceiptFormat.BASE64;
import static org.mappabroker.envelope.receipt.ReceiptFormat.DIGEST;
import static org.mappabroker.envelope.receipt.ReceiptFormat.KEY_ID;
import static org.mappabroker.envelope.receipt.ReceiptFormat.MALFORMED;
import static org.mappabroker.envelope.receipt.ReceiptFormat.TIME;
import static org.mappabroker.envelope.receipt.ReceiptFormat.TOPIC;
import static org.mappabroker.envelope.receipt.ReceiptFormat.UUID;
import static org.mappabroker.envelope.receipt.ReceiptFormat.isCode;
import static org.mappabroker.envelope.receipt.ReceiptFormat.matches;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import org.mappabroker.envelope.Refused;

/**
 * Step 3 of docs/receipts.md §5, on the strictly parsed record: exactly the members of §4's
 * table and of §2 or §3, each present, of its JSON type (an integer is a {@link Long}, never a
 * boolean; {@code null} only where the table says) and within its bounds; {@code outcome} and
 * {@code reason_code} agree; {@code time} is a real time. Every failure is
 * {@code receipt.malformed}, naming the field but not its value.
 *
 * <p>The signature is checked over JCS of the receipt as parsed, so a field left to a default
 * or spelt otherwise would let two records carry one signature: hence "exactly".
 */
final class ReceiptShape {
  /** The record checked: the typed receipt, its object as parsed, and the signature fields. */
  record Checked(
      Receipt receipt,
      Map<String, Object> receiptJson,
      Instant signedAt,
      String keyId,
      String signature) {}

  private static final Map<String, Predicate<Object>> SIGNED = table(
      field("receipt", v -> v instanceof Map),
      field("key_id", v -> matches(KEY_ID, v)),
      field("signature", v -> matches(BASE64, v)
          && ((String) v).length() <= ReceiptFormat.MAX_SIGNATURE_CHARS));

  private static final Map<String, Predicate<Object>> DELIVERY = table(
      field("kind", ReceiptFormat.DELIVERY_KIND::equals),
      field("receipt_version", ReceiptShape::isOne),
      field("message_id", v -> matches(UUID, v)),
      field("envelope_digest", v -> matches(DIGEST, v)),
      field("sender", v -> matches(AGENCY, v)),
      field("recipient", v -> matches(AGENCY, v)),
      field("topic", v -> matches(TOPIC, v)),
      field("outcome", v -> ReceiptFormat.DELIVERED.equals(v) || ReceiptFormat.REFUSED.equals(v)),
      field("reason_code", v -> v == null || isCode(v)),
      field("time", v -> matches(TIME, v)));

  private static final Map<String, Predicate<Object>> LEDGER = table(
      field("kind", ReceiptFormat.LEDGER_KIND::equals),
      field("receipt_version", ReceiptShape::isOne),
      field("agency", v -> matches(AGENCY, v)),
      field("held", v -> isListOf(v, item -> matches(UUID, item))),
      field("refused", v -> isListOf(v, ReceiptShape::isRefusedEvent)),
      field("tree_size", v -> v instanceof Long n && n >= 0 && n <= ReceiptFormat.MAX_TREE_SIZE),
      field("time", v -> matches(TIME, v)));

  private ReceiptShape() {}

  /** Check {@code document}, routed as a receipt of {@code kind}. */
  static Checked check(String kind, Map<String, Object> document) throws Refused {
    requireExactly(SIGNED, document, "the record");
    @SuppressWarnings("unchecked")
    Map<String, Object> json = (Map<String, Object>) document.get("receipt");
    boolean delivery = ReceiptFormat.DELIVERY_KIND.equals(kind);
    requireExactly(delivery ? DELIVERY : LEDGER, json, "the receipt");
    Instant signedAt = ReceiptFormat.parseTime((String) json.get("time"));
    Receipt receipt = delivery ? delivery(json) : ledger(json);
    return new Checked(receipt, json, signedAt,
        (String) document.get("key_id"), (String) document.get("signature"));
  }

  /** As {@link #check}, for a receipt about to be signed: its own checks, nothing parsed. */
  static void checkToSign(Receipt receipt) throws Refused {
    Map<String, Object> json = receipt.toJson();
    requireExactly(receipt instanceof DeliveryReceipt ? DELIVERY : LEDGER, json, "the receipt");
    ReceiptFormat.parseTime(receipt.time());
    if (receipt instanceof DeliveryReceipt) {
      delivery(json);
    }
  }

  private static DeliveryReceipt delivery(Map<String, Object> json) throws Refused {
    String outcome = (String) json.get("outcome");
    Object code = json.get("reason_code");
    if (ReceiptFormat.REFUSED.equals(outcome) != (code != null)) {
      throw new Refused(MALFORMED, "a refused receipt has a reason_code, a delivered one null");
    }
    return new DeliveryReceipt(
        (String) json.get("message_id"),
        (String) json.get("envelope_digest"),
        (String) json.get("sender"),
        (String) json.get("recipient"),
        (String) json.get("topic"),
        outcome,
        (String) code,
        (String) json.get("time"));
  }

  private static LedgerReceipt ledger(Map<String, Object> json) {
    List<String> held = new ArrayList<>();
    for (Object id : (List<?>) json.get("held")) {
      held.add((String) id);
    }
    List<LedgerReceipt.RefusedEvent> refused = new ArrayList<>();
    for (Object item : (List<?>) json.get("refused")) {
      Map<?, ?> event = (Map<?, ?>) item;
      refused.add(new LedgerReceipt.RefusedEvent(
          (String) event.get("event_id"), (String) event.get("reason_code")));
    }
    return new LedgerReceipt(
        (String) json.get("agency"), held, refused, (Long) json.get("tree_size"),
        (String) json.get("time"));
  }

  private static void requireExactly(
      Map<String, Predicate<Object>> fields, Map<String, Object> json, String what)
      throws Refused {
    if (!json.keySet().equals(fields.keySet())) {
      throw new Refused(MALFORMED, what + " has a member missing or one it may not have");
    }
    for (Map.Entry<String, Predicate<Object>> field : fields.entrySet()) {
      if (!field.getValue().test(json.get(field.getKey()))) {
        throw new Refused(MALFORMED, what + " has an invalid " + field.getKey());
      }
    }
  }

  private static boolean isOne(Object value) {
    return value instanceof Long n && n == 1L;
  }

  private static boolean isListOf(Object value, Predicate<Object> item) {
    return value instanceof List<?> list
        && list.size() <= ReceiptFormat.MAX_EVENTS
        && list.stream().allMatch(item);
  }

  private static boolean isRefusedEvent(Object value) {
    return value instanceof Map<?, ?> event
        && event.keySet().equals(Set.of("event_id", "reason_code"))
        && matches(UUID, event.get("event_id"))
        && isCode(event.get("reason_code"));
  }

  private static Map.Entry<String, Predicate<Object>> field(String name, Predicate<Object> check) {
    return Map.entry(name, check);
  }

  /** The fields in their table's order. */
  @SafeVarargs
  private static Map<String, Predicate<Object>> table(
      Map.Entry<String, Predicate<Object>>... fields) {
    Map<String, Predicate<Object>> table = new LinkedHashMap<>();
    for (Map.Entry<String, Predicate<Object>> f : fields) {
      table.put(f.getKey(), f.getValue());
    }
    return table;
  }
}
