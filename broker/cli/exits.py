"""The exit statuses of `mappa`, in one place (docs/cli.md lists them; `mappa --help`
shows them). A script can rely on these; nothing else exits with another number."""

from __future__ import annotations

# It did what was asked (a step that took effect is OK, whoever applied it).
OK = 0
# Refused: by policy, by a check on the input or the deployment (one of our errors,
# ``mappa: <code>: <message>``), or a file the system would not let us read or write.
REFUSED = 1
# The command line itself is wrong: an unknown option, a missing or malformed value.
USAGE = 2
# `mappa audit verify`: the ledger does not recompute to its signed checkpoints.
TAMPERED = 3
# A service this needs (Kafka, the database) did not answer; trying again may work.
UNAVAILABLE = 4
# A fault of ours, not of the input (EX_SOFTWARE); --debug shows the traceback.
INTERNAL = 70
# Stopped by Ctrl-C (128 + SIGINT); everything started was stopped first.
INTERRUPTED = 130

EPILOG = """exit status:
  0    done (a step that took effect, whoever applied it)
  1    refused: by policy, or by a check on the input or the deployment
  2    usage: the command line is wrong
  3    tampered: `mappa audit verify` found the ledger altered
  4    unavailable: Kafka or the database did not answer; try again
  70   internal error (run with --debug for the traceback)
  130  interrupted (Ctrl-C)
"""
