"""One adapter per agency kind: the agency's own record formats to canonical messages and back.

Adapters use ``broker`` (the gateway does the security); the core never imports them.
"""
