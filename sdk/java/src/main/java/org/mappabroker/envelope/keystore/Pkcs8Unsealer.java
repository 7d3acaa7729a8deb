package org.mappabroker.envelope.keystore;

import java.io.IOException;
import java.io.StringReader;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.operator.InputDecryptorProvider;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;
import org.bouncycastle.pkcs.PKCSException;
import org.bouncycastle.pkcs.jcajce.JcePKCSPBEInputDecryptorProviderBuilder;
import org.mappabroker.envelope.Refused;

/**
 * Opens the PKCS #8 {@code ENCRYPTED PRIVATE KEY} PEM blocks of a key file with Bouncy Castle's
 * bcpkix.
 *
 * <p>What pyca's {@code BestAvailableEncryption} writes (seen in real key files): PBES2
 * (1.2.840.113549.1.5.13) with PBKDF2 (…1.5.12, HMAC-SHA256, 2,048 iterations, a 16-byte salt)
 * and AES-256-CBC. bcpkix reads whatever PBES2 parameters the block names, so a file written by
 * a later pyca with other parameters opens too.
 *
 * <p>The passphrase is bytes in mappa (any bytes the environment gives); JCE's PBKDF2 takes
 * characters and turns them into UTF-8, so this reader takes UTF-8 passphrases only and refuses
 * another with that reason. A wrong passphrase, like a damaged block, is one refusal naming the
 * file: never the bytes.
 */
final class Pkcs8Unsealer implements AutoCloseable {
  /** A provider instance, not registered globally: the caller's JCA setup stays theirs. */
  private static final BouncyCastleProvider PROVIDER = new BouncyCastleProvider();

  private final char[] passphrase;

  /** Holds a copy of {@code passphrase} until {@link #close()} wipes it. */
  Pkcs8Unsealer(byte[] passphrase) throws Refused {
    this.passphrase = utf8Chars(passphrase);
  }

  /** The decrypted PKCS #8 structure of {@code pem}. */
  PrivateKeyInfo open(String pem, String fileName) throws Refused {
    PKCS8EncryptedPrivateKeyInfo sealed;
    try (PEMParser parser = new PEMParser(new StringReader(pem))) {
      Object block = parser.readObject();
      if (!(block instanceof PKCS8EncryptedPrivateKeyInfo info) || parser.readObject() != null) {
        throw SealedKeyFile.damaged(fileName, "not one encrypted PKCS #8 PEM block");
      }
      sealed = info;
    } catch (IOException | RuntimeException e) {
      throw SealedKeyFile.damaged(fileName, "not one encrypted PKCS #8 PEM block");
    }
    try {
      InputDecryptorProvider decryptor =
          new JcePKCSPBEInputDecryptorProviderBuilder().setProvider(PROVIDER).build(passphrase);
      return sealed.decryptPrivateKeyInfo(decryptor);
    } catch (PKCSException | RuntimeException e) {
      // A wrong passphrase shows as bad padding or as garbage that is not PKCS #8: the two
      // cannot be told apart, and neither message may carry what was decrypted.
      throw new Refused(
          Keystore.CODE, "cannot unlock " + fileName + ": wrong passphrase or damaged key file");
    }
  }

  @Override
  public void close() {
    Arrays.fill(passphrase, '\0');
  }

  private static char[] utf8Chars(byte[] passphrase) throws Refused {
    try {
      CharBuffer chars =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(passphrase));
      char[] out = new char[chars.remaining()];
      chars.get(out);
      Arrays.fill(chars.array(), '\0');
      return out;
    } catch (CharacterCodingException e) {
      throw new Refused(
          Keystore.CODE, "the key passphrase is not UTF-8 text, which this library requires");
    }
  }
}
