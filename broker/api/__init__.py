"""The HTTP API (a face, like the CLI): FastAPI app, credentials, error mapping.

The core (the rest of ``broker``) never imports this package.
"""

from broker.api.app import create_app
from broker.api.auth import require_agency, require_officer

__all__ = ["create_app", "require_agency", "require_officer"]
