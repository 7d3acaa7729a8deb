"""The hostile corpus: records, requests, files and command lines an attacker or a careless
agency system sends, one module per class (issue 16). Each case reproduces a finding and
asserts the class holds: refused with a clear code, dead-lettered and audited, never a
5xx, a traceback, a stuck partition or a value in clear in a log or the ledger."""
