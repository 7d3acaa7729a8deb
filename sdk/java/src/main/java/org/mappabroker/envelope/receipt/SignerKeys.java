package org.mappabroker.envelope.receipt;

import java.time.Instant;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.trust.TrustDirectory;

/** Step 4 of docs/receipts.md §5: the public key a receipt must be signed with. */
final class SignerKeys {
  private static final String WRONG_SIGNER = "receipt.wrong-signer";

  private SignerKeys() {}

  /**
   * The recipient's Ed25519 key named {@code keyId}, checked as an envelope's signing keys
   * (docs/envelope.md step 3) with the receipt's {@code time} for {@code created_at}: not
   * revoked at the later of {@code signedAt} and {@code recordTime} (a thief holding a revoked
   * key can backdate {@code time}, not the broker's clock), valid at {@code signedAt}.
   */
  static byte[] recipientKey(TrustDirectory directory, DeliveryReceipt receipt, String keyId,
      Instant signedAt, Instant recordTime) throws Refused {
    TrustDirectory.Agency agency = directory.agency(receipt.recipient()).orElseThrow(
        () -> new Refused("directory.unknown-agency",
            "the receipt's recipient " + receipt.recipient() + " is not in the trust directory"));
    TrustDirectory.Key key = agency.keys().stream()
        .filter(k -> k.keyId().equals(keyId) && k.alg().equals("ed25519"))
        .findFirst()
        .orElseThrow(() -> new Refused(WRONG_SIGNER, "receipt signed with key " + keyId
            + ", not an Ed25519 key of " + receipt.recipient()));
    Instant latest = signedAt.isAfter(recordTime) ? signedAt : recordTime;
    if (key.revokedAt() != null && !latest.isBefore(key.revokedAt())) {
      throw new Refused("directory.key-revoked",
          "signing key " + keyId + " was revoked at " + key.revokedAt());
    }
    if (signedAt.isBefore(key.notBefore()) || !signedAt.isBefore(key.notAfter())) {
      throw new Refused("directory.key-expired",
          "signing key " + keyId + " was not valid at " + receipt.time());
    }
    return key.publicKey();
  }

  /** The ledger's key, if this reader holds it and {@code keyId} names it. */
  static byte[] ledgerKey(LedgerKey ledgerKey, String keyId) throws Refused {
    if (ledgerKey == null) {
      throw new Refused(WRONG_SIGNER,
          "a ledger receipt, but this reader holds no ledger key to verify it");
    }
    if (!ledgerKey.keyId().equals(keyId)) {
      throw new Refused(WRONG_SIGNER, "ledger receipt signed with key " + keyId
          + ", not the ledger's");
    }
    return ledgerKey.publicKey();
  }
}
