"""The web console (a face, like the HTTP API and the CLI): server-rendered pages in the
GOV.UK Design System, for people at the agencies, the co-ordinators and the
information-governance officers.

- ``app.py``: ``console_app``, the console as an ASGI app that ``broker.api.compose``
  mounts at ``/console``: its pages, its static files at ``/console/static``, its
  "Page not found".
- ``pages.py``: the start, sign-in, sign-out and home pages; ``signing_in.py``: who is
  signed in (sessions from ``broker.identity``), role checks and CSRF-checked forms.
- ``templating.py``: the Jinja2 environment (GOV.UK Frontend's components as
  govuk-frontend-jinja's macros, autoescaped).
- ``templates/``: the layout and the pages; ``static/``: GOV.UK Frontend's build, copied
  by ``make console-assets`` from the version pinned in ``console/package-lock.json``,
  and ``console.js``.

The response headers (Content-Security-Policy and the rest) are set for the whole app by
``broker.api.headers``. The core (the rest of ``broker``) never imports this package.
"""

from broker.console.app import CONSOLE_PATH, console_app
from broker.console.signing_in import ConsoleIdentity, console_identity

__all__ = ["CONSOLE_PATH", "ConsoleIdentity", "console_app", "console_identity"]
