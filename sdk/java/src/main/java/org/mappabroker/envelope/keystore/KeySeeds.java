package org.mappabroker.envelope.keystore;

import java.io.IOException;
import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.crypto.params.AsymmetricKeyParameter;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.params.MLDSAParameters;
import org.bouncycastle.crypto.params.MLDSAPrivateKeyParameters;
import org.bouncycastle.crypto.params.MLKEMParameters;
import org.bouncycastle.crypto.params.MLKEMPrivateKeyParameters;
import org.bouncycastle.crypto.params.X25519PrivateKeyParameters;
import org.bouncycastle.crypto.util.PrivateKeyFactory;
import org.bouncycastle.util.Arrays;
import org.mappabroker.envelope.PrivateKeySeed;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.KeyIds;

/**
 * Turns unsealed PKCS #8 keys into the seed form of docs/envelope.md §1, and checks the key id
 * the file records against the public key the seed gives.
 *
 * <pre>
 *   ed25519          the 32-byte private key (RFC 8032)
 *   x25519           the 32-byte private key (RFC 7748)
 *   ml-dsa-65        the 32-byte seed ξ (FIPS 204); pyca writes the seed-only PKCS #8 form
 *   mlkem768-x25519  the ML-KEM-768 seed d || z (64, FIPS 203), then the X25519 key (32)
 * </pre>
 *
 * <p>An ML-DSA or ML-KEM key stored in the expanded form only (no seed: not what pyca writes) has
 * no seed form, and is refused as such.
 */
final class KeySeeds {
  private KeySeeds() {}

  /**
   * The seed of {@code file}'s key, {@code key} (and {@code mlkem} for the hybrid key) being its
   * unsealed PKCS #8 blocks; refuses a key of another algorithm than the file names, or whose
   * public key does not give the recorded key id.
   */
  static UnsealedKey seed(SealedKeyFile file, PrivateKeyInfo key, PrivateKeyInfo mlkem,
      String fileName) throws Refused {
    AsymmetricKeyParameter main = parameters(key, fileName);
    byte[] seed;
    byte[] publicKey;
    switch (file.alg()) {
      case "ed25519" -> {
        Ed25519PrivateKeyParameters k = as(Ed25519PrivateKeyParameters.class, main, file, fileName);
        seed = k.getEncoded();
        publicKey = k.generatePublicKey().getEncoded();
      }
      case "x25519" -> {
        X25519PrivateKeyParameters k = as(X25519PrivateKeyParameters.class, main, file, fileName);
        seed = k.getEncoded();
        publicKey = k.generatePublicKey().getEncoded();
      }
      case "ml-dsa-65" -> {
        MLDSAPrivateKeyParameters k = as(MLDSAPrivateKeyParameters.class, main, file, fileName);
        if (k.getParameters() != MLDSAParameters.ml_dsa_65) {
          throw wrongKind(file, fileName);
        }
        seed = requireSeed(k.getSeed(), fileName);
        publicKey = k.getPublicKey();
      }
      case "mlkem768-x25519" -> {
        X25519PrivateKeyParameters x = as(X25519PrivateKeyParameters.class, main, file, fileName);
        MLKEMPrivateKeyParameters m =
            as(MLKEMPrivateKeyParameters.class, parameters(mlkem, fileName), file, fileName);
        if (m.getParameters() != MLKEMParameters.ml_kem_768) {
          throw wrongKind(file, fileName);
        }
        byte[] kemSeed = requireSeed(m.getSeed(), fileName);
        byte[] xSeed = x.getEncoded();
        seed = Arrays.concatenate(kemSeed, xSeed);
        Arrays.fill(kemSeed, (byte) 0);
        Arrays.fill(xSeed, (byte) 0);
        publicKey = Arrays.concatenate(m.getPublicKey(), x.generatePublicKey().getEncoded());
      }
      default -> throw wrongKind(file, fileName);
    }
    String derived = KeyIds.of(file.alg(), publicKey);
    // Not secret, but the habit costs nothing.
    if (!MessageDigest.isEqual(
        derived.getBytes(StandardCharsets.US_ASCII),
        file.keyId().getBytes(StandardCharsets.US_ASCII))) {
      Arrays.fill(seed, (byte) 0);
      throw new Refused(
          Keystore.CODE, "key file " + fileName + " does not hold the key its key_id names");
    }
    PrivateKeySeed kept = new PrivateKeySeed(file.alg(), seed); // a copy
    Arrays.fill(seed, (byte) 0);
    return new UnsealedKey(file.alg(), derived, publicKey, kept);
  }

  private static AsymmetricKeyParameter parameters(PrivateKeyInfo info, String fileName)
      throws Refused {
    try {
      return PrivateKeyFactory.createKey(info);
    } catch (IOException | RuntimeException e) {
      throw SealedKeyFile.damaged(fileName, "the unsealed key is not a key this library reads");
    }
  }

  private static <T> T as(Class<T> kind, AsymmetricKeyParameter key, SealedKeyFile file,
      String fileName) throws Refused {
    if (!kind.isInstance(key)) {
      throw wrongKind(file, fileName);
    }
    return kind.cast(key);
  }

  private static byte[] requireSeed(byte[] seed, String fileName) throws Refused {
    if (seed == null) {
      throw new Refused(
          Keystore.CODE,
          "key file " + fileName + " holds its key in expanded form only: no seed to use");
    }
    return seed;
  }

  private static Refused wrongKind(SealedKeyFile file, String fileName) {
    return SealedKeyFile.damaged(fileName, "the key is not the " + file.alg() + " key it names");
  }
}
