package org.mappabroker.envelope;

import java.util.LinkedHashMap;
import java.util.Map;
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters;
import org.bouncycastle.crypto.signers.Ed25519Signer;
import org.mappabroker.envelope.crypto.Base64s;
import org.mappabroker.envelope.crypto.KeyIds;
import org.mappabroker.envelope.crypto.Pae;
import org.mappabroker.envelope.json.Jcs;
import org.mappabroker.envelope.trust.TrustDirectory;

/** Signs directory documents in tests, with the vectors' governance key or another. */
public final class Governance {
  private final Ed25519PrivateKeyParameters key;

  public Governance(byte[] seed) {
    this.key = new Ed25519PrivateKeyParameters(seed, 0);
  }

  public byte[] publicKey() {
    return key.generatePublicKey().getEncoded();
  }

  public String keyId() {
    return KeyIds.of("ed25519", publicKey());
  }

  /** The signed directory {@code {"document", "signature"}} as JSON bytes. */
  public byte[] sign(Map<String, Object> document) {
    Ed25519Signer signer = new Ed25519Signer();
    signer.init(true, key);
    byte[] message = Pae.encode(TrustDirectory.PAYLOAD_TYPE, Jcs.canonical(document));
    signer.update(message, 0, message.length);
    Map<String, Object> signature = new LinkedHashMap<>();
    signature.put("alg", "ed25519");
    signature.put("key_id", keyId());
    signature.put("signature", Base64s.encode(signer.generateSignature()));
    Map<String, Object> signed = new LinkedHashMap<>();
    signed.put("document", document);
    signed.put("signature", signature);
    return Jcs.canonical(signed);
  }
}
