package org.mappabroker.envelope.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.mappabroker.envelope.Refused;

class Base64sTest {
  @ParameterizedTest
  @ValueSource(strings = {"AA=", "AAAAA", "AA==AA==", "A===", "AA AA", "AA-_", "AAA\n", "QQ==="})
  void strictRefusesWhatPythonsValidatingDecoderRefuses(String text) {
    assertEquals("c", assertThrows(Refused.class, () -> Base64s.strict(text, "c")).code());
  }

  @Test
  void strictAcceptsPaddedBase64AndNonZeroPaddingBits() throws Refused {
    assertArrayEquals(new byte[] {0x41}, Base64s.strict("QQ==", "c"));
    assertArrayEquals(new byte[] {0x41}, Base64s.strict("QR==", "c"));
    assertArrayEquals(new byte[0], Base64s.strict("", "c"));
    assertEquals("schema.base64", assertThrows(Refused.class, () -> Base64s.strict("QQ")).code());
  }

  @Test
  void canonicalRefusesNonZeroPaddingBits() throws Refused {
    assertArrayEquals(new byte[] {0x41}, Base64s.canonical("QQ==", "c"));
    assertArrayEquals(new byte[] {0x41, 0x42}, Base64s.canonical("QUI=", "c"));
    assertThrows(Refused.class, () -> Base64s.canonical("QR==", "c"));
    assertThrows(Refused.class, () -> Base64s.canonical("QUJ=", "c"));
  }

  @Test
  void paeAndKeyIdsAreTheSpecs() {
    assertArrayEquals(
        "DSSEv1 4 type 3 abc".getBytes(StandardCharsets.US_ASCII),
        Pae.encode("type", "abc".getBytes(StandardCharsets.US_ASCII)));
    // governance_key_id of the vectors from governance_public_key
    assertEquals(
        "cb96034ad05aead42d2fa00b27e9a2f8",
        KeyIds.of("ed25519",
            java.util.Base64.getDecoder().decode("TDO32ZTsW0m96ZfaBHiyoI9AVf3zLJBpHlIeCam6Abo=")));
  }
}
