"""Area transfers: the case moves, routing and keys follow it (docs/transfers.md)."""
