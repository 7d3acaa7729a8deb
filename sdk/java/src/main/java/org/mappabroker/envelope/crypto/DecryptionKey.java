package org.mappabroker.envelope.crypto;

import org.bouncycastle.crypto.AsymmetricCipherKeyPair;
import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.crypto.hpke.HPKE;
import org.bouncycastle.crypto.params.MLKEMParameters;
import org.bouncycastle.crypto.params.MLKEMPrivateKeyParameters;
import org.bouncycastle.crypto.params.MLKEMPublicKeyParameters;
import org.bouncycastle.crypto.params.X25519PrivateKeyParameters;
import org.bouncycastle.crypto.params.X25519PublicKeyParameters;
import org.bouncycastle.pqc.crypto.xwing.XWingPrivateKeyParameters;
import org.bouncycastle.util.Arrays;

/**
 * An HPKE recipient key (docs/envelope.md §1, §3.4), made from its seed, and HPKE-OpenBase
 * with it, all from Bouncy Castle's {@code org.bouncycastle.crypto.hpke.HPKE}.
 *
 * <ul>
 *   <li>{@code x25519}: a 32-byte X25519 private key; KEM DHKEM(X25519, HKDF-SHA256), 0x0020.
 *   <li>{@code mlkem768-x25519}: 96 bytes, the ML-KEM-768 seed {@code d || z} (64, FIPS 203)
 *       then the X25519 private key (32); KEM MLKEM768-X25519 (X-Wing), 0x647a. Bouncy
 *       Castle's X-Wing keys are normally one 32-byte seed expanded by SHAKE256, a form ours
 *       is not; its {@code XWingPrivateKeyParameters} also takes the two component keys, and
 *       its decapsulation ({@code XWingKEMExtractor}) uses only those, so our key is given as
 *       its components, and the seed field holds our 96 bytes (never used to re-derive).
 * </ul>
 *
 * <p>Both use KDF HKDF-SHA256 (0x0001) and AEAD AES-256-GCM (0x0002). The seed is never
 * shown by {@link #toString()}.
 */
public final class DecryptionKey {
  /** The seed sizes of docs/envelope.md §1. */
  public static final int X25519_SEED_BYTES = 32;

  public static final int HYBRID_SEED_BYTES = 96;

  private static final int MLKEM_SEED_BYTES = 64;

  /** HPKE {@code enc} sizes: X25519 32; ML-KEM-768 ciphertext 1088 + X25519 32. */
  private static final int X25519_ENC_BYTES = 32;

  private static final int HYBRID_ENC_BYTES = 1120;

  private final String alg;
  private final AsymmetricCipherKeyPair pair;
  private final byte[] publicKey;

  private DecryptionKey(String alg, AsymmetricCipherKeyPair pair, byte[] publicKey) {
    this.alg = alg;
    this.pair = pair;
    this.publicKey = publicKey;
  }

  /**
   * The key {@code seed} makes under {@code alg} ({@code x25519} or {@code mlkem768-x25519}).
   *
   * @throws IllegalArgumentException for another algorithm or a seed of the wrong size
   */
  public static DecryptionKey fromSeed(String alg, byte[] seed) {
    switch (alg) {
      case "x25519" -> {
        requireLength(seed, X25519_SEED_BYTES);
        X25519PrivateKeyParameters priv = new X25519PrivateKeyParameters(seed, 0);
        X25519PublicKeyParameters pub = priv.generatePublicKey();
        return new DecryptionKey(alg, new AsymmetricCipherKeyPair(pub, priv), pub.getEncoded());
      }
      case "mlkem768-x25519" -> {
        requireLength(seed, HYBRID_SEED_BYTES);
        MLKEMPrivateKeyParameters mlkem =
            new MLKEMPrivateKeyParameters(
                MLKEMParameters.ml_kem_768, Arrays.copyOfRange(seed, 0, MLKEM_SEED_BYTES));
        MLKEMPublicKeyParameters mlkemPublic = mlkem.getPublicKeyParameters();
        X25519PrivateKeyParameters x =
            new X25519PrivateKeyParameters(seed, MLKEM_SEED_BYTES);
        X25519PublicKeyParameters xPublic = x.generatePublicKey();
        XWingPrivateKeyParameters priv =
            new XWingPrivateKeyParameters(seed.clone(), mlkem, x, mlkemPublic, xPublic);
        byte[] publicKey = Arrays.concatenate(mlkemPublic.getEncoded(), xPublic.getEncoded());
        return new DecryptionKey(
            alg, new AsymmetricCipherKeyPair(priv.getPublicKeyParameters(), priv), publicKey);
      }
      default -> throw new IllegalArgumentException(alg + " is not an encryption key");
    }
  }

  private static void requireLength(byte[] seed, int length) {
    if (seed.length != length) {
      throw new IllegalArgumentException("seed must be " + length + " bytes");
    }
  }

  /** {@code x25519} or {@code mlkem768-x25519}. */
  public String alg() {
    return alg;
  }

  /** The raw public key (32 or 1216 bytes). */
  public byte[] publicKey() {
    return publicKey.clone();
  }

  /** The key id of its public key (docs/envelope.md §1). */
  public String keyId() {
    return KeyIds.of(alg, publicKey);
  }

  /** Length of the HPKE {@code enc} for this key's KEM. */
  public int encLength() {
    return alg.equals("x25519") ? X25519_ENC_BYTES : HYBRID_ENC_BYTES;
  }

  /**
   * HPKE-OpenBase (RFC 9180) of {@code wrapped} = {@code enc || ct} with {@code info} and an
   * empty {@code aad}.
   *
   * @throws InvalidCipherTextException on any failure (the caller says only "Decryption
   *     failed.")
   */
  public byte[] open(byte[] wrapped, byte[] info) throws InvalidCipherTextException {
    int enc = encLength();
    if (wrapped.length < enc) {
      throw new InvalidCipherTextException("wrapped key too short");
    }
    short kem = alg.equals("x25519") ? HPKE.kem_X25519_SHA256 : HPKE.kem_MLKEM768_X25519;
    HPKE hpke = new HPKE(HPKE.mode_base, kem, HPKE.kdf_HKDF_SHA256, HPKE.aead_AES_GCM256);
    try {
      return hpke.open(
          Arrays.copyOfRange(wrapped, 0, enc),
          pair,
          info,
          new byte[0],
          Arrays.copyOfRange(wrapped, enc, wrapped.length),
          null,
          null,
          null);
    } catch (RuntimeException e) {
      // BC signals some bad inputs (a low-order X25519 point, a wrong length) this way.
      throw new InvalidCipherTextException("HPKE open failed");
    }
  }

  @Override
  public String toString() {
    return "DecryptionKey[" + alg + ", " + keyId() + "]";
  }
}
