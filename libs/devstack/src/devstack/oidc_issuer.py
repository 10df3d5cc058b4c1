"""A development OIDC issuer for `make run` and the tests: discovery, JWKS and a token endpoint.

It signs RS256 access tokens for the demo organization's people and OAuth clients without any
real authentication, so it refuses to exist outside dev mode (`TEAM_DEV_MODE=1`, or an explicit
`dev_mode=True`) and the CLI binds loopback addresses only.

Token endpoint (`POST /token`, `application/x-www-form-urlencoded`):

- `grant_type=client_credentials`: the client authenticates with HTTP Basic or with
  `client_id` + `client_secret` form fields; optional `scope` (space-separated) must be a subset
  of the client's scopes, default all of them. Token: `sub` = `client_id` = the client id.
- `grant_type=password` (dev only): `username` names a demo user; **the password is ignored**
  (send any, or none). Client authentication is optional; when given it is checked and becomes
  `azp`. Optional `scope` must be among `scopes_supported`; default `openid profile email`.
  Token: `sub` (a UUID stable per username), `preferred_username`, `email`, `name`, `groups`,
  `zoneinfo`.

Errors follow RFC 6749 5.2: `{"error": ..., "error_description": ...}`, 400, or 401 for a
client that fails authentication. Tests sign anything they like with `DevIssuer.mint`.

CLI: `TEAM_DEV_MODE=1 python -m devstack.oidc_issuer --host 127.0.0.1 --port 8900
[--key-file .local/oidc-keys.json] [--audience team] [--token-lifetime 3600]`.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from devstack.demo_org import DEMO_ORG, DemoClient, DemoOrg, DemoUser
from teamkit.settings import RuntimeSettings

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_TOKEN_LIFETIME",
    "DevIssuer",
    "DevModeRequiredError",
    "InvalidScopeError",
    "SigningKey",
    "UnknownClientError",
    "UnknownUserError",
    "build_issuer_app",
    "create_issuer_app",
    "main",
    "require_dev_mode",
]

DEFAULT_AUDIENCE = "team"
DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_ISSUER_URL = "http://127.0.0.1:8900"
USER_DEFAULT_SCOPES = ("openid", "profile", "email")
# Users get a stable `sub` from their username, whatever port the issuer runs on.
_SUBJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://team.example/dev-oidc-issuer/users")
_MAX_FORM_BYTES = 8_192
_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

SigningKey = RSAKey | ECKey | OKPKey


class DevModeRequiredError(RuntimeError):
    """The dev issuer was asked to start outside dev mode."""


class UnknownUserError(LookupError):
    """No demo user has this username."""


class UnknownClientError(LookupError):
    """No demo client has this client id."""


class InvalidScopeError(ValueError):
    """A requested scope is not available to the requester."""


def require_dev_mode(dev_mode: bool | None = None) -> None:
    """Raise DevModeRequiredError unless `dev_mode` (or, when None, TEAM_DEV_MODE) is true."""
    enabled = RuntimeSettings().TEAM_DEV_MODE if dev_mode is None else dev_mode
    if not enabled:
        raise DevModeRequiredError(
            "The development OIDC issuer signs tokens for anyone who asks, so it only starts in "
            "dev mode: set TEAM_DEV_MODE=1 (or pass dev_mode=True). Use a real OIDC provider "
            "such as Keycloak outside development."
        )


class DevIssuer:
    """Keys, demo identities and token minting of the dev issuer; the app serves one of these.

    Keys are RSA 2048, `kid` = RFC 7638 thumbprint. With `key_file`, keys are loaded from it
    when it exists and written to it (mode 0600) when created or rotated, so a restarted issuer
    keeps earlier tokens valid. `hits` counts requests per path (tests assert JWKS fetches).
    """

    def __init__(
        self,
        *,
        issuer_url: str = DEFAULT_ISSUER_URL,
        org: DemoOrg = DEMO_ORG,
        audience: str = DEFAULT_AUDIENCE,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        key_file: Path | str | None = None,
        dev_mode: bool | None = None,
    ) -> None:
        require_dev_mode(dev_mode)
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive seconds")
        self.issuer_url = issuer_url.rstrip("/")
        self.org = org
        self.audience = audience
        self.token_lifetime = token_lifetime
        self.key_file = Path(key_file) if key_file is not None else None
        self.hits: Counter[str] = Counter()
        self._users = {user.username: user for user in org.users}
        self._clients = {client.client_id: client for client in org.clients}
        self._keys: dict[str, RSAKey] = {}
        self._signing_kid = ""
        if self.key_file is not None and self.key_file.exists():
            self._load_keys(self.key_file)
        else:
            self.rotate()

    # -- keys -----------------------------------------------------------------------------------

    @property
    def signing_kid(self) -> str:
        """The kid new tokens are signed with."""
        return self._signing_kid

    @property
    def signing_key(self) -> RSAKey:
        """The private key new tokens are signed with."""
        return self._keys[self._signing_kid]

    @property
    def published_kids(self) -> tuple[str, ...]:
        """The kids served in the JWKS, oldest first."""
        return tuple(self._keys)

    def rotate(self) -> str:
        """Add a fresh signing key and sign with it from now on; older keys stay published."""
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
        key.ensure_kid()
        kid = str(key.kid)
        self._keys[kid] = key
        self._signing_kid = kid
        self._save_keys()
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing key `kid`; tokens it signed stop verifying once verifiers refetch."""
        if kid == self._signing_kid:
            raise ValueError("rotate() before retiring the current signing key")
        del self._keys[kid]
        self._save_keys()

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document."""
        return {"keys": [key.as_dict(private=False) for key in self._keys.values()]}

    def _load_keys(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            keys = [JWKRegistry.import_key(item) for item in document["keys"]]
            signing_kid = str(document["signing_kid"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"cannot read dev issuer keys from {path} ({exc}); delete the file to start over"
            ) from exc
        for key in keys:
            if not isinstance(key, RSAKey) or not key.is_private:
                raise ValueError(f"{path} must hold private RSA keys only")
            key.ensure_kid()
            self._keys[str(key.kid)] = key
        if signing_kid not in self._keys:
            raise ValueError(f"{path}: signing_kid {signing_kid!r} is not among its keys")
        self._signing_kid = signing_kid

    def _save_keys(self) -> None:
        if self.key_file is None:
            return
        document = {
            "signing_kid": self._signing_kid,
            "keys": [key.as_dict(private=True) for key in self._keys.values()],
        }
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.key_file.with_name(self.key_file.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        partial.replace(self.key_file)  # atomic: a crash never leaves half a key file

    # -- identities and claims ------------------------------------------------------------------

    @property
    def scopes_supported(self) -> tuple[str, ...]:
        """The OIDC scopes plus every scope some demo client holds."""
        scopes = dict.fromkeys(USER_DEFAULT_SCOPES)
        for client in self.org.clients:
            scopes.update(dict.fromkeys(client.scopes))
        return tuple(scopes)

    def user(self, username: str) -> DemoUser:
        """The demo user `username`, or UnknownUserError."""
        try:
            return self._users[username]
        except KeyError:
            known = ", ".join(self._users)
            raise UnknownUserError(f"unknown user {username!r}; demo users: {known}") from None

    def client(self, client_id: str) -> DemoClient:
        """The demo client `client_id`, or UnknownClientError."""
        try:
            return self._clients[client_id]
        except KeyError:
            raise UnknownClientError(f"unknown client {client_id!r}") from None

    @staticmethod
    def subject_of(username: str) -> str:
        """The stable `sub` of a demo user."""
        return str(uuid.uuid5(_SUBJECT_NAMESPACE, username))

    def base_claims(
        self, subject: str, *, lifetime: int | None = None, now: int | None = None
    ) -> dict[str, Any]:
        """The registered claims of a fresh token for `subject` (iss, sub, aud, iat, nbf, exp)."""
        issued = int(time.time()) if now is None else now
        return {
            "iss": self.issuer_url,
            "sub": subject,
            "aud": self.audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + (self.token_lifetime if lifetime is None else lifetime),
            "jti": uuid.uuid4().hex,
        }

    def user_claims(
        self,
        username: str,
        *,
        scopes: Iterable[str] | None = None,
        lifetime: int | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """The claims of a demo user's access token (a plain dict: tests edit it before mint)."""
        user = self.user(username)
        granted = tuple(USER_DEFAULT_SCOPES if scopes is None else scopes)
        unknown = [scope for scope in granted if scope not in self.scopes_supported]
        if unknown:
            raise InvalidScopeError(f"scope(s) {' '.join(unknown)} are not offered by this issuer")
        claims = self.base_claims(self.subject_of(username), lifetime=lifetime)
        claims.update(
            {
                "preferred_username": user.username,
                "email": user.email,
                "email_verified": True,
                "name": user.display_name,
                "groups": list(user.groups),
                "zoneinfo": user.time_zone,
                "scope": " ".join(granted),
            }
        )
        if client_id is not None:
            claims["azp"] = client_id
        return claims

    def client_claims(
        self, client_id: str, scopes: Iterable[str] | None = None, *, lifetime: int | None = None
    ) -> dict[str, Any]:
        """The claims of a client-credentials token; `scopes` must be a subset of the client's."""
        client = self.client(client_id)
        granted = tuple(client.scopes if scopes is None else scopes)
        excess = [scope for scope in granted if scope not in client.scopes]
        if excess:
            raise InvalidScopeError(
                f"client {client_id!r} may not have scope(s) {' '.join(excess)}; "
                f"its scopes: {' '.join(client.scopes)}"
            )
        claims = self.base_claims(client_id, lifetime=lifetime)
        claims.update({"client_id": client_id, "azp": client_id, "scope": " ".join(granted)})
        return claims

    # -- signing --------------------------------------------------------------------------------

    def token_for(
        self, username: str, *, scopes: Iterable[str] | None = None, lifetime: int | None = None
    ) -> str:
        """A valid access token of demo user `username`."""
        return self.mint(self.user_claims(username, scopes=scopes, lifetime=lifetime))

    def client_token(
        self, client_id: str, scopes: Iterable[str] | None = None, *, lifetime: int | None = None
    ) -> str:
        """A valid client-credentials access token of demo client `client_id`."""
        return self.mint(self.client_claims(client_id, scopes, lifetime=lifetime))

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        header: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
        alg: str = "RS256",
        secret: bytes | None = None,
    ) -> str:
        """Sign `claims` exactly as given (no defaults added): any header, key or algorithm.

        `alg` chooses how the token is signed: an asymmetric JWS algorithm with `key` (default:
        the current signing key, whose kid goes in the header), `HS256/384/512` with `secret`
        (e.g. a public key's PEM, for key-confusion tests) or `none` (empty signature).
        `header` entries override the generated header; a None value removes the entry.
        """
        if alg != "none" and alg not in _HMAC_DIGESTS and alg not in JWSRegistry.algorithms:
            raise ValueError(f"unknown JWS algorithm {alg!r}")
        generated: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        signing_key: SigningKey | None = None
        if alg not in _HMAC_DIGESTS and alg != "none":
            signing_key = key or self.signing_key
            signing_key.ensure_kid()
            generated["kid"] = signing_key.kid
        for name, value in (header or {}).items():
            if value is None:
                generated.pop(name, None)
            else:
                generated[name] = value
        signing_input = (
            _b64(json.dumps(generated, separators=(",", ":")).encode())
            + b"."
            + _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
        )
        if alg == "none":
            signature = b""
        elif alg in _HMAC_DIGESTS:
            if secret is None:
                raise ValueError(f"{alg} needs a secret")
            signature = hmac.new(secret, signing_input, _HMAC_DIGESTS[alg]).digest()
        else:
            signature = JWSRegistry.algorithms[alg].sign(signing_input, signing_key)
        return (signing_input + b"." + _b64(signature)).decode("ascii")

    # -- documents ------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """The OpenID provider metadata document."""
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.issuer_url + "/jwks",
            "token_endpoint": self.issuer_url + "/token",
            "grant_types_supported": ["client_credentials", "password"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(self.scopes_supported),
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "preferred_username",
                "email", "email_verified", "name", "groups", "zoneinfo", "scope", "client_id",
                "azp",
            ],
        }  # fmt: skip


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# ---------------------------------------------------------------------------------------------
# HTTP app


class _OAuthError(Exception):
    def __init__(
        self, error: str, description: str, *, status: int = 400, basic_challenge: bool = False
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = basic_challenge

    def response(self) -> JSONResponse:
        headers = {"Cache-Control": "no-store"}
        if self.basic_challenge:
            headers["WWW-Authenticate"] = 'Basic realm="team-dev-issuer"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


def build_issuer_app(issuer: DevIssuer) -> FastAPI:
    """The HTTP face of `issuer`; `app.state.issuer` is the same object (rotate it there)."""
    app = FastAPI(
        title="TEAM development OIDC issuer",
        description="Dev-only token issuer for the demo organization. Never run in production.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.issuer = issuer

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> JSONResponse:
        issuer.hits["/.well-known/openid-configuration"] += 1
        return JSONResponse(issuer.discovery())

    @app.get("/jwks")
    async def jwks() -> JSONResponse:
        issuer.hits["/jwks"] += 1
        # no-store: a rotation must be visible to the next fetch, also through caches.
        return JSONResponse(issuer.jwks(), headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {
            "issuer": issuer.issuer_url,
            "users": [user.username for user in issuer.org.users],
            "clients": [client.client_id for client in issuer.org.clients],
            "get_a_token": _how_to(issuer),
        }

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        issuer.hits["/token"] += 1
        try:
            return _issue(issuer, request.headers, await request.body())
        except _OAuthError as exc:
            return exc.response()

    return app


def create_issuer_app(
    org: DemoOrg = DEMO_ORG,
    issuer_url: str = DEFAULT_ISSUER_URL,
    *,
    audience: str = DEFAULT_AUDIENCE,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    key_file: Path | str | None = None,
    dev_mode: bool | None = None,
) -> FastAPI:
    """Build a DevIssuer and its app (DevModeRequiredError outside dev mode)."""
    issuer = DevIssuer(
        issuer_url=issuer_url,
        org=org,
        audience=audience,
        token_lifetime=token_lifetime,
        key_file=key_file,
        dev_mode=dev_mode,
    )
    return build_issuer_app(issuer)


def _issue(issuer: DevIssuer, headers: Mapping[str, str], body: bytes) -> JSONResponse:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _OAuthError("invalid_request", "send the form as application/x-www-form-urlencoded")
    if len(body) > _MAX_FORM_BYTES:
        raise _OAuthError("invalid_request", f"form larger than {_MAX_FORM_BYTES} bytes")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise _OAuthError("invalid_request", "form is not UTF-8") from None
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise _OAuthError("invalid_request", f"parameter(s) sent more than once: {repeated}")
    form = {name: values[0] for name, values in parsed.items()}
    client_id = _authenticate_client(issuer, headers.get("authorization"), form)
    scope = form.get("scope")
    scopes = scope.split() if scope else None
    grant_type = form.get("grant_type")
    try:
        if grant_type == "client_credentials":
            if client_id is None:
                raise _OAuthError(
                    "invalid_client",
                    "client_credentials needs client authentication (HTTP Basic or "
                    "client_id + client_secret)",
                    status=401,
                    basic_challenge=True,
                )
            claims = issuer.client_claims(client_id, scopes)
        elif grant_type == "password":
            username = form.get("username")
            if not username:
                raise _OAuthError("invalid_request", "the password grant needs 'username'")
            # Dev only: the password is ignored; the username alone picks the demo user.
            claims = issuer.user_claims(username, scopes=scopes, client_id=client_id)
        elif grant_type is None:
            raise _OAuthError("invalid_request", "missing grant_type")
        else:
            raise _OAuthError(
                "unsupported_grant_type",
                f"grant_type {grant_type!r} is not supported; use client_credentials or password",
            )
    except UnknownUserError as exc:
        raise _OAuthError("invalid_grant", str(exc.args[0])) from None
    except InvalidScopeError as exc:
        raise _OAuthError("invalid_scope", str(exc)) from None
    access_token = issuer.mint(claims)
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": claims["exp"] - claims["iat"],
            "scope": claims["scope"],
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _authenticate_client(
    issuer: DevIssuer, authorization: str | None, form: Mapping[str, str]
) -> str | None:
    """Return the authenticated client id, None when no client authenticated, or raise."""
    basic: tuple[str, str] | None = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _OAuthError("invalid_client", "use HTTP Basic client authentication", status=401,
                              basic_challenge=True)  # fmt: skip
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _OAuthError("invalid_client", "malformed HTTP Basic credentials", status=401,
                              basic_challenge=True) from None  # fmt: skip
        name, sep, secret = decoded.partition(":")
        if not sep:
            raise _OAuthError("invalid_client", "malformed HTTP Basic credentials", status=401,
                              basic_challenge=True)  # fmt: skip
        # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
        basic = (unquote(name.replace("+", " ")), unquote(secret.replace("+", " ")))
    posted = form.get("client_id"), form.get("client_secret")
    if basic is not None and posted[1] is not None:
        raise _OAuthError("invalid_request", "use one client authentication method, not two")
    if basic is None and posted[1] is None:
        return None
    client_id, secret = basic if basic is not None else (posted[0] or "", posted[1] or "")
    try:
        client = issuer.client(client_id)
    except UnknownClientError:
        client = None
    if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
        raise _OAuthError(
            "invalid_client",
            "unknown client or wrong client secret",
            status=401,
            basic_challenge=basic is not None,
        )
    return client.client_id


def _how_to(issuer: DevIssuer) -> dict[str, str]:
    url = issuer.issuer_url + "/token"
    example_user = issuer.org.users[0].username if issuer.org.users else "alice"
    examples = {
        "user": f"curl -s -d grant_type=password -d username={example_user} {url}",
    }
    if issuer.org.clients:
        client = issuer.org.clients[0]
        examples["client"] = (
            f"curl -s -u {client.client_id}:{client.secret} -d grant_type=client_credentials {url}"
        )
    return examples


# ---------------------------------------------------------------------------------------------
# CLI


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dev issuer under uvicorn until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.oidc_issuer",
        description="Development OIDC issuer (needs TEAM_DEV_MODE=1).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--issuer-url", help="public issuer URL (default http://HOST:PORT)")
    parser.add_argument("--key-file", type=Path, help="persist signing keys here (JSON, 0600)")
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE)
    parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME)
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="bind a non-loopback address (anyone who reaches it can get any token)",
    )
    args = parser.parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        print(f"refusing to bind {args.host}: the dev issuer is loopback-only", file=sys.stderr)
        return 2
    issuer_url = args.issuer_url or f"http://{args.host}:{args.port}"
    try:
        issuer = DevIssuer(
            issuer_url=issuer_url,
            audience=args.audience,
            token_lifetime=args.token_lifetime,
            key_file=args.key_file,
        )
    except (DevModeRequiredError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"dev OIDC issuer: {issuer.issuer_url} (audience {issuer.audience!r})")
    for kind, command in _how_to(issuer).items():
        print(f"  {kind} token: {command}")
    print(f"  demo users: {', '.join(user.username for user in issuer.org.users)}", flush=True)

    uvicorn.run(build_issuer_app(issuer), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
