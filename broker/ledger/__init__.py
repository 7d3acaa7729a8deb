"""The audit ledger: every signed audit event, appended in arrival order."""
