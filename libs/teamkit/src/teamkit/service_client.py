"""Calls between services: OAuth2 client-credentials tokens from the OIDC issuer, cached."""

import asyncio
import time
from collections.abc import AsyncGenerator

import httpx

from teamkit.problems import ServiceUnavailable


class ClientCredentials(httpx.Auth):
    """An httpx auth flow that adds a bearer token obtained with client credentials.

    The token endpoint is read from the issuer's discovery document; a token is reused until a
    minute before it expires, and fetched again once after a 401.
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_endpoint: str | None = None
        self._lock = asyncio.Lock()

    async def token(self, *, force: bool = False) -> str:
        """A valid access token (fetched when missing, near expiry, or forced)."""
        async with self._lock:
            if not force and self._token and time.monotonic() < self._expires_at - 60:
                return self._token
            try:
                if self._token_endpoint is None:
                    discovery = await self._http.get(
                        f"{self._issuer}/.well-known/openid-configuration"
                    )
                    discovery.raise_for_status()
                    self._token_endpoint = str(discovery.json()["token_endpoint"])
                form = {"grant_type": "client_credentials"}
                if self._scope:
                    form["scope"] = self._scope
                answer = await self._http.post(
                    self._token_endpoint, data=form, auth=(self._client_id, self._secret)
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(
                    f"cannot obtain a service token from {self._issuer}: {exc!r}"
                ) from exc
            if answer.status_code != 200:
                raise ServiceUnavailable(
                    f"the issuer refused client {self._client_id}: HTTP {answer.status_code}"
                )
            body = answer.json()
            self._token = str(body["access_token"])
            self._expires_at = time.monotonic() + float(body.get("expires_in", 300))
            return self._token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the cached token; on 401 refetch it once and resend."""
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.token(force=True)}"
            yield request
