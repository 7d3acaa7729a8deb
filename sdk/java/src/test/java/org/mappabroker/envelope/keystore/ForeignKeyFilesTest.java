package org.mappabroker.envelope.keystore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.List;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.crypto.AsymmetricCipherKeyPair;
import org.bouncycastle.crypto.generators.MLDSAKeyPairGenerator;
import org.bouncycastle.crypto.generators.MLKEMKeyPairGenerator;
import org.bouncycastle.crypto.params.MLDSAKeyGenerationParameters;
import org.bouncycastle.crypto.params.MLDSAParameters;
import org.bouncycastle.crypto.params.MLDSAPrivateKeyParameters;
import org.bouncycastle.crypto.params.MLKEMKeyGenerationParameters;
import org.bouncycastle.crypto.params.MLKEMParameters;
import org.bouncycastle.crypto.params.MLKEMPrivateKeyParameters;
import org.bouncycastle.crypto.params.X25519PrivateKeyParameters;
import org.bouncycastle.crypto.util.PrivateKeyInfoFactory;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.OutputEncryptor;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfoBuilder;
import org.bouncycastle.pkcs.jcajce.JcePKCSPBEOutputEncryptorBuilder;
import org.bouncycastle.util.io.pem.PemObject;
import org.bouncycastle.util.io.pem.PemWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.KeyIds;

/**
 * Key files pyca would not write, sealed here with Bouncy Castle (PBES2 with other parameters
 * than pyca's): the loader reads any PBES2 block, keeps the ML-DSA seed, and refuses a key
 * that has no seed form or is of another parameter set than its file names.
 */
class ForeignKeyFilesTest {
  private static final String OWNER = "foreign.keys";
  private static final char[] PASSPHRASE = "a passphrase for foreign files".toCharArray();
  private static final SecureRandom RANDOM = new SecureRandom();

  @TempDir Path root;

  private static byte[] passphrase() {
    return new String(PASSPHRASE).getBytes(StandardCharsets.UTF_8);
  }

  private static String sealedPem(PrivateKeyInfo info) throws Exception {
    OutputEncryptor encryptor =
        new JcePKCSPBEOutputEncryptorBuilder(NISTObjectIdentifiers.id_aes128_CBC)
            .setProvider(new BouncyCastleProvider())
            .setIterationCount(1000)
            .build(PASSPHRASE);
    byte[] sealed = new PKCS8EncryptedPrivateKeyInfoBuilder(info).build(encryptor).getEncoded();
    StringWriter out = new StringWriter();
    try (PemWriter pem = new PemWriter(out)) {
      pem.writeObject(new PemObject("ENCRYPTED PRIVATE KEY", sealed));
    }
    return out.toString();
  }

  private void write(String alg, String keyId, String keyPem, String mlkemPem) throws IOException {
    Path dir = Files.createDirectories(root.resolve(OWNER));
    String json = "{\"alg\": \"" + alg + "\", \"key_id\": \"" + keyId + "\", \"key\": "
        + quoted(keyPem) + (mlkemPem == null ? "" : ", \"mlkem\": " + quoted(mlkemPem)) + "}";
    Files.writeString(dir.resolve(keyId + ".key"), json);
  }

  private static String quoted(String pem) {
    return "\"" + pem.replace("\r", "").replace("\n", "\\n") + "\"";
  }

  private static MLDSAPrivateKeyParameters mldsa65() {
    MLDSAKeyPairGenerator generator = new MLDSAKeyPairGenerator();
    generator.init(new MLDSAKeyGenerationParameters(RANDOM, MLDSAParameters.ml_dsa_65));
    return (MLDSAPrivateKeyParameters) generator.generateKeyPair().getPrivate();
  }

  @Test
  void keepsTheSeedOfAnMlDsaKeySealedByAnotherTool() throws Exception {
    MLDSAPrivateKeyParameters key = mldsa65();
    String keyId = KeyIds.of("ml-dsa-65", key.getPublicKey());
    write("ml-dsa-65", keyId, sealedPem(PrivateKeyInfoFactory.createPrivateKeyInfo(
        key.getParametersWithFormat(MLDSAPrivateKeyParameters.SEED_ONLY))), null);
    List<UnsealedKey> keys = Keystore.unsealAll(root, OWNER, passphrase());
    assertEquals(keyId, keys.get(0).keyId());
    assertArrayEquals(key.getSeed(), keys.get(0).seed().seed());
  }

  @Test
  void refusesAKeyWithNoSeedForm() throws Exception {
    MLDSAPrivateKeyParameters key = mldsa65();
    String keyId = KeyIds.of("ml-dsa-65", key.getPublicKey());
    write("ml-dsa-65", keyId, sealedPem(PrivateKeyInfoFactory.createPrivateKeyInfo(
        key.getParametersWithFormat(MLDSAPrivateKeyParameters.EXPANDED_KEY))), null);
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.unsealAll(root, OWNER, passphrase()));
    assertEquals("key.unavailable", refused.code());
    assertTrue(refused.getMessage().contains("expanded form only"), refused.getMessage());
  }

  @Test
  void refusesAHybridKeyOfAnotherMlKemSize() throws Exception {
    MLKEMKeyPairGenerator generator = new MLKEMKeyPairGenerator();
    generator.init(new MLKEMKeyGenerationParameters(RANDOM, MLKEMParameters.ml_kem_512));
    AsymmetricCipherKeyPair kem = generator.generateKeyPair();
    MLKEMPrivateKeyParameters kemKey = (MLKEMPrivateKeyParameters) kem.getPrivate();
    X25519PrivateKeyParameters x = new X25519PrivateKeyParameters(RANDOM);
    String keyId = "0123456789abcdef0123456789abcdef";
    write("mlkem768-x25519", keyId, sealedPem(PrivateKeyInfoFactory.createPrivateKeyInfo(x)),
        sealedPem(PrivateKeyInfoFactory.createPrivateKeyInfo(kemKey)));
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.unsealAll(root, OWNER, passphrase()));
    assertTrue(refused.getMessage().contains("is not the mlkem768-x25519 key it names"));
  }

  @Test
  void refusesADirectoryWhereAKeyFileShouldBe() throws IOException {
    Files.createDirectories(root.resolve(OWNER).resolve("0123456789abcdef0123456789abcdef.key"));
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.unsealAll(root, OWNER, passphrase()));
    assertTrue(refused.getMessage().contains("not a regular file"));
  }
}
