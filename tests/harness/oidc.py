"""The dev OIDC issuer over real HTTP on a free loopback port, for every test that needs tokens.

`oidc_issuer` (session) is shared and must never be rotated; a test that rotates or stops an
issuer takes `private_oidc_issuer` or enters `serve_issuer()` itself.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from devstack.demo_org import DEMO_ORG, DemoOrg
from devstack.oidc_issuer import DevIssuer, SigningKey, build_issuer_app
from teamkit.settings import OidcSettings

__all__ = ["RunningIssuer", "serve_issuer"]


@dataclass(frozen=True)
class RunningIssuer:
    """A DevIssuer reachable at `issuer_url`, with shortcuts for tokens and settings."""

    issuer: DevIssuer
    issuer_url: str
    _server: uvicorn.Server = field(repr=False)
    _task: "asyncio.Task[None]" = field(repr=False)

    async def stop(self) -> None:
        """Stop serving now (the issuer is down afterwards); idempotent."""
        self._server.should_exit = True
        await self._task

    def token_for(self, username: str, *, scopes: Iterable[str] | None = None) -> str:
        """A valid access token of a demo user."""
        return self.issuer.token_for(username, scopes=scopes)

    def client_token(self, client_id: str, scopes: Iterable[str] | None = None) -> str:
        """A valid client-credentials access token of a demo client."""
        return self.issuer.client_token(client_id, scopes)

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        header: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
        alg: str = "RS256",
        secret: bytes | None = None,
    ) -> str:
        """Sign arbitrary claims and header (see DevIssuer.mint)."""
        return self.issuer.mint(claims, header=header, key=key, alg=alg, secret=secret)

    def settings(self, **overrides: Any) -> OidcSettings:
        """OidcSettings pointing at this issuer (explicit values win over the environment)."""
        values: dict[str, Any] = {
            "OIDC_ISSUER": self.issuer_url,
            "OIDC_AUDIENCE": self.issuer.audience,
        }
        values.update(overrides)
        return OidcSettings(**values)

    @property
    def jwks_hits(self) -> int:
        """How many times the JWKS endpoint has been fetched."""
        return self.issuer.hits["/jwks"]

    @property
    def discovery_hits(self) -> int:
        """How many times the discovery document has been fetched."""
        return self.issuer.hits["/.well-known/openid-configuration"]


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pytest owns SIGINT/SIGTERM; an embedded server must not swallow Ctrl-C.
        yield


@contextlib.asynccontextmanager
async def serve_issuer(
    *, org: DemoOrg = DEMO_ORG, audience: str = "team", token_lifetime: int = 3600
) -> AsyncIterator[RunningIssuer]:
    """Run a fresh DevIssuer under uvicorn on this loop until the block exits."""
    # Binding port 0 ourselves and handing uvicorn the socket avoids a pick-then-bind race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    issuer = DevIssuer(
        issuer_url=f"http://127.0.0.1:{port}",
        org=org,
        audience=audience,
        token_lifetime=token_lifetime,
        dev_mode=True,
    )
    config = uvicorn.Config(
        build_issuer_app(issuer), lifespan="off", log_level="warning", access_log=False
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"oidc-issuer-{port}")
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()  # re-raises the startup error
                    raise RuntimeError("the OIDC issuer stopped before it started")
                await asyncio.sleep(0.01)
        yield RunningIssuer(issuer, issuer.issuer_url, server, task)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def oidc_issuer() -> AsyncIterator[RunningIssuer]:
    """The shared dev issuer of the session (never rotate it)."""
    async with serve_issuer() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def private_oidc_issuer() -> AsyncIterator[RunningIssuer]:
    """A dev issuer of this test alone: rotate, retire or stop it freely."""
    async with serve_issuer() as running:
        yield running


@pytest.fixture(scope="session")
def oidc_settings(oidc_issuer: RunningIssuer) -> OidcSettings:
    """OidcSettings for services under test, pointing at the shared issuer."""
    return oidc_issuer.settings()
