package org.mappabroker.envelope.receipt;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.Signatures;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * Reads the records of the receipts topic for one agency, docs/receipts.md §5.
 *
 * <p>First <b>routing</b>, on bytes nobody has verified ({@link ReceiptRouting}): a record of
 * more than 1,114,112 bytes, that is not JSON, whose {@code receipt.kind} is neither receipt
 * kind, whose addressee ({@code receipt.sender} of a delivery receipt, {@code receipt.agency}
 * of a ledger receipt) is not text, or that names another agency is passed over:
 * {@link #read} returns empty, and the caller records nothing.
 *
 * <p>A record claiming to be for this agency is then checked in this order, the first failure
 * deciding (each a {@link Refused} with its code):
 *
 * <ol>
 *   <li>size: at most 262,144 bytes — {@code receipt.too-large};
 *   <li>strict JSON ({@link StrictJson}) — {@code schema.encoding}, {@code schema.not-json},
 *       {@code schema.not-object}, {@code schema.duplicate-key}, {@code schema.float},
 *       {@code schema.constant}, {@code schema.too-deep}; an integer beyond ±(2^53 − 1) —
 *       {@code receipt.malformed};
 *   <li>shape ({@link ReceiptShape}) — {@code receipt.malformed};
 *   <li>the signer's key. Delivery: {@code recipient} in the trust directory —
 *       {@code directory.unknown-agency}; {@code key_id} one of its {@code ed25519} keys —
 *       {@code receipt.wrong-signer}; not revoked at {@code max(time, record time)} —
 *       {@code directory.key-revoked}; {@code not_before <= time < not_after} —
 *       {@code directory.key-expired}. Ledger: this reader holds the ledger key and
 *       {@code key_id} is its id — {@code receipt.wrong-signer};
 *   <li>the Ed25519 signature over {@code PAE(payload type, JCS(receipt))} —
 *       {@code verification.signature-invalid} ({@code verification.bad-public-key} if the
 *       directory's key is not 32 bytes);
 *   <li>delivery: this agency sent envelope {@code message_id} to {@code recipient} —
 *       {@code receipt.unknown-message}; with digest {@code envelope_digest} —
 *       {@code receipt.digest-mismatch}.
 * </ol>
 *
 * <p>What to do with a refusal (dead letter, audit) and with an accepted receipt (settle the
 * sending row) is the caller's, in one transaction with moving past the record.
 */
public final class ReceiptReader {
  private final String agencyId;
  private final TrustDirectory directory;
  private final LedgerKey ledgerKey;
  private final SentMessages sent;

  /**
   * A reader for {@code agencyId}, checking delivery receipts against {@code directory} (a
   * verified one) and ledger receipts against {@code ledgerKey} ({@code null} where this
   * deployment holds no {@code ledger.pub}: every ledger receipt is then refused), step 6
   * against {@code sent}.
   */
  public ReceiptReader(
      String agencyId, TrustDirectory directory, LedgerKey ledgerKey, SentMessages sent) {
    this.agencyId = Objects.requireNonNull(agencyId);
    this.directory = Objects.requireNonNull(directory);
    this.ledgerKey = ledgerKey;
    this.sent = Objects.requireNonNull(sent);
  }

  /**
   * What {@code recordValue}, taken by the broker at {@code recordTime} (the record's
   * timestamp), holds for this agency: empty if passed over, else the receipt once it passed
   * steps 1-6.
   *
   * @throws Refused a receipt that claims to be for this agency and fails a check
   */
  public Optional<Receipt> read(byte[] recordValue, Instant recordTime) throws Refused {
    ReceiptRouting.Route route = ReceiptRouting.of(recordValue);
    if (route == null || !route.addressee().equals(agencyId)) {
      return Optional.empty();
    }
    if (recordValue.length > ReceiptFormat.MAX_RECEIPT_BYTES) {
      throw new Refused("receipt.too-large", "a receipt of " + recordValue.length
          + " bytes; at most " + ReceiptFormat.MAX_RECEIPT_BYTES);
    }
    Map<String, Object> document = StrictJson.parseObject(recordValue, ReceiptFormat.MALFORMED);
    ReceiptShape.Checked checked = ReceiptShape.check(route.kind(), document);
    byte[] publicKey = checked.receipt() instanceof DeliveryReceipt delivery
        ? SignerKeys.recipientKey(
            directory, delivery, checked.keyId(), checked.signedAt(), recordTime)
        : SignerKeys.ledgerKey(ledgerKey, checked.keyId());
    byte[] signature = Base64s.strict(checked.signature(), ReceiptFormat.MALFORMED);
    byte[] signed = ReceiptSignatures.signedBytes(route.kind(), checked.receiptJson());
    Signatures.verify("ed25519", publicKey, signed, signature);
    if (checked.receipt() instanceof DeliveryReceipt delivery) {
      checkSent(delivery);
    }
    return Optional.of(checked.receipt());
  }

  private void checkSent(DeliveryReceipt receipt) throws Refused {
    String digest = sent.digestSentTo(receipt.messageId(), receipt.recipient());
    if (digest == null) {
      // Someone used this agency's name, or is probing: worth a refusal on record.
      throw new Refused("receipt.unknown-message", "a receipt from " + receipt.recipient()
          + " for message " + receipt.messageId() + ", which this agency never sent to it");
    }
    if (!MessageDigest.isEqual(digest.getBytes(StandardCharsets.US_ASCII),
        receipt.envelopeDigest().getBytes(StandardCharsets.US_ASCII))) {
      throw new Refused("receipt.digest-mismatch", receipt.recipient() + "'s receipt for message "
          + receipt.messageId() + " names another envelope than the one sent");
    }
  }
}
