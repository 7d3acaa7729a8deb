"""HTTP faces over the core (FastAPI)."""
