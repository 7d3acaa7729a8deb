package org.mappabroker.envelope;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.util.Arrays;
import org.mappabroker.envelope.crypto.AesGcm;
import org.mappabroker.envelope.crypto.DecryptionKey;
import org.mappabroker.envelope.crypto.Digests;
import org.mappabroker.envelope.crypto.Hkdf;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.crypto.PublicationTree;
import org.mappabroker.envelope.crypto.Signatures;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.trust.TrustDirectory;

/**
 * Receives envelopes for one agency: docs/envelope.md §4 steps 1-10, in order, the first
 * failure deciding.
 *
 * <ol>
 *   <li>Size, strict parse and shape ({@code envelope.too-large}, {@code schema.*},
 *       {@code envelope.malformed}).
 *   <li>Suite known ({@code envelope.unknown-suite}) and allowed here
 *       ({@code envelope.suite-not-allowed}).
 *   <li>Keys: the directory is current at {@code now} ({@code directory.expired}); the sender
 *       is listed ({@code directory.unknown-agency}), active ({@code directory.agency-inactive})
 *       and may send in the suite ({@code directory.suite-not-allowed}); as many keys as the
 *       suite signs with ({@code envelope.signature-missing}); each key listed
 *       ({@code directory.unknown-key}), the sender's ({@code envelope.sender-key-mismatch}), of
 *       the suite's i-th algorithm ({@code envelope.signature-missing}), not revoked at or
 *       before {@code max(created_at, append time)} ({@code directory.key-revoked}), valid at
 *       {@code created_at} ({@code directory.key-expired}); then {@code created_at} against the
 *       append time ({@code envelope.clock-skew}, {@code envelope.stale}) and no key used at or
 *       after its {@code not_after} plus the skew ({@code envelope.backdated}).
 *   <li>Signatures: exactly the suite's algorithms with the header's key ids, in order
 *       ({@code envelope.signature-missing}); each verifies over the signed bytes, or over the
 *       root the publication path leads to ({@code verification.signature-invalid}).
 *   <li>Topic binding ({@code envelope.topic-mismatch}).
 *   <li>Freshness at {@code now} ({@code envelope.clock-skew}, {@code envelope.stale}).
 *   <li>Addressed: otherwise {@link Delivery.Kind#NOT_ADDRESSED}, not a refusal.
 *   <li>Replay, by sender and message id: the same digest is {@link Delivery.Kind#DUPLICATE},
 *       another {@code envelope.replay-conflict}.
 *   <li>Agreement held ({@code policy.no-agreement}, {@code policy.agreement-version},
 *       {@code policy.agreement-superseded}).
 *   <li>Open: a key this agency holds ({@code envelope.unknown-recipient-key}); then any
 *       failure of HPKE, the data key's length, its commitment or AES-GCM is
 *       {@code decryption.failed}, "Decryption failed.", and nothing more.
 * </ol>
 *
 * <p>Step 11 (the body against its schema and rules) is the caller's.
 */
public final class EnvelopeReceiver {
  /** DSSE payload type of an envelope's signed bytes (§3.5). */
  public static final String PAYLOAD_TYPE = "application/vnd.mappa.envelope+json; version=1";

  private static final String VIEW_KEY_INFO = "mappa-envelope-v1 view-key";
  private static final String COMMITMENT_INFO = "mappa-envelope-v1 key-commitment";
  private static final String VIEW_CONTEXT = "mappa-envelope-v1 view";
  private static final String WRAP_CONTEXT = "mappa-envelope-v1 wrap";
  private static final int DATA_KEY_BYTES = 32;
  private static final String DECRYPTION_FAILED = "Decryption failed.";

  /**
   * The roles with a topic of their own in an area, {@code <ns>.<area>.dtc.<role>}: those with a
   * Duty to Co-operate (the responsible authority shares {@code ra}, the co-ordinator has {@code
   * coord}; docs/envelope.md step 5).
   */
  private static final Set<String> DUTY_TO_COOPERATE_ROLES =
      Set.of(
          "youth-offending",
          "social-care",
          "health",
          "housing",
          "jobcentre",
          "education",
          "electronic-monitoring",
          "immigration");

  private final TrustDirectory directory;
  private final ReceiverSettings settings;
  private final AgencyKeys keys;
  private final ReplayMemory memory;

  public EnvelopeReceiver(
      TrustDirectory directory, ReceiverSettings settings, AgencyKeys keys, ReplayMemory memory) {
    this.directory = Objects.requireNonNull(directory);
    this.settings = Objects.requireNonNull(settings);
    this.keys = Objects.requireNonNull(keys);
    this.memory = Objects.requireNonNull(memory);
    if (!keys.agencyId().equals(settings.agencyId())) {
      throw new IllegalArgumentException("the keys belong to another agency than the settings");
    }
  }

  /**
   * Steps 1-5 on a record value that arrived on {@code topic}, appended by the broker at
   * {@code recordTime}: shape, suite, keys (the directory's expiry judged at the receiver's
   * clock {@code now}), signatures, topic. Every reader of a topic runs these on every record.
   * Freshness (step 6) is {@link #checkFresh}: it judges only what is addressed to this agency.
   */
  public VerifiedEnvelope verify(byte[] recordValue, String topic, Instant recordTime, Instant now)
      throws Refused {
    UnverifiedEnvelope parts = EnvelopeShape.parse(recordValue);
    Suite suite = suiteOf(parts);
    List<TrustDirectory.Key> signingKeys = signingKeys(parts, suite, recordTime, now);
    byte[] signedBytes = signedBytes(parts.document());
    checkSignatures(parts, suite, signingKeys, signedBytes);
    checkTopic(parts, topic);
    return new VerifiedEnvelope(
        parts,
        suite,
        Digests.hex(Digests.sha256(signedBytes)),
        Digests.sha256(Jcs.canonical(parts.unverifiedHeader())));
  }

  /**
   * Step 6 on an envelope addressed to this agency: created at most the clock skew after the
   * receiver's clock {@code now}, and at most the replay window before it.
   */
  public void checkFresh(VerifiedEnvelope verified, Instant now) throws Refused {
    boundClaim(verified.parts().createdAt(), now);
  }

  /**
   * Steps 1-10: steps 1-5, then whether it is addressed to this agency (step 7: a record that
   * is not is {@code NOT_ADDRESSED}, judged no further), then freshness (6), replay (8),
   * agreement (9) and opening (10). Returns what was done with a record not refused; remembers
   * {@code (sender, message id) -> digest} when it opens a view. A refusal from step 6 on is
   * one a delivery receipt reports (docs/receipts.md §2); one from steps 1-5 is not.
   */
  public Delivery receive(byte[] recordValue, String topic, Instant recordTime, Instant now)
      throws Refused {
    return receive(verify(recordValue, topic, recordTime, now), now);
  }

  /**
   * Steps 6-10 on an envelope {@link #verify} passed: for a caller that verifies first (to know
   * the sender a refusal's receipt is for) without verifying twice.
   */
  public Delivery receive(VerifiedEnvelope verified, Instant now) throws Refused {
    if (!verified.addressedTo(settings.agencyId())) {
      return new Delivery(Delivery.Kind.NOT_ADDRESSED, verified, null, null);
    }
    checkFresh(verified, now);
    String previous = memory.digestOf(verified.sender(), verified.messageId());
    if (previous != null) {
      if (previous.equals(verified.digestHex())) {
        return new Delivery(Delivery.Kind.DUPLICATE, verified, null, null);
      }
      throw new Refused(
          "envelope.replay-conflict",
          "message " + verified.messageId() + " from " + verified.sender()
              + " was delivered before with other content");
    }
    checkAgreement(verified.parts());
    Opened opened = open(verified);
    memory.remember(verified.sender(), verified.messageId(), verified.digestHex());
    return new Delivery(Delivery.Kind.OPENED, verified, opened.kind, opened.plaintext);
  }

  // -- step 2 -------------------------------------------------------------------------------

  private Suite suiteOf(UnverifiedEnvelope parts) throws Refused {
    Suite suite =
        Suite.named(parts.suite())
            .orElseThrow(() -> new Refused("envelope.unknown-suite", "unknown suite"));
    if (!settings.allowedSuites().contains(suite.wireName())) {
      throw new Refused(
          "envelope.suite-not-allowed", "suite " + suite.wireName() + " is not allowed here");
    }
    return suite;
  }

  // -- step 3 -------------------------------------------------------------------------------

  private List<TrustDirectory.Key> signingKeys(
      UnverifiedEnvelope parts, Suite suite, Instant appended, Instant now) throws Refused {
    directory.checkCurrent(now);
    String sender = parts.sender();
    TrustDirectory.Agency agency =
        directory
            .agency(sender)
            .orElseThrow(
                () ->
                    new Refused(
                        "directory.unknown-agency",
                        "agency " + sender + " is not in the trust directory (version "
                            + directory.version() + ")"));
    if (!agency.active()) {
      throw new Refused("directory.agency-inactive", "agency " + sender + " is " + agency.status());
    }
    if (!agency.suites().contains(suite.wireName())) {
      throw new Refused(
          "directory.suite-not-allowed",
          sender + " may not send in suite " + suite.wireName());
    }
    List<String> algs = suite.signatureAlgs();
    if (parts.senderKeys().size() != algs.size()) {
      throw new Refused(
          "envelope.signature-missing",
          "suite " + suite.wireName() + " needs " + algs.size() + " signing keys");
    }
    Instant created = parts.createdAt();
    // Revocation is judged at the later of the claim and the broker's append time, so a
    // stolen key cannot sign "in the past".
    Instant revocationAt = created.isAfter(appended) ? created : appended;
    List<TrustDirectory.Key> found = new ArrayList<>();
    for (int i = 0; i < algs.size(); i++) {
      String keyId = parts.senderKeys().get(i);
      TrustDirectory.KeyOwner owner =
          directory
              .keyOwner(keyId)
              .orElseThrow(
                  () ->
                      new Refused(
                          "directory.unknown-key",
                          "signing key " + keyId + " is not in the trust directory"));
      if (!owner.agency().agencyId().equals(sender)) {
        throw new Refused(
            "envelope.sender-key-mismatch",
            "message claims sender " + sender + " but names a key of "
                + owner.agency().agencyId());
      }
      TrustDirectory.Key key = owner.key();
      if (!key.alg().equals(algs.get(i))) {
        throw new Refused(
            "envelope.signature-missing",
            "key " + keyId + " is " + key.alg() + ", suite needs " + algs.get(i));
      }
      if (key.revokedAt() != null && !revocationAt.isBefore(key.revokedAt())) {
        throw new Refused(
            "directory.key-revoked", "signing key " + keyId + " was revoked at " + key.revokedAt());
      }
      if (created.isBefore(key.notBefore()) || !created.isBefore(key.notAfter())) {
        throw new Refused(
            "directory.key-expired", "signing key " + keyId + " was not valid at " + created);
      }
      found.add(key);
    }
    boundClaim(created, appended);
    Duration skew = settings.clockSkew();
    for (TrustDirectory.Key key : found) {
      if (!appended.isBefore(key.notAfter().plus(skew))) {
        throw new Refused(
            "envelope.backdated",
            "signing key " + key.keyId() + " was valid until " + key.notAfter()
                + ", but the broker appended this message at " + appended);
      }
    }
    return found;
  }

  /**
   * A claimed creation time against a clock (the append time at step 3, the receiver's at
   * step 6): at most the skew after it, at most the replay window before it.
   */
  private void boundClaim(Instant created, Instant at) throws Refused {
    if (Duration.between(at, created).compareTo(settings.clockSkew()) > 0) {
      throw new Refused(
          "envelope.clock-skew",
          "message claims creation at " + created + ", more than "
              + settings.clockSkew().toSeconds() + "s after " + at);
    }
    if (Duration.between(created, at).compareTo(settings.replayWindow()) > 0) {
      throw new Refused(
          "envelope.stale",
          "message claims creation at " + created + ", more than the replay window before "
              + at + "; ask the sender to re-send");
    }
  }

  // -- step 4 -------------------------------------------------------------------------------

  /** {@code PAE(PAYLOAD_TYPE, JCS({"header", "recipients", "views"}))} (§3.5). */
  static byte[] signedBytes(Map<String, Object> document) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("header", document.get("header"));
    body.put("recipients", document.get("recipients"));
    body.put("views", document.get("views"));
    return Pae.encode(PAYLOAD_TYPE, Jcs.canonical(body));
  }

  private static void checkSignatures(
      UnverifiedEnvelope parts, Suite suite, List<TrustDirectory.Key> keys, byte[] signedBytes)
      throws Refused {
    List<UnverifiedEnvelope.SignatureEntry> signatures = parts.signatures();
    boolean asNamed = signatures.size() == keys.size();
    for (int i = 0; asNamed && i < keys.size(); i++) {
      asNamed =
          signatures.get(i).alg().equals(suite.signatureAlgs().get(i))
              && signatures.get(i).keyId().equals(keys.get(i).keyId());
    }
    if (!asNamed) {
      throw new Refused(
          "envelope.signature-missing",
          "suite " + suite.wireName() + " needs signatures by " + suite.signatureAlgs()
              + " keys named in the header");
    }
    byte[] message = signedBytes;
    UnverifiedEnvelope.Publication publication = parts.publication();
    if (publication != null) {
      // A path that leads anywhere but the signed root makes another root, whose signatures
      // then fail: verification.signature-invalid.
      byte[] root =
          PublicationTree.rootFromPath(
              PublicationTree.leafHash(signedBytes),
              publication.index(),
              publication.size(),
              publication.path());
      message = PublicationTree.rootSignedBytes(root, publication.size());
    }
    for (int i = 0; i < keys.size(); i++) {
      TrustDirectory.Key key = keys.get(i);
      Signatures.verify(key.alg(), key.publicKey(), message, signatures.get(i).signature());
    }
  }

  // -- step 5 -------------------------------------------------------------------------------

  private void checkTopic(UnverifiedEnvelope parts, String topic) throws Refused {
    if (!parts.topic().equals(topic) || !topicInArea(topic, parts.area())) {
      throw new Refused(
          "envelope.topic-mismatch",
          "envelope for " + parts.topic() + " (area " + parts.area() + ") arrived on " + topic);
    }
  }

  /**
   * {@code <ns>.<area>.<scope>} with scope {@code ra}, {@code coord} or {@code dtc.<role>}. The
   * transfer topic is not an area's: the co-ordination unit's transfer desk reads it by rules of
   * its own (docs/transfers.md), and this library does not.
   */
  private boolean topicInArea(String topic, String area) {
    String prefix = settings.topicNamespace() + "." + area + ".";
    if (!topic.startsWith(prefix)) {
      return false;
    }
    String scope = topic.substring(prefix.length());
    return scope.equals("ra")
        || scope.equals("coord")
        || (scope.startsWith("dtc.") && DUTY_TO_COOPERATE_ROLES.contains(scope.substring(4)));
  }

  // -- step 9 -------------------------------------------------------------------------------

  private void checkAgreement(UnverifiedEnvelope parts) throws Refused {
    if (!parts.isaId().equals(settings.heldIsaId())) {
      throw new Refused(
          "policy.no-agreement",
          "message was shared under another agreement than the one this agency holds");
    }
    long held = settings.heldIsaVersion();
    if (parts.isaVersion() > held) {
      throw new Refused(
          "policy.agreement-version",
          "message was shared under agreement version " + parts.isaVersion() + "; this agency "
              + "holds version " + held + " and cannot judge it yet");
    }
    if (parts.isaVersion() < held) {
      throw new Refused(
          "policy.agreement-superseded",
          "message was shared under agreement version " + parts.isaVersion()
              + ", superseded by version " + held + " here");
    }
  }

  // -- step 10 ------------------------------------------------------------------------------

  private record Opened(String kind, byte[] plaintext) {}

  private Opened open(VerifiedEnvelope verified) throws Refused {
    UnverifiedEnvelope parts = verified.parts();
    String agency = settings.agencyId();
    UnverifiedEnvelope.Recipient entry =
        parts.recipients().stream().filter(r -> r.agency().equals(agency)).findFirst().get();
    Suite suite = verified.suite();
    Optional<DecryptionKey> held = keys.decryptionKey(entry.keyId());
    if (held.isEmpty() || !held.get().alg().equals(suite.kemKeyAlg())) {
      throw new Refused(
          "envelope.unknown-recipient-key",
          "wrapped for key " + entry.keyId() + ", which " + agency + " does not hold");
    }
    UnverifiedEnvelope.View view =
        parts.views().stream().filter(v -> v.viewId() == entry.viewId()).findFirst().get();
    byte[] h = verified.headerSha256();
    String hHex = Digests.hex(h);
    try {
      if (entry.wrappedKey().length != suite.wrappedKeyBytes()) {
        throw new InvalidCipherTextException("wrapped key length");
      }
      Map<String, Object> info = new LinkedHashMap<>();
      info.put("agency", agency);
      info.put("context", WRAP_CONTEXT);
      info.put("header_sha256", hHex);
      info.put("key_id", entry.keyId());
      info.put("view_id", entry.viewId());
      byte[] dataKey = held.get().open(entry.wrappedKey(), Jcs.canonical(info));
      if (dataKey.length != DATA_KEY_BYTES
          || !Arrays.constantTimeAreEqual(
              Hkdf.sha256(dataKey, h, ascii(COMMITMENT_INFO), 32), view.keyCommitment())) {
        throw new InvalidCipherTextException("commitment");
      }
      Map<String, Object> aad = new LinkedHashMap<>();
      aad.put("context", VIEW_CONTEXT);
      aad.put("header_sha256", hHex);
      aad.put("kind", view.kind());
      aad.put("view_id", view.viewId());
      byte[] plaintext =
          AesGcm.decrypt(
              Hkdf.sha256(dataKey, h, ascii(VIEW_KEY_INFO), 32),
              view.nonce(),
              view.ciphertext(),
              Jcs.canonical(aad));
      return new Opened(view.kind(), plaintext);
    } catch (InvalidCipherTextException | RuntimeException e) {
      // One message for every cause: which step failed would be an oracle.
      throw new Refused("decryption.failed", DECRYPTION_FAILED);
    }
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }
}
