"""Who a person is: named users of an agency, their roles, their factors, their sessions.

The modules, one job each (``docs/identity.md`` says how they fit together):

- ``roles``: the four roles and what each needs and may see;
- ``passwords``: Argon2id hashes, the password policy, the unknown user's equal cost;
- ``totp``: the second factor (RFC 6238), with reuse refused;
- ``database``: ``users.sqlite`` in the data directory, private, with its schema;
- ``users``: the user store: add, disable, reset, list, history, and sign-in;
- ``sessions``: server-side sessions with idle and absolute timeouts;
- ``cookies``: the signed session cookie, its key and its attributes;
- ``csrf``: checking a session's CSRF token, and the sign-in form's own;
- ``errors``: what each of them raises.

Nothing here imports a web framework: the console built on it does.
"""
