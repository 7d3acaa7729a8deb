"""Signing in with a force's own identity provider: the OpenID Connect authorization
code flow with PKCE, as a client (a "relying party").

The provider proves who someone is; their local account decides what they may do. The
ID token's username claim (``OidcConfig.username_claim``, ``preferred_username`` unless
configured) must name a local user exactly; that user's agency and role are the
session's (``UserStore.admit``: the account must be neither locked nor disabled).

``OidcClient`` does, with authlib's OAuth 2 client (HTTP by httpx2) and joserfc (its
JOSE library):

1. discovery: ``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be
   the configured one exactly and whose endpoints must be https (http only to this
   machine, for a test provider); kept for ``DISCOVERY_TTL``;
2. ``authorization_url``: the provider's authorization endpoint with ``response_type=
   code``, the scopes, the pending sign-in's ``state`` and ``nonce``, and the S256
   challenge of its PKCE verifier (``broker.identity.oidc_state.Pending``);
3. ``username``: exchanges the code (with the client secret, HTTP Basic, and the
   verifier), then checks the ID token, refusing each of these with ``OidcRefused``
   (``oidc.token``): a signature that does not verify under the provider's published
   keys (fetched at each sign-in, so a rotated key is picked up); an algorithm that is
   not both listed in the provider's discovery and asymmetric (so never ``none``, never
   an HMAC keyed with the client secret); ``iss`` not the issuer; ``aud`` without the
   client id (and, with several audiences, ``azp`` not the client id); no ``sub``;
   ``exp`` passed, ``iat`` or ``nbf`` in the future (each allowing ``CLOCK_LEEWAY``);
   ``nonce`` not the pending sign-in's; the username claim missing or not a string.
   A provider that cannot be asked or answers with an error, a replayed code included,
   is ``oidc.provider``.

No token, code, secret or verifier is logged or put in an error's message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.errors import ConfigurationError
from broker.files.strict import FileRefused, read_text
from broker.identity.errors import OidcRefused
from broker.identity.oidc_state import Pending
from broker.settings import Settings, is_secure_url

# The actor of the sign-ins recorded in ``user_events`` (``UserStore.admit``).
OIDC_ACTOR = "oidc"
# What an ID token may be signed with: public-key algorithms only. An HMAC one would be
# keyed with the client secret, which more than the provider holds.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Clocks of the provider and of this server drift; a token is taken this far either way.
CLOCK_LEEWAY_SECONDS = 60
DISCOVERY_TTL_SECONDS = 3600
HTTP_TIMEOUT_SECONDS = 10.0
# A discovery document, a key set, a token response: a few KiB; anything far larger is
# not one.
MAX_RESPONSE_BYTES = 256 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"
# A client secret is some tens of characters; a file far larger is not one.
MAX_CLIENT_SECRET_FILE_BYTES = 4 * 1024


@dataclass(frozen=True)
class OidcConfig:
    """The provider and this client's registration with it (``Settings.oidc_*``)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    username_claim: str = "preferred_username"
    scopes: str = "openid profile"
    # The callback's public URL; None: derived from each request.
    redirect_url: str | None = None


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The OpenID Connect configuration of ``settings``, its client secret read from
    ``oidc_client_secret_file``; None when no issuer is set (local accounts only).
    Raises ``ConfigurationError`` (``oidc.config-incomplete``) for a secret file that
    cannot be read or is empty."""
    if settings.oidc_issuer is None:
        return None
    # Settings refuses an issuer without these; checked again for mypy's sake.
    if settings.oidc_client_id is None or settings.oidc_client_secret_file is None:
        raise ConfigurationError(
            "MAPPA_OIDC_ISSUER needs MAPPA_OIDC_CLIENT_ID and MAPPA_OIDC_CLIENT_SECRET_FILE",
            code="oidc.config-incomplete",
        )
    path = settings.oidc_client_secret_file
    try:
        secret = read_text(path, max_bytes=MAX_CLIENT_SECRET_FILE_BYTES).strip()
    except FileRefused as exc:
        raise ConfigurationError(
            f"the OpenID Connect client secret file {path}: {exc.problem}",
            code="oidc.config-incomplete",
        ) from None
    if not secret:
        raise ConfigurationError(
            f"the OpenID Connect client secret file {path} is empty",
            code="oidc.config-incomplete",
        )
    return OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=secret,
        username_claim=settings.oidc_username_claim,
        scopes=settings.oidc_scopes,
        redirect_url=settings.oidc_redirect_url,
    )


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery says that the client uses."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    # The provider's ID-token algorithms that are also ``ASYMMETRIC_ALGORITHMS``.
    algorithms: frozenset[str]


def _provider_refused(why: str) -> OidcRefused:
    return OidcRefused(f"the identity provider {why}", code="oidc.provider")


def _token_refused(why: str) -> OidcRefused:
    return OidcRefused(f"the ID token {why}", code="oidc.token")


def _endpoint(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise _provider_refused(f"discovery has no {name}")
    # An endpoint may carry a query (some providers put a policy there); the scheme and
    # host are what must be secure.
    parts = urlsplit(value)
    if not is_secure_url(urlunsplit(parts._replace(query=""))):
        raise _provider_refused(f"discovery's {name} is not https")
    return value


def parse_metadata(document: object, *, issuer: str) -> ProviderMetadata:
    """The metadata in a discovery ``document`` of ``issuer``. Raises ``OidcRefused``
    (``oidc.provider``) for one that is not an object, names another issuer, lacks an
    endpoint or has one that is not https, or lists no asymmetric ID-token algorithm."""
    if not isinstance(document, dict):
        raise _provider_refused("discovery is not a JSON object")
    if document.get("issuer") != issuer:
        raise _provider_refused("discovery names another issuer")
    listed = document.get("id_token_signing_alg_values_supported")
    algorithms = (
        frozenset(a for a in listed if isinstance(a, str))
        if isinstance(listed, list)
        else frozenset()
    )
    usable = algorithms & ASYMMETRIC_ALGORITHMS
    if not usable:
        raise _provider_refused("signs ID tokens with no algorithm this service accepts")
    return ProviderMetadata(
        authorization_endpoint=_endpoint(document, "authorization_endpoint"),
        token_endpoint=_endpoint(document, "token_endpoint"),
        jwks_uri=_endpoint(document, "jwks_uri"),
        algorithms=usable,
    )


def checked_username(
    id_token: str,
    keys: KeySet,
    *,
    config: OidcConfig,
    algorithms: frozenset[str],
    nonce: str,
    now: datetime,
) -> str:
    """The username claim of ``id_token`` after the checks of the module docstring,
    with ``keys`` the provider's and ``algorithms`` those it may use. Raises
    ``OidcRefused`` (``oidc.token``)."""
    try:
        token = jwt.decode(id_token, keys, algorithms=sorted(algorithms))
        jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (JoseError, ValueError, KeyError, TypeError):
        # Which check failed is for the tests, not for a log a guesser might read.
        raise _token_refused("does not check") from None
    claims = token.claims
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != config.client_id:
        raise _token_refused("is for several audiences, and not authorised for this one")
    username = claims.get(config.username_claim)
    if not isinstance(username, str) or not username:
        raise _token_refused("has no username")
    return username


class OidcClient:
    """The client of one provider (module docstring), for the life of a server."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._metadata: tuple[float, ProviderMetadata] | None = None

    def _client(self, redirect_uri: str) -> Any:
        # authlib is untyped: its client is an httpx2.AsyncClient too.
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            scope=self.config.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    async def _get_json(self, client: httpx2.AsyncClient, url: str, what: str) -> object:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError:
            raise _provider_refused(f"did not answer for its {what}") from None
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE_BYTES:
            raise _provider_refused(f"did not give its {what}")
        try:
            return response.json()
        except ValueError:
            raise _provider_refused(f"gave a {what} that is not JSON") from None

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata, discovered at most once per ``DISCOVERY_TTL_SECONDS``.
        Raises ``OidcRefused`` (``oidc.provider``)."""
        if self._metadata is not None and time.monotonic() < self._metadata[0]:
            return self._metadata[1]
        url = self.config.issuer.rstrip("/") + DISCOVERY_PATH
        async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
            document = await self._get_json(client, url, "discovery document")
        found = parse_metadata(document, issuer=self.config.issuer)
        self._metadata = (time.monotonic() + DISCOVERY_TTL_SECONDS, found)
        return found

    async def authorization_url(self, pending: Pending, *, redirect_uri: str) -> str:
        """Where to send the browser to sign in at the provider, for ``pending``, coming
        back to ``redirect_uri``. Raises ``OidcRefused`` (``oidc.provider``)."""
        found = await self.metadata()
        async with self._client(redirect_uri) as client:
            url, _state = client.create_authorization_url(
                found.authorization_endpoint,
                state=pending.state,
                code_verifier=pending.verifier,
                nonce=pending.nonce,
            )
        return str(url)

    async def username(
        self, code: str, pending: Pending, *, redirect_uri: str, now: datetime
    ) -> str:
        """The username the provider vouches for, given the ``code`` it sent back for
        ``pending`` to ``redirect_uri``, its ID token checked at ``now`` (module
        docstring). Raises ``OidcRefused`` (``oidc.provider``, ``oidc.token``)."""
        found = await self.metadata()
        async with self._client(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    found.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                )
            except (OAuthError, httpx2.HTTPError, ValueError, KeyError, TypeError):
                raise _provider_refused("did not exchange the code") from None
            jwks = await self._get_json(client, found.jwks_uri, "keys")
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise _token_refused("is missing")
        try:
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise _provider_refused("published keys that cannot be read") from None
        return checked_username(
            id_token,
            keys,
            config=self.config,
            algorithms=found.algorithms,
            nonce=pending.nonce,
            now=now,
        )
