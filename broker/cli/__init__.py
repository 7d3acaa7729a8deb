"""The `mappa` command line: a face over the core (it may use the adapters)."""
