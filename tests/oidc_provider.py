"""A minimal OpenID provider for tests, real over HTTP (served by uvicorn on 127.0.0.1):
discovery, its key set (an RSA key made with ``cryptography``), an authorization
endpoint that signs in ``TestProvider.username`` without asking, and a token endpoint
that checks the code (once only), the client's id and secret, the redirect URI and the
PKCE verifier, and answers with an ID token signed by joserfc.

It misbehaves on request (``TestProvider.misbehave``, a ``Misbehaviour``): another
issuer, another audience, an expired token, another nonce, a token signed by a key it
does not publish, one with ``alg: none`` or HMAC-signed with the client secret, or no
username claim.

    provider = TestProvider(client_id="console", client_secret=SECRET)
    async with provider.served() as issuer:
        ...   # MAPPA_OIDC_ISSUER=issuer
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.browser.conftest import serving

ID_TOKEN_SECONDS = 300


def rsa_key(kid: str) -> RSAKey:
    """A new 2048-bit RSA key, made with ``cryptography``, as a joserfc key named
    ``kid``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return RSAKey.import_key(pem, {"kid": kid, "use": "sig", "alg": "RS256"})


@functools.cache
def keys() -> tuple[RSAKey, RSAKey]:
    """The provider's key and a forger's, both named ``test-key-1``: made once a run
    (an RSA key takes a while)."""
    return rsa_key("test-key-1"), rsa_key("test-key-1")


@dataclass
class Misbehaviour:
    """What the provider gets wrong in the next ID tokens it issues (nothing, by
    default)."""

    issuer: str | None = None
    audience: str | None = None
    expired: bool = False
    nonce: str | None = None
    # Signed with a key the provider does not publish (under a published key's kid).
    foreign_key: bool = False
    alg_none: bool = False
    # HS256 under the client secret: a token anyone holding the secret could make.
    symmetric: bool = False
    no_username: bool = False


@dataclass
class Grant:
    """A code the authorization endpoint issued, and what it was issued for."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    username: str


@dataclass
class TestProvider:
    """The provider (module docstring). ``issuer`` is set once it is served."""

    __test__ = False  # not a test class, whatever its name

    client_id: str
    client_secret: str
    username: str = "h.officer"
    username_claim: str = "preferred_username"
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: keys()[0])
    # The key of a forger: same kid as ours, never published.
    foreign: RSAKey = field(default_factory=lambda: keys()[1])
    codes: dict[str, Grant] = field(default_factory=dict)
    # Each token request's outcome ("ok" or the error), for tests that count.
    token_requests: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[str]:
        """The provider under uvicorn on a free 127.0.0.1 port until the block ends;
        yields its issuer URL."""
        async with serving(self.app(), lifespan=False) as url:
            self.issuer = url
            yield url

    def app(self) -> FastAPI:
        return FastAPI(
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ],
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        wanted = {
            "response_type": "code",
            "client_id": self.client_id,
            "code_challenge_method": "S256",
        }
        if any(query.get(k) != v for k, v in wanted.items()):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if "openid" not in query.get("scope", "").split():
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        redirect_uri, state = query["redirect_uri"], query["state"]
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            challenge=query["code_challenge"],
            nonce=query["nonce"],
            username=self.username,
        )
        back = f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"
        return RedirectResponse(back, status_code=302)

    def _client_authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if not self._client_authenticated(request):
            self.token_requests.append("invalid_client")
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        # A code is good once: popped whether or not the rest checks.
        grant = self.codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or form.get("redirect_uri") != grant.redirect_uri
            or create_s256_code_challenge(verifier) != grant.challenge
        ):
            self.token_requests.append("invalid_grant")
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.token_requests.append("ok")
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(32),
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_SECONDS,
                "id_token": self.id_token(grant),
            },
            headers={"Cache-Control": "no-store"},
        )

    def id_token(self, grant: Grant) -> str:
        """The ID token for ``grant``, with whatever ``misbehave`` asks for."""
        bad = self.misbehave
        now = int(time.time())
        issued = now - 2 * ID_TOKEN_SECONDS if bad.expired else now
        claims: dict[str, Any] = {
            "iss": bad.issuer or self.issuer,
            "sub": f"subject-{grant.username}",
            "aud": bad.audience or grant.client_id,
            "iat": issued,
            "exp": issued + ID_TOKEN_SECONDS,
            "nonce": bad.nonce or grant.nonce,
            "auth_time": issued,
        }
        if not bad.no_username:
            claims[self.username_claim] = grant.username
        if bad.alg_none:
            return unsigned(claims)
        if bad.symmetric:
            secret = OctKey.import_key(self.client_secret.encode())
            return jwt.encode({"alg": "HS256"}, claims, secret)
        key = self.foreign if bad.foreign_key else self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def unsigned(claims: dict[str, Any]) -> str:
    """``claims`` as a JWT with ``alg: none`` and no signature (RFC 7519, section 6)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
