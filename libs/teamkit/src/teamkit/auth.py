"""OIDC bearer authentication: who is calling, proven by a JWT from the configured issuer.

`TokenVerifier` fetches the issuer's discovery document and JWKS over HTTP (lazily, on the first
token, or eagerly with `start()`), caches the keys for `OIDC_JWKS_CACHE_SECONDS` and refetches
them once when a token names an unknown `kid` (at most every `OIDC_JWKS_MIN_REFRESH_SECONDS`).
Only the configured asymmetric algorithms are accepted, checked before any key is touched, so
`alg: none` and HS256 signed with a public key never reach signature verification. Every
rejection is an `Unauthorized` (401) whose detail says what to fix; an unreachable issuer is a
`ServiceUnavailable` (503), since retrying later can succeed.

FastAPI wiring: put the verifier on `app.state.token_verifier` (the lifespan does it) and take
`CurrentPrincipal`, `AdminPrincipal`, `AuditorPrincipal` or `Depends(require_scope(...))` in a
route. The `bearer` HTTP security scheme then appears in the generated OpenAPI document.
"""

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyTypeError,
    JoseError,
    MissingClaimError,
    UnsupportedKeyAlgorithmError,
    UnsupportedKeyUseError,
)
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from pydantic import BaseModel, ConfigDict

from teamkit.problems import Forbidden, ServiceUnavailable, Unauthorized
from teamkit.settings import OidcSettings

__all__ = [
    "AdminPrincipal",
    "AuditorPrincipal",
    "CurrentPrincipal",
    "Principal",
    "TokenVerifier",
    "bearer_scheme",
    "current_principal",
    "principal_from_claims",
    "require_admin",
    "require_auditor",
    "require_scope",
]

log = structlog.get_logger(__name__)

# Far above any real access token, far below what would cost us to parse.
MAX_TOKEN_CHARS = 16_384
_DISCOVERY_PATH = "/.well-known/openid-configuration"
_REQUIRED_CLAIMS = ("iss", "aud", "exp", "sub")


class Principal(BaseModel):
    """The authenticated caller: a person (username set) or a machine client (client_id set)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    username: str | None
    email: str | None
    name: str | None = None
    groups: tuple[str, ...] = ()
    is_admin: bool = False
    is_auditor: bool = False
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None
    claims: dict[str, Any]

    @property
    def is_client(self) -> bool:
        """True for an OAuth2 client acting for itself (client-credentials token)."""
        return self.client_id is not None

    def has_scope(self, *scopes: str) -> bool:
        """True when the token grants every one of `scopes`."""
        return all(scope in self.scopes for scope in scopes)


def principal_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> Principal:
    """Map verified claims to a Principal using the configured claim and group names.

    A token is a client-credentials token when it carries no username claim, or carries a
    `client_id` claim (Keycloak service accounts have both); its client id is `client_id`,
    else `azp`, else `sub`. Scopes come from `scope` (space-separated) and/or `scp` (list).
    """
    subject = str(claims["sub"])
    username = _optional_str(claims.get(settings.OIDC_USERNAME_CLAIM))
    client_id: str | None = None
    if username is None or "client_id" in claims:
        client_id = (
            _optional_str(claims.get("client_id")) or _optional_str(claims.get("azp")) or subject
        )
        username = None
    groups = _string_tuple(claims.get(settings.OIDC_GROUPS_CLAIM))
    scopes = set(_string_tuple(claims.get("scp")))
    scope_claim = claims.get("scope")
    if isinstance(scope_claim, str):
        scopes.update(scope_claim.split())
    else:
        scopes.update(_string_tuple(scope_claim))
    return Principal(
        subject=subject,
        username=username,
        email=_optional_str(claims.get("email")),
        name=_optional_str(claims.get("name")),
        groups=groups,
        is_admin=settings.TEAM_ADMIN_GROUP in groups,
        is_auditor=settings.TEAM_AUDITOR_GROUP in groups,
        scopes=frozenset(scopes),
        client_id=client_id,
        claims=dict(claims),
    )


class TokenVerifier:
    """Verifies bearer JWTs against one OIDC issuer; one instance per process, shared by tasks.

    Fetching is lazy: the first `verify` loads discovery and the JWKS. `start()` loads them
    eagerly (best effort: a down issuer is logged, not raised, so a service can still start and
    answer 503 until the issuer is back). `aclose()` closes the HTTP client only when the
    verifier created it; a client passed in belongs to the caller. `clock` is the monotonic clock
    behind the cache and the refresh rate limit (token times always use the wall clock).
    """

    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0))
        self._clock = clock
        self._lock = asyncio.Lock()
        self._algorithms = frozenset(settings.OIDC_ALGORITHMS)
        self._jwks_uri: str | None = None
        self._keys: dict[str | None, Key] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    @property
    def issuer(self) -> str:
        """The trusted issuer, exactly as tokens must carry it in `iss`."""
        return self.settings.OIDC_ISSUER

    @property
    def key_ids(self) -> frozenset[str | None]:
        """The kids of the currently cached signing keys (empty before the first fetch)."""
        return frozenset(self._keys)

    async def start(self) -> None:
        """Load discovery and the JWKS now; log, do not raise, when the issuer is unreachable."""
        try:
            await self._ensure_fresh()
        except ServiceUnavailable as exc:
            log.warning("auth.issuer_unavailable_at_start", issuer=self.issuer, detail=exc.detail)

    async def aclose(self) -> None:
        """Release the HTTP client if this verifier created it."""
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> Principal:
        """Return the Principal of a valid token, or raise Unauthorized saying what is wrong."""
        header = _parse_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthorized("token header has no 'alg'; send a JWT signed by the issuer")
        if alg not in self._algorithms:
            raise Unauthorized(self._alg_refusal(alg))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("token header 'kid' must be a string")
        key = await self._key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise Unauthorized(
                f"token signature does not verify with the issuer's key {_show(kid)}; "
                "the token was altered or not signed by the trusted issuer"
            ) from None
        except (InvalidKeyTypeError, UnsupportedKeyAlgorithmError, UnsupportedKeyUseError):
            raise Unauthorized(
                f"token algorithm {_show(alg)} does not fit the issuer's key {_show(kid)}"
            ) from None
        except (JoseError, ValueError, TypeError) as exc:
            log.info("auth.token_undecodable", error=type(exc).__name__)
            raise Unauthorized("token is not a well-formed signed JWT") from None
        self._check_claims(decoded.claims)
        return principal_from_claims(decoded.claims, self.settings)

    def _alg_refusal(self, alg: str) -> str:
        accepted = ", ".join(sorted(self._algorithms))
        if alg.lower() == "none":
            return f"unsigned tokens (alg 'none') are never accepted; accepted: {accepted}"
        if alg.upper().startswith("HS"):
            return (
                f"token algorithm {_show(alg)} is symmetric and never accepted; "
                f"accepted: {accepted}"
            )
        return f"token algorithm {_show(alg)} is not accepted; accepted: {accepted}"

    def _check_claims(self, claims: dict[str, Any]) -> None:
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            leeway=s.OIDC_LEEWAY_SECONDS,
            iss={"essential": True, "value": s.OIDC_ISSUER},
            aud={"essential": True, "value": s.OIDC_AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except MissingClaimError as exc:
            raise Unauthorized(
                f"token lacks required claim(s) {exc.claim.replace(',', ', ')}; "
                f"access tokens must carry {', '.join(_REQUIRED_CLAIMS)}"
            ) from None
        except ExpiredTokenError:
            raise Unauthorized(
                f"token expired at {_when(claims.get('exp'))}; get a new token"
            ) from None
        except ClaimError as exc:
            raise Unauthorized(self._claim_refusal(exc.claim, claims.get(exc.claim))) from None

    def _claim_refusal(self, claim: str, value: object) -> str:
        s = self.settings
        if claim == "iss":
            return f"token issuer {_show(value)} is not the trusted issuer {_show(s.OIDC_ISSUER)}"
        if claim == "aud":
            return f"token audience {_show(value)} does not include {_show(s.OIDC_AUDIENCE)}"
        if claim == "nbf" and _is_number(value):
            return (
                f"token is not valid before {_when(value)} (leeway {s.OIDC_LEEWAY_SECONDS}s); "
                "wait, or check the clocks of the issuer and this service"
            )
        if claim == "iat" and _is_number(value):
            return (
                f"token claims it was issued in the future, at {_when(value)} (leeway "
                f"{s.OIDC_LEEWAY_SECONDS}s); check the clocks of the issuer and this service"
            )
        return f"token claim {_show(claim)} has an invalid value {_show(value)}"

    async def _key_for(self, kid: str | None) -> Key:
        await self._ensure_fresh()
        key = self._lookup(kid)
        if key is None and kid is not None:
            await self._refresh_for(kid)
            key = self._lookup(kid)
        if key is not None:
            return key
        if kid is None:
            raise Unauthorized(
                f"token header has no 'kid' and the issuer publishes {len(self._keys)} keys; "
                "cannot tell which key signed it"
            )
        raise Unauthorized(
            f"token key id {_show(kid)} is not among the issuer's published keys; "
            "the token comes from another issuer or from a retired key: get a new token"
        )

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _ensure_fresh(self) -> None:
        if self._fetched_at is not None and not self._expired(self._fetched_at):
            return
        async with self._lock:
            if self._fetched_at is not None and not self._expired(self._fetched_at):
                return
            if self._keys and not self._may_refetch():
                return  # stale keys while the issuer is failing: retry at the refresh pace
            try:
                await self._load(discover=True)
            except ServiceUnavailable:
                if not self._keys:
                    raise
                log.warning("auth.jwks_stale", issuer=self.issuer, keys=len(self._keys))

    async def _refresh_for(self, kid: str) -> None:
        async with self._lock:
            if kid in self._keys:
                return  # another request refreshed while this one waited
            if not self._may_refetch():
                log.info("auth.jwks_refresh_throttled", kid=kid)
                return
            await self._load(discover=self._jwks_uri is None)
            log.info("auth.jwks_refreshed", kid=kid, found=kid in self._keys)

    def _expired(self, fetched_at: float) -> bool:
        return self._clock() - fetched_at >= self.settings.OIDC_JWKS_CACHE_SECONDS

    def _may_refetch(self) -> bool:
        last = self._attempted_at
        return last is None or self._clock() - last >= self.settings.OIDC_JWKS_MIN_REFRESH_SECONDS

    async def _load(self, *, discover: bool) -> None:
        self._attempted_at = self._clock()
        if discover or self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        document = await self._get_json(self._jwks_uri, what="JWKS")
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise self._unavailable("its JWKS has no 'keys' list")
        keys = _import_keys(raw_keys)
        if not keys:
            raise self._unavailable("its JWKS holds no usable signing key")
        self._keys = keys
        self._fetched_at = self._clock()

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + _DISCOVERY_PATH
        document = await self._get_json(url, what="discovery document")
        if document.get("issuer") != self.issuer:
            raise self._unavailable(
                f"its discovery document names issuer {_show(document.get('issuer'))}, "
                f"not the configured {_show(self.issuer)} (check OIDC_ISSUER)"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise self._unavailable("its discovery document has no 'jwks_uri'")
        return jwks_uri

    async def _get_json(self, url: str, *, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except httpx.HTTPStatusError as exc:
            raise self._unavailable(
                f"its {what} at {url} answered HTTP {exc.response.status_code}"
            ) from None
        except httpx.HTTPError as exc:
            raise self._unavailable(
                f"its {what} at {url} could not be fetched ({type(exc).__name__})"
            ) from None
        except ValueError:
            raise self._unavailable(f"its {what} at {url} is not JSON") from None
        if not isinstance(document, dict):
            raise self._unavailable(f"its {what} at {url} is not a JSON object")
        return document

    def _unavailable(self, reason: str) -> ServiceUnavailable:
        log.warning("auth.issuer_unavailable", issuer=self.issuer, reason=reason)
        return ServiceUnavailable(
            f"Cannot verify tokens: the identity provider {self.issuer} is unusable, {reason}. "
            "Retry shortly; an operator should check the issuer.",
            headers={"Retry-After": "5"},
        )


def _import_keys(raw_keys: list[Any]) -> dict[str | None, Key]:
    """Import a JWKS's public signing keys; symmetric, encryption and broken keys are skipped."""
    keys: dict[str | None, Key] = {}
    for raw in raw_keys:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        if raw.get("kty") not in (RSAKey.key_type, ECKey.key_type, OKPKey.key_type):
            continue  # an "oct" key in a JWKS must never become an HMAC secret
        try:
            key = JWKRegistry.import_key(raw)
            if key.is_private:  # a leaky JWKS: keep only the public half
                key = JWKRegistry.import_key(key.as_dict(private=False))
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("auth.jwk_skipped", kid=raw.get("kid"), error=type(exc).__name__)
            continue
        kid = raw.get("kid")
        keys[kid if isinstance(kid, str) else None] = key
    return keys


def _parse_header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized(f"token is longer than {MAX_TOKEN_CHARS} characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise Unauthorized(
            f"token is not a JWT: expected 3 dot-separated segments, got {len(segments)}"
        )
    try:
        padded = segments[0] + "=" * (-len(segments[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeError, binascii.Error, ValueError):
        raise Unauthorized("token header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise Unauthorized("token header is not a JSON object")
    return header


def _show(value: object, limit: int = 80) -> str:
    """Quote a token-supplied value for a detail: printable ASCII only, no double quotes.

    The detail is echoed inside the quoted WWW-Authenticate challenge, which must stay a valid
    latin-1 header value whatever a forged token contains.
    """
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "'" + "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text) + "'"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _when(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _show(value)
    try:
        stamp = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return _show(value)
    return stamp.isoformat().replace("+00:00", "Z")


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _string_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, str))
    return ()


# ---------------------------------------------------------------------------------------------
# FastAPI dependencies

bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token (JWT) from the configured OIDC issuer, audience OIDC_AUDIENCE.",
    auto_error=False,
)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Authenticate the `Authorization: Bearer` token with `app.state.token_verifier`."""
    if credentials is None:
        raise _missing_credentials(request.headers.get("Authorization"))
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.token_verifier is not set: build a TokenVerifier in lifespan")
    try:
        principal = await verifier.verify(credentials.credentials)
    except Unauthorized as exc:
        log.info("auth.token_rejected", reason=exc.detail, path=request.url.path)
        raise
    bound: dict[str, str] = {"subject": principal.subject}
    if principal.username is not None:
        bound["user"] = principal.username
    if principal.client_id is not None:
        bound["client_id"] = principal.client_id
    structlog.contextvars.bind_contextvars(**bound)
    return principal


def _missing_credentials(authorization: str | None) -> Unauthorized:
    if authorization is None or not authorization.strip():
        exc = Unauthorized(
            "no bearer token: send 'Authorization: Bearer <access token>' from the OIDC issuer",
            error="invalid_request",
        )
        # RFC 6750 3.1: a request without credentials gets a challenge without an error code.
        exc.headers["WWW-Authenticate"] = "Bearer"
        return exc
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return Unauthorized(
            f"Authorization header uses scheme {_show(scheme, 20)}; use 'Bearer <access token>'",
            error="invalid_request",
        )
    if not rest.strip():
        return Unauthorized(
            "Authorization header has an empty bearer token", error="invalid_request"
        )
    return Unauthorized("Authorization header is malformed", error="invalid_request")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    """Allow only members of the configured admin group (TEAM_ADMIN_GROUP)."""
    if not principal.is_admin:
        raise Forbidden("this needs the admin role (membership of the configured admin group)")
    return principal


async def require_auditor(principal: CurrentPrincipal) -> Principal:
    """Allow only members of the configured auditor group (TEAM_AUDITOR_GROUP)."""
    if not principal.is_auditor:
        raise Forbidden("this needs the auditor role (membership of the configured auditor group)")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
AuditorPrincipal = Annotated[Principal, Depends(require_auditor)]


def require_scope(*scopes: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Build a dependency allowing only tokens that grant every one of `scopes`.

    Scopes are what OAuth2 clients are granted; whether a person's token also needs a scope is
    the route's choice (combine with `CurrentPrincipal` checks as needed).
    """
    needed = tuple(scopes)
    if not needed:
        raise ValueError("require_scope needs at least one scope")

    async def dependency(principal: CurrentPrincipal) -> Principal:
        missing = [scope for scope in needed if scope not in principal.scopes]
        if missing:
            raise Forbidden(
                f"the token lacks scope(s) {' '.join(missing)}; request them from the issuer",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer error="insufficient_scope", scope="{" ".join(needed)}"'
                    )
                },
                required_scopes=list(needed),
            )
        return principal

    dependency.__name__ = "require_scope_" + "_".join(s.replace(".", "_") for s in needed)
    return dependency
