package org.mappabroker.envelope;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.params.MLDSAParameters;
import org.bouncycastle.crypto.params.MLDSAPrivateKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.mappabroker.envelope.crypto.DecryptionKey;
import org.mappabroker.envelope.crypto.KeyIds;

/**
 * The receiving agency's private keys: its decryption keys by key id (current and retained
 * after rotation, docs/envelope.md §5), and its Ed25519 signing key (for receipts). Key ids
 * are derived from the public keys the seeds give. Nothing here shows key material:
 * {@link #toString()} names only the agency and key ids.
 */
public final class AgencyKeys {
  private static final int SIGNING_SEED_BYTES = 32;

  private final String agencyId;
  private final Map<String, DecryptionKey> decryption;
  private final Ed25519PrivateKeyParameters signing;
  private final Map<String, String> signingKeyIds;

  private AgencyKeys(
      String agencyId,
      Map<String, DecryptionKey> decryption,
      Ed25519PrivateKeyParameters signing,
      Map<String, String> signingKeyIds) {
    this.agencyId = agencyId;
    this.decryption = decryption;
    this.signing = signing;
    this.signingKeyIds = signingKeyIds;
  }

  /**
   * The keys of {@code agencyId} made from {@code keys}. With several Ed25519 seeds, the last
   * one listed is the signing key.
   *
   * @throws IllegalArgumentException for an unknown algorithm or a seed of the wrong size
   */
  public static AgencyKeys of(String agencyId, List<PrivateKeySeed> keys) {
    Map<String, DecryptionKey> decryption = new LinkedHashMap<>();
    Map<String, String> signingKeyIds = new LinkedHashMap<>();
    Ed25519PrivateKeyParameters signing = null;
    for (PrivateKeySeed key : keys) {
      byte[] seed = key.seed();
      switch (key.alg()) {
        case "x25519", "mlkem768-x25519" -> {
          DecryptionKey k = DecryptionKey.fromSeed(key.alg(), seed);
          decryption.put(k.keyId(), k);
        }
        case "ed25519" -> {
          requireLength(seed);
          signing = new Ed25519PrivateKeyParameters(seed, 0);
          signingKeyIds.put(
              "ed25519", KeyIds.of("ed25519", signing.generatePublicKey().getEncoded()));
        }
        case "ml-dsa-65" -> {
          requireLength(seed);
          MLDSAPrivateKeyParameters mldsa =
              new MLDSAPrivateKeyParameters(MLDSAParameters.ml_dsa_65, seed);
          signingKeyIds.put("ml-dsa-65", KeyIds.of("ml-dsa-65", mldsa.getPublicKey()));
        }
        default -> throw new IllegalArgumentException("unknown key algorithm " + key.alg());
      }
      java.util.Arrays.fill(seed, (byte) 0);
    }
    return new AgencyKeys(
        agencyId,
        Collections.unmodifiableMap(decryption),
        signing,
        Collections.unmodifiableMap(signingKeyIds));
  }

  private static void requireLength(byte[] seed) {
    if (seed.length != SIGNING_SEED_BYTES) {
      throw new IllegalArgumentException("signing seeds are " + SIGNING_SEED_BYTES + " bytes");
    }
  }

  /** The agency these keys belong to. */
  public String agencyId() {
    return agencyId;
  }

  /** The decryption key with id {@code keyId}, if this agency holds it. */
  public Optional<DecryptionKey> decryptionKey(String keyId) {
    return Optional.ofNullable(decryption.get(keyId));
  }

  /** Key ids of the decryption keys held. */
  public java.util.Set<String> decryptionKeyIds() {
    return decryption.keySet();
  }

  /** Whether an Ed25519 signing key is held. */
  public boolean canSign() {
    return signing != null;
  }

  /** The key id of the Ed25519 signing key. */
  public String signingKeyId() {
    requireSigning();
    return signingKeyIds.get("ed25519");
  }

  /** The raw Ed25519 public key (32 bytes) of the signing key. */
  public byte[] signingPublicKey() {
    requireSigning();
    return signing.generatePublicKey().getEncoded();
  }

  /** An Ed25519 signature (RFC 8032, pure) over {@code message} with the signing key. */
  public byte[] signEd25519(byte[] message) {
    requireSigning();
    Ed25519Signer signer = new Ed25519Signer();
    signer.init(true, signing);
    signer.update(message, 0, message.length);
    return signer.generateSignature();
  }

  private void requireSigning() {
    if (signing == null) {
      throw new IllegalStateException(agencyId + " holds no Ed25519 signing key");
    }
  }

  @Override
  public String toString() {
    return "AgencyKeys[" + agencyId + ", decryption " + decryption.keySet() + "]";
  }
}
