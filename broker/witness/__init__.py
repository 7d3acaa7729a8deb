"""Witnesses of the audit ledger (C2SP tlog-witness, tlog-cosignature): each cosigns a
checkpoint only once it has checked it is consistent with the last one it cosigned."""
