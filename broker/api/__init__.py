"""The HTTP faces of the broker (FastAPI routers; thin: no policy here)."""
