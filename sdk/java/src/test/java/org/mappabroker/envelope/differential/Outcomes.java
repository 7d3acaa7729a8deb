package org.mappabroker.envelope.differential;

import static org.mappabroker.envelope.EnvelopeVectorFile.str;

import java.io.BufferedReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.mappabroker.envelope.EnvelopeVectorFile;
import org.mappabroker.envelope.Refused;
import org.mappabroker.envelope.json.StrictJson;
import org.mappabroker.envelope.receipt.Receipt;
import org.mappabroker.envelope.receipt.ReceiptReader;
import org.mappabroker.envelope.receipt.ReceiptVectors;

/**
 * The Java side of the differential test (tests/test_differential.py): reads a JSON-lines file
 * of cases and prints, one line per case in the same order, what this library makes of each.
 *
 * <p>Usage: {@code Outcomes <vectors-dir> <cases.jsonl>}. A case is {@code {"kind":
 * "envelope"|"receipt", "value_b64": …}} with the per-vector overrides the vector files use:
 * for an envelope {@code receiver} (the agency receiving), {@code topic}, {@code record_time},
 * {@code now}, {@code directory}, {@code agreement_version}, {@code allowed_suites}, {@code seen}
 * with {@code base}; for a receipt {@code record_time}, {@code directory}, {@code ledger_key}.
 * Each is evaluated as EnvelopeVectorsTest and ReceiptVectorsTest evaluate a vector, from the
 * same harness classes (their receivers, keys, directories and defaults), except that the
 * record value is raw bytes (a vector's is text, so it cannot hold invalid UTF-8).
 *
 * <p>An outcome is a view kind (its plaintext being the published one, else
 * {@code wrong-plaintext}), {@code not-addressed}, {@code duplicate}, {@code accepted}, the
 * refusal code, or {@code crash:<ExceptionClass>} for any other exception: that is a
 * disagreement too, since the Python side never crashes on a vector. Never a plaintext.
 */
public final class Outcomes {
  private final EnvelopeVectorFile envelopes;
  private final ReceiptVectors receipts;
  private final Map<String, Map<String, Object>> valid = new LinkedHashMap<>();

  private Outcomes(EnvelopeVectorFile envelopes, ReceiptVectors receipts) {
    this.envelopes = envelopes;
    this.receipts = receipts;
    for (Map<String, Object> v : envelopes.vectors("valid")) {
      valid.put(str(v.get("name")), v);
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: Outcomes <vectors-dir> <cases.jsonl>");
      System.exit(2);
    }
    System.setProperty("mappa.vectors", args[0]);
    Outcomes outcomes = new Outcomes(EnvelopeVectorFile.load(), new ReceiptVectors());
    PrintStream out =
        new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, "UTF-8");
    try (BufferedReader lines = Files.newBufferedReader(Path.of(args[1]), StandardCharsets.UTF_8)) {
      String line;
      while ((line = lines.readLine()) != null) {
        if (!line.isBlank()) {
          out.println(outcomes.of(line));
        }
      }
    }
    out.flush();
  }

  /** The outcome of one case line; any exception but a refusal is a crash, named. */
  private String of(String line) {
    try {
      Map<String, Object> c =
          StrictJson.parseObject(line.getBytes(StandardCharsets.UTF_8), "schema.integer-range");
      byte[] value = Base64.getDecoder().decode(str(c.get("value_b64")));
      return switch (str(c.get("kind"))) {
        case "envelope" -> envelope(c, value);
        case "receipt" -> receipt(c, value);
        default -> throw new IllegalArgumentException("a case of unknown kind");
      };
    } catch (Refused refused) {
      return refused.code();
    } catch (Exception | Error e) {
      return "crash:" + e.getClass().getName();
    }
  }

  /** As EnvelopeVectorsTest's {@code outcome}: the same harness, on raw bytes. */
  private String envelope(Map<String, Object> c, byte[] value) throws Refused {
    return envelopes.outcome(c, str(c.get("receiver")), valid.get(str(c.get("base"))), value);
  }

  /** As ReceiptVectorsTest's {@code outcome}: the file's reader reads the record value. */
  private String receipt(Map<String, Object> c, byte[] value) throws Refused {
    String directory = (String) c.getOrDefault("directory", "default");
    boolean ledgerHeld = (Boolean) c.getOrDefault("ledger_key", Boolean.TRUE);
    ReceiptReader reader =
        new ReceiptReader(
            receipts.reader,
            receipts.directories.get(directory),
            ledgerHeld ? receipts.ledgerKey : null,
            receipts.sentMessages());
    // The record time is the test's own, always well formed; Instant.parse reads it as the
    // harness's ReceiptFormat.parseTime does.
    Instant recordTime =
        c.containsKey("record_time")
            ? Instant.parse(str(c.get("record_time")))
            : receipts.recordTime;
    Optional<Receipt> read = reader.read(value, recordTime);
    return read.isPresent() ? "accepted" : "not-addressed";
  }
}
