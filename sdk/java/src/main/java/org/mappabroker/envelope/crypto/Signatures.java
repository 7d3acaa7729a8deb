package org.mappabroker.envelope.crypto;

import org.bouncycastle.crypto.Signer;
import org.bouncycastle.crypto.params.Ed25519PublicKeyParameters;
import org.bouncycastle.crypto.params.MLDSAParameters;
import org.bouncycastle.crypto.params.MLDSAPublicKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.bouncycastle.crypto.signers.MLDSASigner;
import org.mappabroker.envelope.Refused;

/**
 * Signature verification (docs/envelope.md §1): Ed25519 (RFC 8032, pure) and ML-DSA-65
 * (FIPS 204, pure, empty context), both from Bouncy Castle's lightweight API.
 */
public final class Signatures {
  /** Raw public key sizes of the signing algorithms. */
  public static final int ED25519_PUBLIC_KEY_BYTES = 32;

  public static final int ML_DSA_65_PUBLIC_KEY_BYTES = 1952;

  private Signatures() {}

  /**
   * Raise unless {@code signature} by {@code publicKey} ({@code alg}: {@code ed25519} or
   * {@code ml-dsa-65}) is valid over {@code message}.
   *
   * @throws Refused {@code verification.bad-public-key} (a key of the wrong size or an unknown
   *     algorithm), {@code verification.signature-invalid}
   */
  public static void verify(String alg, byte[] publicKey, byte[] message, byte[] signature)
      throws Refused {
    Signer signer;
    try {
      switch (alg) {
        case "ed25519" -> {
          requireLength(alg, publicKey, ED25519_PUBLIC_KEY_BYTES);
          signer = new Ed25519Signer();
          signer.init(false, new Ed25519PublicKeyParameters(publicKey, 0));
        }
        case "ml-dsa-65" -> {
          requireLength(alg, publicKey, ML_DSA_65_PUBLIC_KEY_BYTES);
          // MLDSASigner is pure ML-DSA; with no ParametersWithContext the context is empty.
          signer = new MLDSASigner();
          signer.init(false, new MLDSAPublicKeyParameters(MLDSAParameters.ml_dsa_65, publicKey));
        }
        default -> throw new Refused("verification.bad-public-key", alg + " is not a signing key");
      }
    } catch (IllegalArgumentException e) {
      throw new Refused("verification.bad-public-key", alg + " public key not usable");
    }
    signer.update(message, 0, message.length);
    boolean valid;
    try {
      valid = signer.verifySignature(signature);
    } catch (RuntimeException e) {
      // A signature of the wrong length can make a verifier throw instead of answer.
      valid = false;
    }
    if (!valid) {
      throw new Refused("verification.signature-invalid", "a " + alg + " signature does not verify");
    }
  }

  private static void requireLength(String alg, byte[] key, int length) throws Refused {
    if (key.length != length) {
      throw new Refused(
          "verification.bad-public-key", alg + " public key must be " + length + " bytes");
    }
  }
}
