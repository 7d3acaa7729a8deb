"""The only package that touches ``cryptography.hazmat``. Everything else calls it."""
