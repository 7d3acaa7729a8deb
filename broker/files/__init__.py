"""Files the product reads and writes, held to one rule each: ``strict`` reads what an
operator or another system hands over (agreements, directories, key files) and refuses
anything malformed in one line; ``private`` makes data files the service user's alone;
``spreadsheet`` writes CSV that a spreadsheet opens as data, never as formulas. It uses
only ``broker.errors`` and ``broker.crypto.encoding``, so every room may use it."""
