package org.mappabroker.envelope;

import java.time.Duration;
import java.util.Objects;
import java.util.Set;

/**
 * A receiving deployment's settings (docs/envelope.md §4): who receives, which suites it
 * allows (step 2), its topic namespace (step 5), clock skew tolerance and replay window
 * (steps 3 and 6), and the agreement it holds (step 9).
 *
 * <p>Build with {@link #builder(String, String, int)}; the defaults are the production ones:
 * both suites, namespace {@code mappa}, 300 s skew, a 14-day window.
 */
public record ReceiverSettings(
    String agencyId,
    Set<String> allowedSuites,
    String topicNamespace,
    Duration clockSkew,
    Duration replayWindow,
    String heldIsaId,
    int heldIsaVersion) {
  public ReceiverSettings {
    Objects.requireNonNull(agencyId);
    allowedSuites = Set.copyOf(allowedSuites);
    Objects.requireNonNull(topicNamespace);
    if (clockSkew.isNegative() || replayWindow.isNegative()) {
      throw new IllegalArgumentException("skew and window are not negative");
    }
    Objects.requireNonNull(heldIsaId);
    if (heldIsaVersion < 1) {
      throw new IllegalArgumentException("agreement versions start at 1");
    }
  }

  /** Settings for {@code agencyId} holding agreement {@code isaId} version {@code isaVersion}. */
  public static Builder builder(String agencyId, String isaId, int isaVersion) {
    return new Builder(agencyId, isaId, isaVersion);
  }

  /** A builder with the production defaults. */
  public static final class Builder {
    private final String agencyId;
    private final String isaId;
    private final int isaVersion;
    private Set<String> allowedSuites = Set.of("classic", "pq-hybrid");
    private String topicNamespace = "mappa";
    private Duration clockSkew = Duration.ofSeconds(300);
    private Duration replayWindow = Duration.ofDays(14);

    private Builder(String agencyId, String isaId, int isaVersion) {
      this.agencyId = agencyId;
      this.isaId = isaId;
      this.isaVersion = isaVersion;
    }

    public Builder allowedSuites(Set<String> suites) {
      this.allowedSuites = suites;
      return this;
    }

    public Builder topicNamespace(String namespace) {
      this.topicNamespace = namespace;
      return this;
    }

    public Builder clockSkew(Duration skew) {
      this.clockSkew = skew;
      return this;
    }

    public Builder replayWindow(Duration window) {
      this.replayWindow = window;
      return this;
    }

    public ReceiverSettings build() {
      return new ReceiverSettings(
          agencyId, allowedSuites, topicNamespace, clockSkew, replayWindow, isaId, isaVersion);
    }
  }
}
