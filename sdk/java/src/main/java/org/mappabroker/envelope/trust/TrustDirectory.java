package org.mappabroker.envelope.trust;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.Digests;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.crypto.Signatures;
import org.mappabroker.envelope.json.Fields;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.json.StrictJson;

/**
 * A trust directory whose governance signature verified (docs/envelope.md §5): every agency,
 * its role, areas, status, suites and public keys.
 *
 * <p>{@link #verify} checks, in order (as broker/trust/directory.py):
 *
 * <ol>
 *   <li>the signed document parses strictly and has the directory's shape
 *       ({@code directory.malformed});
 *   <li>{@code signature.key_id} is the governance key's id ({@code directory.wrong-signer});
 *   <li>the Ed25519 signature verifies over
 *       {@code PAE("application/vnd.mappa.directory+json; version=1", JCS(document))}
 *       ({@code verification.signature-invalid});
 *   <li>the version is at least {@code minVersion} ({@code directory.rollback}).
 * </ol>
 */
public final class TrustDirectory {
  /** DSSE payload type of the directory document. */
  public static final String PAYLOAD_TYPE = "application/vnd.mappa.directory+json; version=1";

  private static final String MALFORMED = "directory.malformed";

  // Bounds of schemas/directory.py: generous for a country's agencies, bounded all the same.
  private static final int MAX_AGENCIES = 5000;
  private static final int MAX_AREAS = 50;
  private static final int MAX_SUITES = 8;
  private static final int MAX_KEYS = 64;
  private static final int SHORT_TEXT = 200;
  /** The largest public key: ML-DSA-65, 1952 bytes, 2604 base64 characters. */
  private static final int MAX_PUBLIC_KEY_B64 = 4 * ((1952 + 2) / 3);
  /** The signature field's bound, as an envelope's (ML-DSA-65's 3309 bytes), in base64. */
  private static final int MAX_SIGNATURE_B64 = 4 * ((3309 + 2) / 3);

  private static final Pattern AGENCY_ID =
      Pattern.compile("[a-z][a-z0-9-]{1,31}\\.[a-z0-9][a-z0-9-]{0,62}");
  private static final Pattern AREA = Pattern.compile("[a-z][a-z-]{1,40}[a-z]");
  private static final Pattern KEY_ID = Pattern.compile("[0-9a-f]{32}");
  private static final Pattern SUITE = Pattern.compile("[a-z0-9-]{1,32}");
  private static final Pattern PRINCIPAL = Pattern.compile("User:[A-Za-z0-9._-]{1,64}");
  private static final Pattern B64 =
      Pattern.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?");
  private static final Set<String> ROLES =
      Set.of(
          "police", "probation", "prison", "coordinator", "youth-offending", "social-care",
          "health", "housing", "jobcentre", "education", "electronic-monitoring", "immigration");
  private static final Set<String> KEY_ALGS =
      Set.of("ed25519", "ml-dsa-65", "x25519", "mlkem768-x25519");

  /** An agency's entry. {@code status} is {@code active} or {@code suspended}. */
  public record Agency(
      String agencyId,
      String role,
      List<String> areas,
      String status,
      List<String> suites,
      List<Key> keys) {
    /** Whether the agency may send and receive. */
    public boolean active() {
      return status.equals("active");
    }
  }

  /** A public key entry; {@code revokedAt} is null if the key is not revoked. */
  public record Key(
      String keyId,
      String alg,
      byte[] publicKey,
      Instant notBefore,
      Instant notAfter,
      Instant revokedAt) {
    @Override
    public byte[] publicKey() {
      return publicKey.clone();
    }
  }

  /** An agency and one of its keys, as a key id finds them. */
  public record KeyOwner(Agency agency, Key key) {}

  private final long version;
  private final Instant validUntil;
  private final String documentSha256;
  private final Map<String, Agency> agencies;
  private final Map<String, KeyOwner> keyOwners;

  private TrustDirectory(
      long version,
      Instant validUntil,
      String documentSha256,
      Map<String, Agency> agencies,
      Map<String, KeyOwner> keyOwners) {
    this.version = version;
    this.validUntil = validUntil;
    this.documentSha256 = documentSha256;
    this.agencies = agencies;
    this.keyOwners = keyOwners;
  }

  /** {@link #verify(byte[], byte[], long)} with no version accepted before. */
  public static TrustDirectory verify(byte[] signedDirectoryJson, byte[] governanceEd25519PublicKey)
      throws Refused {
    return verify(signedDirectoryJson, governanceEd25519PublicKey, 1);
  }

  /**
   * Verify a signed directory ({@code {"document": ..., "signature": {"alg", "key_id",
   * "signature"}}}) with the governance key (raw Ed25519, 32 bytes), refusing a version older
   * than {@code minVersion}. The checks and their codes are in the class documentation.
   */
  public static TrustDirectory verify(
      byte[] signedDirectoryJson, byte[] governanceEd25519PublicKey, long minVersion)
      throws Refused {
    Map<String, Object> signed;
    try {
      signed = StrictJson.parseObject(signedDirectoryJson, MALFORMED);
    } catch (Refused e) {
      throw new Refused(MALFORMED, "signed directory: " + e.getMessage());
    }
    Fields top = Fields.of(signed, MALFORMED, "directory", Set.of("document", "signature"), Set.of());
    Fields signature =
        Fields.of(
            top.raw("signature"),
            MALFORMED,
            "signature",
            Set.of("alg", "key_id", "signature"),
            Set.of());
    signature.oneOf("alg", Set.of("ed25519"));
    String keyId = signature.string("key_id", KEY_ID);
    String signatureB64 = signature.string("signature", B64);
    if (signatureB64.length() > MAX_SIGNATURE_B64) {
      throw new Refused(MALFORMED, "signature.signature is too long");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> document = (Map<String, Object>) top.raw("document");
    TrustDirectory directory = shape(top.raw("document"), document);

    if (!keyId.equals(KeyIds.of("ed25519", governanceEd25519PublicKey))) {
      throw new Refused("directory.wrong-signer", "directory is not signed by the governance key");
    }
    byte[] canonical = Jcs.canonical(document);
    Signatures.verify(
        "ed25519",
        governanceEd25519PublicKey,
        Pae.encode(PAYLOAD_TYPE, canonical),
        Base64s.strict(signatureB64, MALFORMED));
    if (directory.version < minVersion) {
      throw new Refused(
          "directory.rollback",
          "directory version " + directory.version + " is older than version " + minVersion
              + " already accepted");
    }
    return directory;
  }

  private static TrustDirectory shape(Object value, Map<String, Object> document) throws Refused {
    Fields d =
        Fields.of(
            value,
            MALFORMED,
            "document",
            Set.of("kind", "version", "issued_at", "valid_until", "agencies"),
            Set.of());
    d.oneOf("kind", Set.of("mappa.directory"));
    long version = d.integer("version", 1, StrictJson.MAX_SAFE_INTEGER);
    Instant issuedAt = d.timestamp("issued_at");
    Instant validUntil = d.timestamp("valid_until");
    if (!validUntil.isAfter(issuedAt)) {
      throw new Refused(MALFORMED, "valid_until must be later than issued_at");
    }
    Map<String, Agency> agencies = new LinkedHashMap<>();
    Map<String, KeyOwner> owners = new LinkedHashMap<>();
    for (Object entry : d.array("agencies", 0, MAX_AGENCIES)) {
      Agency agency = agency(entry);
      if (agencies.put(agency.agencyId(), agency) != null) {
        throw new Refused(MALFORMED, "agency ids must be unique");
      }
      for (Key key : agency.keys()) {
        if (owners.put(key.keyId(), new KeyOwner(agency, key)) != null) {
          throw new Refused(MALFORMED, "key ids must be unique across the directory");
        }
      }
    }
    String digest = Digests.hex(Digests.sha256(Jcs.canonical(document)));
    return new TrustDirectory(
        version,
        validUntil,
        digest,
        Collections.unmodifiableMap(agencies),
        Collections.unmodifiableMap(owners));
  }

  private static Agency agency(Object value) throws Refused {
    Fields a =
        Fields.of(
            value,
            MALFORMED,
            "agency",
            Set.of("agency_id", "name", "role", "areas", "kafka_principal", "status", "suites",
                "keys"),
            Set.of());
    String id = a.string("agency_id", AGENCY_ID);
    a.text("name", 1, SHORT_TEXT);
    String role = a.oneOf("role", ROLES);
    a.string("kafka_principal", PRINCIPAL);
    String status = a.oneOf("status", Set.of("active", "suspended"));
    List<String> areas = strings(a.array("areas", 1, MAX_AREAS), AREA, "areas");
    List<String> suites = strings(a.array("suites", 1, MAX_SUITES), SUITE, "suites");
    if (new HashSet<>(suites).size() != suites.size()) {
      throw new Refused(MALFORMED, "agency " + id + ": a suite is named twice");
    }
    List<Key> keys = new ArrayList<>();
    for (Object k : a.array("keys", 1, MAX_KEYS)) {
      keys.add(key(k));
    }
    return new Agency(id, role, areas, status, suites, List.copyOf(keys));
  }

  private static Key key(Object value) throws Refused {
    Fields k =
        Fields.of(
            value,
            MALFORMED,
            "key",
            Set.of("key_id", "alg", "public_key", "not_before", "not_after"),
            Set.of("revoked_at", "revocation_reason"));
    String keyId = k.string("key_id", KEY_ID);
    String alg = k.oneOf("alg", KEY_ALGS);
    String publicKey = k.string("public_key", B64);
    if (publicKey.length() > MAX_PUBLIC_KEY_B64) {
      throw new Refused(MALFORMED, "key.public_key is too long");
    }
    Instant notBefore = k.timestamp("not_before");
    Instant notAfter = k.timestamp("not_after");
    if (!notAfter.isAfter(notBefore)) {
      throw new Refused(MALFORMED, "key " + keyId + ": not_after must be later than not_before");
    }
    Instant revokedAt = k.timestampOrNull("revoked_at");
    if (k.raw("revocation_reason") != null) {
      k.text("revocation_reason", 1, SHORT_TEXT);
    }
    return new Key(
        keyId, alg, Base64s.strict(publicKey, MALFORMED), notBefore, notAfter, revokedAt);
  }

  private static List<String> strings(List<Object> values, Pattern pattern, String where)
      throws Refused {
    List<String> out = new ArrayList<>();
    for (Object v : values) {
      if (!(v instanceof String s) || !pattern.matcher(s).matches()) {
        throw new Refused(MALFORMED, "agency." + where + " holds an invalid value");
      }
      out.add(s);
    }
    return List.copyOf(out);
  }

  /**
   * The directory to hold after {@code signed} arrives while this one is held: this one if
   * {@code signed} is the same document, else the newer version (docs/envelope.md §5).
   *
   * @throws Refused as {@link #verify}, {@code directory.rollback} (an older version) or
   *     {@code directory.version-conflict} (another document claiming this version)
   */
  public TrustDirectory update(byte[] signed, byte[] governanceEd25519PublicKey) throws Refused {
    TrustDirectory candidate = verify(signed, governanceEd25519PublicKey, version);
    if (candidate.version == version) {
      if (candidate.documentSha256.equals(documentSha256)) {
        return this;
      }
      throw new Refused(
          "directory.version-conflict",
          "a different directory claims version " + version + ", already in force");
    }
    return candidate;
  }

  /** The document's version. */
  public long version() {
    return version;
  }

  /** From this moment on the directory is not trusted (docs/envelope.md §5, expiry). */
  public Instant validUntil() {
    return validUntil;
  }

  /** SHA-256 (hex) of the JCS document: two documents with one digest are one document. */
  public String documentSha256() {
    return documentSha256;
  }

  /** The agency with this id, if listed (active or not). */
  public Optional<Agency> agency(String agencyId) {
    return Optional.ofNullable(agencies.get(agencyId));
  }

  /** The agency and entry of the key with this id, if listed. */
  public Optional<KeyOwner> keyOwner(String keyId) {
    return Optional.ofNullable(keyOwners.get(keyId));
  }

  /**
   * Refuse with {@code directory.expired} if the directory is past its {@code valid_until} at
   * {@code at}: its holder may have missed a revocation.
   */
  public void checkCurrent(Instant at) throws Refused {
    if (!at.isBefore(validUntil)) {
      throw new Refused(
          "directory.expired",
          "trust directory version " + version + " expired at " + validUntil
              + ": a newer signed version is needed");
    }
  }
}
