package org.mappabroker.envelope;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A {@link ReplayMemory} in this process's memory: for tests and for a receiver whose inbox
 * is rebuilt on start. It forgets nothing; a long-running receiver needs a durable one that
 * forgets after the replay window.
 */
public final class InMemoryReplayMemory implements ReplayMemory {
  private final Map<List<String>, String> digests = new ConcurrentHashMap<>();

  @Override
  public String digestOf(String sender, String messageId) {
    return digests.get(List.of(sender, messageId));
  }

  @Override
  public void remember(String sender, String messageId, String digestHex) {
    digests.putIfAbsent(List.of(sender, messageId), digestHex);
  }
}
