package org.mappabroker.envelope.keystore;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.mappabroker.envelope.AgencyKeys;
import org.mappabroker.envelope.PrivateKeySeed;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * Reads an agency's private keys from mappa's own keystore ({@code broker/trust/keystore.py}).
 *
 * <p>Layout: {@code <root>/<owner>/<key_id>.key}, one file per key, each the JSON text of
 * {@link SealedKeyFile} with PKCS #8 PEM blocks sealed under the deployment's passphrase
 * ({@code MAPPA_KEY_PASSPHRASE}). For each file, in order (the first failure decides; every
 * refusal is {@code key.unavailable}, names the file, and never holds key material):
 *
 * <ol>
 *   <li>a regular file of at most {@link #MAX_KEY_FILE_BYTES} bytes;
 *   <li>one JSON object of text members {@code alg}, {@code key_id}, {@code key} (and
 *       {@code mlkem} for the hybrid key), the algorithm one of the four of docs/envelope.md §1;
 *   <li>the file's name is its recorded {@code key_id} and {@code .key};
 *   <li>each PEM block decrypts under the passphrase (a wrong passphrase and a damaged block are
 *       one refusal: they cannot be told apart);
 *   <li>the key is of the algorithm the file names, in seed form, and its public key gives the
 *       recorded key id.
 * </ol>
 *
 * <p>Two loaders. {@link #load(Path, TrustDirectory.Agency, Instant, byte[])} opens the keys
 * the agency's trust directory entry names, and takes the current signing key per algorithm
 * as mappa's gateway does; the key must also be the directory's (same public key). {@link
 * #load(Path, String, byte[])} opens every key file of the owner and refuses two keys of one
 * signing algorithm (which of them is current is the directory's to say; it does not guess).
 * An owner that is not a plain directory name is {@code config.invalid}.
 *
 * <p>The passphrase is bytes, as {@code MAPPA_KEY_PASSPHRASE} gives them; this library takes
 * UTF-8 passphrases only (JCE's PBKDF2 takes characters and encodes them as UTF-8).
 */
public final class Keystore {
  /** The refusal code of every keystore problem, as mappa's {@code KeyUnavailable}. */
  public static final String CODE = "key.unavailable";

  /** A sealed key is a few KiB (an ML-DSA-65 key is the largest); as mappa's keystore. */
  public static final int MAX_KEY_FILE_BYTES = 64 * 1024;

  private static final String SUFFIX = ".key";
  private static final Set<String> SIGNING_ALGS = Set.of("ed25519", "ml-dsa-65");

  private Keystore() {}

  /**
   * Every private key of {@code owner} (its agency id) under {@code keyRoot}, unsealed with
   * {@code passphrase}, as the agency's keys.
   */
  public static AgencyKeys load(Path keyRoot, String owner, byte[] passphrase) throws Refused {
    List<PrivateKeySeed> seeds = new ArrayList<>();
    Set<String> signingAlgs = new HashSet<>();
    for (UnsealedKey key : unsealAll(keyRoot, owner, passphrase)) {
      // Which of two signing keys of one algorithm is current is the trust directory's to
      // say (the overload taking the agency's entry): this one does not guess.
      if (key.signs() && !signingAlgs.add(key.alg())) {
        throw new Refused(CODE, owner + " holds more than one " + key.alg()
            + " key: keep only the current one in the key directory given here");
      }
      seeds.add(key.seed());
    }
    return AgencyKeys.of(owner, seeds);
  }

  /**
   * The keys of {@code agency} (its trust directory entry) held under {@code keyRoot}, as
   * mappa's gateway chooses them ({@code broker/trust/provision.py} {@code load_agency_keys}):
   * every encryption key of the entry held here (current and retained: old envelopes still
   * open), and per signing algorithm the current key, the one valid and not revoked at
   * {@code at} with the latest {@code not_before}. Files the entry does not name are not
   * opened. Refuses, as {@link #load(Path, String, byte[])} does, a file that fails a check,
   * and a key whose public key is not the entry's.
   */
  public static AgencyKeys load(
      Path keyRoot, TrustDirectory.Agency agency, Instant at, byte[] passphrase) throws Refused {
    String owner = agency.agencyId();
    Path dir = ownerDirectory(keyRoot, owner);
    Set<String> held = new HashSet<>();
    for (Path file : keyFiles(dir, owner)) {
      String name = file.getFileName().toString();
      held.add(name.substring(0, name.length() - SUFFIX.length()));
    }
    Map<String, TrustDirectory.Key> current = new HashMap<>();
    List<TrustDirectory.Key> chosen = new ArrayList<>();
    for (TrustDirectory.Key key : agency.keys()) {
      if (!held.contains(key.keyId())) {
        continue;
      }
      if (!SIGNING_ALGS.contains(key.alg())) {
        chosen.add(key);
      } else if (usableAt(key, at)) {
        TrustDirectory.Key before = current.get(key.alg());
        if (before == null || key.notBefore().isAfter(before.notBefore())) {
          current.put(key.alg(), key);
        }
      }
    }
    chosen.addAll(current.values());
    if (chosen.isEmpty()) {
      throw new Refused(CODE, "none of the keys the directory lists for " + owner
          + " is held in " + keyRoot);
    }
    List<PrivateKeySeed> seeds = new ArrayList<>();
    try (Pkcs8Unsealer unsealer = new Pkcs8Unsealer(passphrase)) {
      for (TrustDirectory.Key key : chosen) {
        UnsealedKey unsealed = unseal(dir.resolve(key.keyId() + SUFFIX), unsealer);
        if (!unsealed.alg().equals(key.alg())
            || !MessageDigest.isEqual(unsealed.publicKey(), key.publicKey())) {
          throw new Refused(CODE, "key file " + key.keyId() + SUFFIX
              + " does not hold the key the trust directory lists under that id");
        }
        seeds.add(unsealed.seed());
      }
    }
    return AgencyKeys.of(owner, seeds);
  }

  private static boolean usableAt(TrustDirectory.Key key, Instant at) {
    return !at.isBefore(key.notBefore())
        && at.isBefore(key.notAfter())
        && (key.revokedAt() == null || at.isBefore(key.revokedAt()));
  }

  /** Every key file of {@code owner} opened and checked, in key id order. */
  static List<UnsealedKey> unsealAll(Path keyRoot, String owner, byte[] passphrase)
      throws Refused {
    Path dir = ownerDirectory(keyRoot, owner);
    List<UnsealedKey> keys = new ArrayList<>();
    try (Pkcs8Unsealer unsealer = new Pkcs8Unsealer(passphrase)) {
      for (Path file : keyFiles(dir, owner)) {
        keys.add(unseal(file, unsealer));
      }
    }
    return keys;
  }

  private static UnsealedKey unseal(Path file, Pkcs8Unsealer unsealer) throws Refused {
    String name = file.getFileName().toString();
    SealedKeyFile sealed = SealedKeyFile.parse(readBounded(file, name), name);
    if (!name.equals(sealed.keyId() + SUFFIX)) {
      throw SealedKeyFile.damaged(name, "its name is not the key_id it records");
    }
    PrivateKeyInfo key = unsealer.open(sealed.keyPem(), name);
    PrivateKeyInfo mlkem =
        sealed.mlkemPem() == null ? null : unsealer.open(sealed.mlkemPem(), name);
    return KeySeeds.seed(sealed, key, mlkem, name);
  }

  private static Path ownerDirectory(Path keyRoot, String owner) throws Refused {
    // As mappa's keystore: the owner names one directory under the root, nothing else.
    if (owner.isEmpty()
        || owner.startsWith(".")
        || owner.contains("/")
        || owner.contains("\\")
        || owner.indexOf('\0') >= 0) {
      throw new Refused("config.invalid", "invalid key owner");
    }
    Path dir = keyRoot.resolve(owner);
    if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
      throw new Refused(CODE, "no private keys for " + owner + " in " + keyRoot);
    }
    return dir;
  }

  private static List<Path> keyFiles(Path dir, String owner) throws Refused {
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> listing = Files.newDirectoryStream(dir, "*" + SUFFIX)) {
      listing.forEach(files::add);
    } catch (IOException e) {
      throw new Refused(CODE, "cannot list the private keys of " + owner);
    }
    if (files.isEmpty()) {
      throw new Refused(CODE, "no private keys for " + owner + " in " + dir.getParent());
    }
    files.sort(null);
    return files;
  }

  private static byte[] readBounded(Path file, String name) throws Refused {
    if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
      throw SealedKeyFile.damaged(name, "not a regular file");
    }
    try (InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
      // One byte past the limit tells a file at the limit from a larger one.
      byte[] raw = in.readNBytes(MAX_KEY_FILE_BYTES + 1);
      if (raw.length > MAX_KEY_FILE_BYTES) {
        throw SealedKeyFile.damaged(name, "larger than " + MAX_KEY_FILE_BYTES + " bytes");
      }
      return raw;
    } catch (IOException e) {
      throw new Refused(CODE, "cannot read key file " + name);
    }
  }
}
