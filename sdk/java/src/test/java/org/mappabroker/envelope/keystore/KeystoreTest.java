package org.mappabroker.envelope.keystore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.json.StrictJson;

/**
 * {@link Keystore} against real key files the Python product sealed
 * (src/test/resources/keystore, see its README.txt), and against damaged copies of them.
 */
class KeystoreTest {
  private static final Map<String, Integer> SEED_BYTES =
      Map.of("ed25519", 32, "ml-dsa-65", 32, "x25519", 32, "mlkem768-x25519", 96);

  private static Path root;
  private static Map<String, Object> expected;
  private static byte[] passphrase;
  private static String owner;

  @TempDir Path temp;

  @BeforeAll
  static void fixtures() throws IOException, URISyntaxException, Refused {
    Path base = Path.of(KeystoreTest.class.getResource("/keystore").toURI());
    root = base.resolve("root");
    expected = StrictJson.parseObject(Files.readAllBytes(base.resolve("expected.json")), "x");
    passphrase = ((String) expected.get("passphrase")).getBytes(StandardCharsets.UTF_8);
    owner = (String) expected.get("owner");
  }

  @SuppressWarnings("unchecked")
  private static List<Map<String, Object>> expectedKeys() {
    return (List<Map<String, Object>>) (List<?>) expected.get("keys");
  }

  private static Map<String, Object> expectedKey(String alg) {
    return expectedKeys().stream().filter(k -> alg.equals(k.get("alg"))).findFirst().orElseThrow();
  }

  @Test
  void derivesTheKeyIdsAndPublicKeysPythonComputed() throws Refused {
    List<UnsealedKey> keys = Keystore.unsealAll(root, owner, passphrase);
    assertEquals(4, keys.size());
    Map<String, UnsealedKey> byAlg = new HashMap<>();
    keys.forEach(k -> byAlg.put(k.alg(), k));
    for (Map<String, Object> want : expectedKeys()) {
      String alg = (String) want.get("alg");
      UnsealedKey got = byAlg.get(alg);
      assertEquals(want.get("key_id"), got.keyId(), alg);
      assertArrayEquals(
          Base64.getDecoder().decode((String) want.get("public_key")), got.publicKey(), alg);
      assertEquals(SEED_BYTES.get(alg), got.seed().seed().length, alg);
      assertEquals(alg, got.seed().alg());
    }
  }

  @Test
  void givesTheAgencysKeys() throws Refused {
    AgencyKeys keys = Keystore.load(root, owner, passphrase);
    assertEquals(owner, keys.agencyId());
    Map<String, Object> ed25519 = expectedKey("ed25519");
    assertEquals(ed25519.get("key_id"), keys.signingKeyId());
    assertArrayEquals(
        Base64.getDecoder().decode((String) ed25519.get("public_key")), keys.signingPublicKey());
    assertEquals(
        Set.of(expectedKey("x25519").get("key_id"), expectedKey("mlkem768-x25519").get("key_id")),
        keys.decryptionKeyIds());
    assertFalse(keys.toString().contains((String) expected.get("passphrase")));
  }

  @Test
  void readsAPassphraseAsItsUtf8Bytes() throws Refused {
    @SuppressWarnings("unchecked")
    Map<String, Object> unicode = (Map<String, Object>) expected.get("unicode_passphrase");
    byte[] pass = ((String) unicode.get("passphrase")).getBytes(StandardCharsets.UTF_8);
    List<UnsealedKey> keys = Keystore.unsealAll(root, (String) unicode.get("owner"), pass);
    assertEquals(1, keys.size());
    assertEquals(unicode.get("key_id"), keys.get(0).keyId());
    assertArrayEquals(
        Base64.getDecoder().decode((String) unicode.get("public_key")), keys.get(0).publicKey());
  }

  @Test
  void refusesAWrongPassphraseWithoutKeyMaterial() {
    byte[] wrong = "java-sdk test passphrase, not a secreT".getBytes(StandardCharsets.UTF_8);
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(root, owner, wrong));
    assertEquals("key.unavailable", refused.code());
    assertTrue(refused.getMessage().contains("wrong passphrase or damaged key file"));
    assertFalse(refused.getMessage().contains("secre"));
    assertFalse(refused.getMessage().contains("BEGIN"));
  }

  @Test
  void refusesAPassphraseThatIsNotUtf8() {
    byte[] notUtf8 = {(byte) 0xff, (byte) 0xfe, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(root, owner, notUtf8));
    assertEquals("key.unavailable", refused.code());
    assertTrue(refused.getMessage().contains("not UTF-8"));
  }

  @Test
  void refusesATamperedKeyId() throws IOException {
    Map<String, Object> ed25519 = expectedKey("ed25519");
    String real = (String) ed25519.get("key_id");
    String forged = "00" + real.substring(2);
    String text = Files.readString(root.resolve(owner).resolve(real + ".key"));
    Path dir = Files.createDirectories(temp.resolve(owner));
    Files.writeString(dir.resolve(forged + ".key"), text.replace(real, forged));
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase));
    assertEquals("key.unavailable", refused.code());
    assertTrue(refused.getMessage().contains("does not hold the key its key_id names"));
  }

  @Test
  void refusesAFileNotNamedForItsKeyId() throws IOException {
    String real = (String) expectedKey("x25519").get("key_id");
    Path dir = Files.createDirectories(temp.resolve(owner));
    Files.copy(root.resolve(owner).resolve(real + ".key"), dir.resolve("renamed.key"));
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase));
    assertTrue(refused.getMessage().contains("its name is not the key_id it records"));
  }

  @Test
  void refusesAKeyOfAnotherAlgorithmThanItsFileNames() throws IOException {
    String real = (String) expectedKey("ed25519").get("key_id");
    String text = Files.readString(root.resolve(owner).resolve(real + ".key"));
    Path dir = Files.createDirectories(temp.resolve(owner));
    Files.writeString(dir.resolve(real + ".key"), text.replace("\"ed25519\"", "\"x25519\""));
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase));
    assertTrue(refused.getMessage().contains("is not the x25519 key it names"));
  }

  @Test
  void refusesADamagedCiphertext() throws IOException {
    String real = (String) expectedKey("x25519").get("key_id");
    String text = Files.readString(root.resolve(owner).resolve(real + ".key"));
    // The last base64 line of the PEM is the end of the ciphertext: change one character.
    int end = text.indexOf("\\n-----END");
    char c = text.charAt(end - 3);
    String damaged = text.substring(0, end - 3) + (c == 'A' ? 'B' : 'A') + text.substring(end - 2);
    Path dir = Files.createDirectories(temp.resolve(owner));
    Files.writeString(dir.resolve(real + ".key"), damaged);
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase));
    assertEquals("key.unavailable", refused.code());
  }

  @Test
  void refusesAFileThatIsNotAKeyFile() throws IOException {
    Path dir = Files.createDirectories(temp.resolve(owner));
    String id = "0123456789abcdef0123456789abcdef";
    for (String content : List.of(
        "not json",
        "[1]",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"key\":7}",
        "{\"alg\":\"rsa\",\"key_id\":\"" + id + "\",\"key\":\"k\"}",
        "{\"alg\":\"mlkem768-x25519\",\"key_id\":\"" + id + "\",\"key\":\"k\"}",
        "{\"alg\":\"ed25519\",\"key_id\":\"" + id + "\",\"key\":\"no PEM here\"}")) {
      Files.writeString(dir.resolve(id + ".key"), content);
      Refused refused =
          assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase), content);
      assertEquals("key.unavailable", refused.code(), content);
      assertTrue(refused.getMessage().startsWith("damaged key file " + id + ".key"), content);
    }
  }

  @Test
  void refusesAnOversizedFile() throws IOException {
    Path dir = Files.createDirectories(temp.resolve(owner));
    Files.write(dir.resolve("big.key"), new byte[Keystore.MAX_KEY_FILE_BYTES + 1]);
    Refused refused = assertThrows(Refused.class, () -> Keystore.load(temp, owner, passphrase));
    assertTrue(refused.getMessage().contains("larger than"));
  }

  @Test
  void refusesToGuessBetweenTwoSigningKeys() throws Refused {
    @SuppressWarnings("unchecked")
    Map<String, Object> two = (Map<String, Object>) expected.get("two_signers");
    String twoOwner = (String) two.get("owner");
    assertEquals(2, Keystore.unsealAll(root, twoOwner, passphrase).size());
    Refused refused =
        assertThrows(Refused.class, () -> Keystore.load(root, twoOwner, passphrase));
    assertTrue(refused.getMessage().contains("more than one ed25519 key"));
  }

  @Test
  void refusesAMissingOrInvalidOwner() throws IOException {
    assertEquals("key.unavailable",
        assertThrows(Refused.class, () -> Keystore.load(root, "nobody.here", passphrase)).code());
    Files.createDirectories(temp.resolve("empty.owner"));
    assertEquals("key.unavailable",
        assertThrows(Refused.class, () -> Keystore.load(temp, "empty.owner", passphrase)).code());
    for (String bad : List.of("", ".hidden", "../x", "a/b", "a\\b")) {
      assertEquals("config.invalid",
          assertThrows(Refused.class, () -> Keystore.load(root, bad, passphrase)).code(), bad);
    }
  }
}
