"""Files the product reads and writes, held to one rule each: ``strict`` reads what an
operator or another system hands over (agreements, directories, key files) and refuses
anything malformed in one line; ``private`` makes data files the service user's alone;
``spreadsheet`` writes CSV that a spreadsheet opens as data, never as formulas;
``migrations`` brings each database file (and the ledger's PostgreSQL database) to this
release's layout by numbered steps. It uses only ``broker.errors``,
``broker.crypto.encoding`` and ``schemas``, so every room may use it."""
