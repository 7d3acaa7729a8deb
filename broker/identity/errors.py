"""What the identity package raises: one kind per question a caller asks, each with
stable codes. None of their messages carries a password, a code, a secret or a
session id."""

from __future__ import annotations

from broker.errors import MappaError


class SignInRefused(MappaError):
    """A sign-in that did not succeed. Codes:

    - ``auth.failed``: the username, the password or the second factor is wrong, missing or
      malformed; never which, nor whether the username exists;
    - ``auth.locked``: the account is locked after repeated failures, until an
      administrator resets it; said whatever was presented, so a locked account is no
      oracle for its password;
    - ``auth.disabled``: the account is disabled; said only to someone who presented
      every factor right.
    """

    code = "auth.failed"


class OidcRefused(MappaError):
    """A sign-in with the organisation's identity provider (OpenID Connect) that did not
    succeed. Codes, for the log and the tests; the person is told none of them:

    - ``oidc.state``: the browser came back without the sign-in it left with (no or a
      forged or expired state cookie, or a ``state`` that is not its);
    - ``oidc.provider``: the provider could not be asked (discovery, keys, the code's
      exchange) or answered with an error, a replayed code included;
    - ``oidc.token``: the ID token does not check (signature, algorithm, issuer,
      audience, times, nonce, the username claim).

    Whether the local account may sign in is ``SignInRefused``'s to say."""

    code = "oidc.token"


class SessionRefused(MappaError):
    """A session that cannot be used: ``session.invalid`` (malformed, forged, unknown,
    ended, or its user since disabled or locked) or ``session.expired`` (idle or absolute
    timeout). Either way the person signs in again."""

    code = "session.invalid"


class CsrfRefused(MappaError):
    """A form whose CSRF token is missing or is not its session's."""

    code = "csrf.invalid"


class PasswordRefused(MappaError):
    """A new password the policy does not allow (``password.too-short``,
    ``password.too-long``, ``password.control-character``, ``password.contains-username``)."""

    code = "password.refused"


class UserRefused(MappaError):
    """An administrative act on users that cannot be done: ``users.invalid-username``,
    ``users.invalid-agency``, ``users.exists``, ``users.unknown``, ``users.disabled``,
    ``users.invalid-actor``."""

    code = "users.refused"
