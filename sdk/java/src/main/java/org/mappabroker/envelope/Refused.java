package org.mappabroker.envelope;

/**
 * The one exception for every refusal this library makes.
 *
 * <p>{@link #code()} is the refusal code of docs/envelope.md or docs/receipts.md (for example
 * {@code schema.duplicate-key}); the message is one line that helps the caller act and never
 * holds personal data, key material or decrypted content.
 */
public final class Refused extends Exception {
  private static final long serialVersionUID = 1L;

  private final String code;

  /** A refusal with its spec code and a one-line reason. */
  public Refused(String code, String reason) {
    super(reason);
    this.code = code;
  }

  /** The refusal code, e.g. {@code envelope.malformed}. */
  public String code() {
    return code;
  }

  @Override
  public String toString() {
    return "Refused[" + code + "]: " + getMessage();
  }
}
