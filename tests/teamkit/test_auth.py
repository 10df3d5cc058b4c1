import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Depends, FastAPI
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

from devstack.net import free_port
from devstack.oidc_issuer import (
    DevIssuer,
    DevModeRequiredError,
    create_issuer_app,
    main,
)
from teamkit.auth import (
    AdminPrincipal,
    AuditorPrincipal,
    CurrentPrincipal,
    TokenVerifier,
    principal_from_claims,
    require_scope,
)
from teamkit.problems import PROBLEM_JSON, install_problem_handlers
from teamkit.settings import OidcSettings
from tests.harness.oidc import RunningIssuer, serve_issuer


class FakeClock:
    """The verifier's monotonic clock (cache and refresh pacing); token times stay real."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        body = principal.model_dump(mode="json", exclude={"claims"})
        body["is_client"] = principal.is_client
        body["log_context"] = structlog.contextvars.get_contextvars()
        return body

    @app.get("/admin")
    async def admin(principal: AdminPrincipal) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/audit")
    async def audit(principal: AuditorPrincipal) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/scoped", dependencies=[Depends(require_scope("team.audit.read"))])
    async def scoped() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _clean_log_context() -> Iterator[None]:
    # ASGITransport runs the app in the test's task, so bound contextvars would outlive it.
    yield
    structlog.contextvars.clear_contextvars()


async def started_api(
    settings: OidcSettings, clock: FakeClock
) -> tuple[httpx.AsyncClient, TokenVerifier, httpx.AsyncClient]:
    outbound = httpx.AsyncClient(timeout=5.0)
    verifier = TokenVerifier(settings, outbound, clock=clock)
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(verifier)), base_url="http://api.test"
    )
    return api, verifier, outbound


@pytest.fixture
async def api(oidc_issuer: RunningIssuer, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    client, verifier, outbound = await started_api(oidc_issuer.settings(), clock)
    async with client, outbound:
        yield client
    await verifier.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, *fragments: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"].startswith("Bearer")
    body: dict[str, Any] = response.json()
    assert body["status"] == 401
    assert "Traceback" not in body["detail"]
    for fragment in fragments:
        assert fragment.lower() in body["detail"].lower(), body["detail"]
    return body


def b64_raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64(document: object) -> str:
    return b64_raw(json.dumps(document).encode())


async def password_token(issuer: RunningIssuer, username: str) -> str:
    async with httpx.AsyncClient(base_url=issuer.issuer_url) as http:
        answer = await http.post(
            "/token", data={"grant_type": "password", "username": username, "password": "x"}
        )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


class TestMissingOrMalformedCredentials:
    async def test_no_token(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/me")
        assert_unauthorized(response, "no bearer token")
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        ("authorization", "fragment"),
        [
            ("Basic YWxpY2U6eA==", "scheme"),
            ("Bearer", "empty bearer token"),
            ("Bearer ", "empty bearer token"),
        ],
    )
    async def test_malformed_header(
        self, api: httpx.AsyncClient, authorization: str, fragment: str
    ) -> None:
        response = await api.get("/me", headers={"Authorization": authorization})
        assert_unauthorized(response, fragment)
        assert 'error="invalid_request"' in response.headers["www-authenticate"]

    @pytest.mark.parametrize(
        ("token", "fragment"),
        [
            ("garbage", "3 dot-separated segments, got 1"),
            ("a.b", "got 2"),
            ("a.b.c.d", "got 4"),
            ("!!!.e30.sig", "not base64url-encoded json"),
            (f"{b64([1])}.e30.sig", "not a json object"),
            (f"{b64({'typ': 'JWT'})}.e30.sig", "no 'alg'"),
            (f"{b64({'alg': 'RS256', 'kid': 7})}.e30.sig", "'kid' must be a string"),
            ("x" * 20_000, "longer than"),
        ],
    )
    async def test_malformed_token(self, api: httpx.AsyncClient, token: str, fragment: str) -> None:
        body = assert_unauthorized(await api.get("/me", headers=bearer(token)), fragment)
        assert body["type"].endswith("/unauthorized")

    async def test_known_kid_but_garbage_payload(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        header = {"alg": "RS256", "kid": oidc_issuer.issuer.signing_kid}
        unsigned = f"{b64(header)}.{b64_raw(b'not json')}".encode()
        signature = JWSRegistry.algorithms["RS256"].sign(unsigned, oidc_issuer.issuer.signing_key)
        token = f"{unsigned.decode()}.{b64_raw(signature)}"
        assert_unauthorized(await api.get("/me", headers=bearer(token)), "not a well-formed")


class TestSignatureAndAlgorithm:
    async def test_signed_by_another_key_with_the_same_kid(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        impostor = RSAKey.generate_key(2048)
        claims = oidc_issuer.issuer.user_claims("dave")
        token = oidc_issuer.mint(
            claims, key=impostor, header={"kid": oidc_issuer.issuer.signing_kid}
        )
        assert_unauthorized(
            await api.get("/me", headers=bearer(token)), "signature does not verify"
        )

    async def test_tampered_payload(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        header, _, signature = oidc_issuer.token_for("alice").split(".")
        forged = b64(oidc_issuer.issuer.user_claims("dave"))
        token = f"{header}.{forged}.{signature}"
        assert_unauthorized(
            await api.get("/me", headers=bearer(token)), "signature does not verify"
        )

    @pytest.mark.parametrize("with_kid", [False, True])
    async def test_alg_none(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer, with_kid: bool
    ) -> None:
        header = {"kid": oidc_issuer.issuer.signing_kid} if with_kid else None
        token = oidc_issuer.mint(oidc_issuer.issuer.user_claims("dave"), alg="none", header=header)
        assert token.endswith(".")
        assert_unauthorized(await api.get("/me", headers=bearer(token)), "alg 'none'")

    async def test_hs256_signed_with_the_public_key_pem(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        public_pem = oidc_issuer.issuer.signing_key.as_pem(private=False)
        token = oidc_issuer.mint(
            oidc_issuer.issuer.user_claims("dave"),
            alg="HS256",
            secret=public_pem,
            header={"kid": oidc_issuer.issuer.signing_kid},
        )
        assert_unauthorized(await api.get("/me", headers=bearer(token)), "'HS256' is symmetric")

    async def test_unconfigured_asymmetric_algorithm(
        self, oidc_issuer: RunningIssuer, clock: FakeClock
    ) -> None:
        settings = oidc_issuer.settings(OIDC_ALGORITHMS=["ES256"])
        client, verifier, outbound = await started_api(settings, clock)
        async with client, outbound:
            token = oidc_issuer.token_for("alice")  # RS256, genuinely signed
            response = await client.get("/me", headers=bearer(token))
        assert_unauthorized(response, "'RS256' is not accepted", "accepted: ES256")
        assert verifier.key_ids == frozenset()  # refused before any key was fetched

    async def test_algorithm_that_does_not_fit_the_key(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        ec_key = ECKey.generate_key("P-256")
        token = oidc_issuer.mint(
            oidc_issuer.issuer.user_claims("dave"),
            alg="ES256",
            key=ec_key,
            header={"kid": oidc_issuer.issuer.signing_kid},
        )
        assert_unauthorized(await api.get("/me", headers=bearer(token)), "does not fit")


class TestClaims:
    @staticmethod
    async def call(api: httpx.AsyncClient, issuer: RunningIssuer, **changes: Any) -> httpx.Response:
        claims = issuer.issuer.user_claims("alice")
        for name, value in changes.items():
            if value is None:
                del claims[name]
            else:
                claims[name] = value
        return await api.get("/me", headers=bearer(issuer.mint(claims)))

    async def test_wrong_issuer(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        response = await self.call(api, oidc_issuer, iss="https://evil.example")
        assert_unauthorized(response, "issuer 'https://evil.example' is not the trusted issuer")

    async def test_wrong_audience(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        response = await self.call(api, oidc_issuer, aud="other-app")
        assert_unauthorized(response, "audience 'other-app' does not include 'team'")

    async def test_audience_list_containing_ours(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, aud=["other-app", "team"])
        assert response.status_code == 200, response.text

    async def test_expired(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        exp = int(time.time()) - 120
        response = await self.call(api, oidc_issuer, exp=exp, iat=exp - 60, nbf=exp - 60)
        body = assert_unauthorized(response, "expired at")
        assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(exp)) in body["detail"]
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    async def test_expired_within_leeway_is_accepted(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, exp=int(time.time()) - 10)
        assert response.status_code == 200, response.text

    async def test_not_before_beyond_leeway(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, nbf=int(time.time()) + 300)
        assert_unauthorized(response, "not valid before", "leeway 30s")

    async def test_not_before_within_leeway_is_accepted(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        now = int(time.time())
        response = await self.call(api, oidc_issuer, nbf=now + 10, iat=now + 10)
        assert response.status_code == 200, response.text

    async def test_issued_in_the_future(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, iat=int(time.time()) + 300)
        assert_unauthorized(response, "issued in the future")

    @pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
    async def test_missing_required_claim(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer, claim: str
    ) -> None:
        response = await self.call(api, oidc_issuer, **{claim: None})
        assert_unauthorized(response, f"lacks required claim(s) {claim}")

    async def test_non_numeric_exp(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, exp="tomorrow")
        assert_unauthorized(response, "'exp'")

    async def test_hostile_claim_values_stay_a_valid_header(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        response = await self.call(api, oidc_issuer, iss='evil"\\\u00e9\u2603\r\nX-Injected: 1')
        body = assert_unauthorized(response, "is not the trusted issuer")
        assert "x-injected" not in response.headers
        assert '"' not in body["detail"]


class TestKeyDiscovery:
    async def test_unknown_kid_refreshes_once_within_the_rate_limit(
        self, oidc_issuer: RunningIssuer, clock: FakeClock
    ) -> None:
        settings = oidc_issuer.settings(OIDC_JWKS_MIN_REFRESH_SECONDS=60)
        client, verifier, outbound = await started_api(settings, clock)
        claims = oidc_issuer.issuer.user_claims("alice")
        async with client, outbound:
            assert (await client.get("/me", headers=bearer(oidc_issuer.mint(claims)))).is_success
            before = oidc_issuer.jwks_hits
            clock.advance(61)

            unknown = oidc_issuer.mint(claims, header={"kid": "unknown-1"})
            response = await client.get("/me", headers=bearer(unknown))
            assert_unauthorized(response, "key id 'unknown-1' is not among")
            assert oidc_issuer.jwks_hits == before + 1

            other = oidc_issuer.mint(claims, header={"kid": "unknown-2"})
            assert_unauthorized(await client.get("/me", headers=bearer(other)), "unknown-2")
            assert oidc_issuer.jwks_hits == before + 1  # rate limited: no second fetch

            clock.advance(61)
            assert_unauthorized(await client.get("/me", headers=bearer(other)), "unknown-2")
            assert oidc_issuer.jwks_hits == before + 2
        await verifier.aclose()

    async def test_cold_verifier_fetches_once_for_an_unknown_kid(
        self, oidc_issuer: RunningIssuer, clock: FakeClock
    ) -> None:
        client, _, outbound = await started_api(oidc_issuer.settings(), clock)
        token = oidc_issuer.mint(oidc_issuer.issuer.user_claims("alice"), header={"kid": "nope"})
        before = (oidc_issuer.discovery_hits, oidc_issuer.jwks_hits)
        async with client, outbound:
            assert_unauthorized(await client.get("/me", headers=bearer(token)), "'nope'")
        assert (oidc_issuer.discovery_hits, oidc_issuer.jwks_hits) == (before[0] + 1, before[1] + 1)

    async def test_keys_are_cached_then_refetched_after_the_cache_time(
        self, oidc_issuer: RunningIssuer, clock: FakeClock
    ) -> None:
        settings = oidc_issuer.settings(OIDC_JWKS_CACHE_SECONDS=100)
        client, _, outbound = await started_api(settings, clock)
        async with client, outbound:
            headers = bearer(oidc_issuer.token_for("alice"))
            assert (await client.get("/me", headers=headers)).is_success
            before = (oidc_issuer.discovery_hits, oidc_issuer.jwks_hits)
            for _ in range(3):
                assert (await client.get("/me", headers=headers)).is_success
            assert (oidc_issuer.discovery_hits, oidc_issuer.jwks_hits) == before
            clock.advance(101)
            assert (await client.get("/me", headers=headers)).is_success
            after = (oidc_issuer.discovery_hits, oidc_issuer.jwks_hits)
        assert after == (before[0] + 1, before[1] + 1)

    async def test_key_rotation(self, private_oidc_issuer: RunningIssuer, clock: FakeClock) -> None:
        issuer = private_oidc_issuer
        settings = issuer.settings(OIDC_JWKS_MIN_REFRESH_SECONDS=60)
        client, _, outbound = await started_api(settings, clock)
        async with client, outbound:
            old_token = issuer.token_for("bob")
            assert (await client.get("/me", headers=bearer(old_token))).is_success
            old_kid = issuer.issuer.signing_kid

            new_kid = issuer.issuer.rotate()
            new_token = issuer.token_for("bob")
            assert (
                json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"]
                == new_kid
            )

            # Within the refresh interval the new kid is not fetched yet.
            before = issuer.jwks_hits
            assert_unauthorized(await client.get("/me", headers=bearer(new_token)), new_kid)
            assert issuer.jwks_hits == before

            clock.advance(61)
            response = await client.get("/me", headers=bearer(new_token))
            assert response.status_code == 200, response.text
            assert response.json()["username"] == "bob"
            assert issuer.jwks_hits == before + 1
            # The old key is still published, so tokens it signed keep working.
            assert (await client.get("/me", headers=bearer(old_token))).is_success

            issuer.issuer.retire(old_kid)
            clock.advance(61)
            assert (await client.get("/me", headers=bearer(old_token))).is_success  # cached
            assert issuer.jwks_hits == before + 1
            # An unknown kid only triggers a refetch; a cached retired key expires with the cache.
            clock.advance(settings.OIDC_JWKS_CACHE_SECONDS)
            assert_unauthorized(await client.get("/me", headers=bearer(old_token)), old_kid)
            assert (await client.get("/me", headers=bearer(new_token))).is_success

    async def test_stale_keys_are_used_while_the_issuer_is_down(self, clock: FakeClock) -> None:
        cache_seconds = 100
        async with serve_issuer() as issuer:
            settings = issuer.settings(OIDC_JWKS_CACHE_SECONDS=cache_seconds)
            client, _, outbound = await started_api(settings, clock)
            token = issuer.token_for("carol")
            async with client, outbound:
                assert (await client.get("/me", headers=bearer(token))).is_success
                await issuer.stop()
                clock.advance(cache_seconds + 1)
                response = await client.get("/me", headers=bearer(token))
        assert response.status_code == 200, response.text

    async def test_issuer_down_is_503(self, oidc_issuer: RunningIssuer, clock: FakeClock) -> None:
        settings = OidcSettings(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
        client, _, outbound = await started_api(settings, clock)
        async with client, outbound:
            response = await client.get("/me", headers=bearer(oidc_issuer.token_for("alice")))
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        body = response.json()
        assert body["type"].endswith("/unavailable")
        assert "could not be fetched (ConnectError)" in body["detail"]
        assert response.headers["retry-after"] == "5"

    async def test_discovery_naming_another_issuer_is_503(
        self, oidc_issuer: RunningIssuer, clock: FakeClock
    ) -> None:
        settings = oidc_issuer.settings(OIDC_ISSUER=oidc_issuer.issuer_url + "/")
        client, _, outbound = await started_api(settings, clock)
        async with client, outbound:
            response = await client.get("/me", headers=bearer(oidc_issuer.token_for("alice")))
        assert response.status_code == 503, response.text
        assert "check OIDC_ISSUER" in response.json()["detail"]

    async def test_start_warms_the_cache_and_tolerates_a_down_issuer(
        self, oidc_issuer: RunningIssuer
    ) -> None:
        warm = TokenVerifier(oidc_issuer.settings())
        await warm.start()
        assert oidc_issuer.issuer.signing_kid in warm.key_ids
        await warm.aclose()
        down = TokenVerifier(OidcSettings(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}"))
        await down.start()  # logs, does not raise
        assert down.key_ids == frozenset()
        await down.aclose()


class TestPrincipal:
    async def test_demo_user_from_the_token_endpoint(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        token = await password_token(oidc_issuer, "alice")
        response = await api.get("/me", headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["subject"] == DevIssuer.subject_of("alice")
        assert body["username"] == "alice"
        assert body["email"] == "alice@example.com"
        assert body["name"] == "Alice Requester"
        assert body["groups"] == ["TEAM-Users"]
        assert (body["is_admin"], body["is_auditor"], body["is_client"]) == (False, False, False)
        assert body["client_id"] is None
        assert sorted(body["scopes"]) == ["email", "openid", "profile"]
        assert body["log_context"]["user"] == "alice"
        assert "client_id" not in body["log_context"]

    async def test_admin(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        token = await password_token(oidc_issuer, "dave")
        body = (await api.get("/me", headers=bearer(token))).json()
        assert (body["is_admin"], body["is_auditor"]) == (True, False)
        assert (await api.get("/admin", headers=bearer(token))).status_code == 200
        refused = await api.get("/audit", headers=bearer(token))
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert "auditor role" in refused.json()["detail"]

    async def test_auditor(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        token = oidc_issuer.token_for("erin")
        body = (await api.get("/me", headers=bearer(token))).json()
        assert (body["is_admin"], body["is_auditor"]) == (False, True)
        assert (await api.get("/audit", headers=bearer(token))).status_code == 200
        refused = await api.get("/admin", headers=bearer(token))
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/forbidden")

    async def test_client_credentials(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        async with httpx.AsyncClient(base_url=oidc_issuer.issuer_url) as http:
            answer = await http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "team.audit.read"},
                auth=("ticketing", "dev-ticketing-secret"),
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "Bearer"
        token = answer.json()["access_token"]
        body = (await api.get("/me", headers=bearer(token))).json()
        assert body["client_id"] == "ticketing"
        assert body["subject"] == "ticketing"
        assert body["username"] is None
        assert body["is_client"] is True
        assert body["scopes"] == ["team.audit.read"]
        assert body["log_context"]["client_id"] == "ticketing"
        assert (await api.get("/scoped", headers=bearer(token))).json() == {"ok": True}

    async def test_missing_scope_is_403(
        self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer
    ) -> None:
        token = oidc_issuer.client_token("ticketing", ["team.requests.write"])
        response = await api.get("/scoped", headers=bearer(token))
        assert response.status_code == 403
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert response.json()["required_scopes"] == ["team.audit.read"]

    async def test_scp_list_claim(self, api: httpx.AsyncClient, oidc_issuer: RunningIssuer) -> None:
        claims = oidc_issuer.issuer.client_claims("ticketing")
        del claims["scope"], claims["client_id"]
        claims["scp"] = ["team.audit.read", "team.requests.write"]
        body = (await api.get("/me", headers=bearer(oidc_issuer.mint(claims)))).json()
        assert sorted(body["scopes"]) == ["team.audit.read", "team.requests.write"]
        assert body["client_id"] == "ticketing"  # from azp

    def test_configured_group_and_claim_names(self) -> None:
        settings = OidcSettings(
            TEAM_ADMIN_GROUP="ops", TEAM_AUDITOR_GROUP="sox", OIDC_GROUPS_CLAIM="roles"
        )
        claims = {"sub": "u1", "preferred_username": "u", "roles": ["ops", "sox"], "groups": []}
        principal = principal_from_claims(claims, settings)
        assert principal.groups == ("ops", "sox")
        assert (principal.is_admin, principal.is_auditor, principal.is_client) == (
            True,
            True,
            False,
        )

    def test_service_account_with_username_and_client_id_is_a_client(self) -> None:
        claims = {
            "sub": "0b1c",
            "preferred_username": "service-account-ticketing",
            "client_id": "ticketing",
            "scope": "team.requests.write profile",
        }
        principal = principal_from_claims(claims, OidcSettings())
        assert principal.is_client
        assert principal.username is None
        assert principal.client_id == "ticketing"
        assert principal.has_scope("team.requests.write", "profile")
        assert not principal.has_scope("team.audit.read")


class TestOpenApi:
    def test_bearer_scheme_is_declared(self) -> None:
        app = make_app(TokenVerifier(OidcSettings(), httpx.AsyncClient()))
        spec = app.openapi()
        scheme = spec["components"]["securitySchemes"]["bearer"]
        assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
            "http",
            "bearer",
            "JWT",
        )
        assert spec["paths"]["/me"]["get"]["security"] == [{"bearer": []}]
        assert spec["paths"]["/scoped"]["get"]["security"] == [{"bearer": []}]


class TestDevIssuer:
    def test_refuses_without_dev_mode(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TEAM_DEV_MODE", raising=False)
        with pytest.raises(DevModeRequiredError, match="TEAM_DEV_MODE=1"):
            DevIssuer()
        with pytest.raises(DevModeRequiredError):
            create_issuer_app()
        with pytest.raises(DevModeRequiredError):
            DevIssuer(dev_mode=False)
        monkeypatch.setenv("TEAM_DEV_MODE", "0")
        with pytest.raises(DevModeRequiredError):
            DevIssuer()
        monkeypatch.setenv("TEAM_DEV_MODE", "1")
        assert DevIssuer().signing_kid

    def test_cli_refuses_without_dev_mode_or_off_loopback(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("TEAM_DEV_MODE", raising=False)
        assert main(["--port", str(free_port())]) == 2
        assert "TEAM_DEV_MODE=1" in capsys.readouterr().err
        monkeypatch.setenv("TEAM_DEV_MODE", "1")
        assert main(["--host", "0.0.0.0", "--port", str(free_port())]) == 2  # noqa: S104
        assert "loopback-only" in capsys.readouterr().err

    def test_key_file_survives_restarts_and_rotation(self, tmp_path: Path) -> None:
        key_file = tmp_path / "keys" / "oidc.json"
        first = DevIssuer(key_file=key_file, dev_mode=True)
        assert key_file.stat().st_mode & 0o777 == 0o600
        again = DevIssuer(key_file=key_file, dev_mode=True)
        assert again.signing_kid == first.signing_kid
        assert again.jwks() == first.jwks()
        new_kid = again.rotate()
        third = DevIssuer(key_file=key_file, dev_mode=True)
        assert third.signing_kid == new_kid
        assert third.published_kids == (first.signing_kid, new_kid)
        assert all("d" not in key for key in third.jwks()["keys"])  # public halves only

    async def test_discovery_document(self, oidc_issuer: RunningIssuer) -> None:
        async with httpx.AsyncClient() as http:
            answer = await http.get(oidc_issuer.issuer_url + "/.well-known/openid-configuration")
            document = answer.json()
            jwks = (await http.get(document["jwks_uri"])).json()
        assert document["issuer"] == oidc_issuer.issuer_url
        assert document["token_endpoint"] == oidc_issuer.issuer_url + "/token"
        assert document["id_token_signing_alg_values_supported"] == ["RS256"]
        assert set(document["grant_types_supported"]) == {"client_credentials", "password"}
        assert [key["kid"] for key in jwks["keys"]] == [oidc_issuer.issuer.signing_kid]
        assert jwks["keys"][0]["kty"] == "RSA"
        assert "d" not in jwks["keys"][0]

    @pytest.mark.parametrize(
        ("data", "auth", "status", "error"),
        [
            ({"grant_type": "client_credentials"}, ("ticketing", "wrong"), 401, "invalid_client"),
            ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client"),
            ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
            (
                {"grant_type": "client_credentials", "scope": "team.policies.admin"},
                ("ticketing", "dev-ticketing-secret"),
                400,
                "invalid_scope",
            ),
            ({"grant_type": "password", "username": "mallory"}, None, 400, "invalid_grant"),
            ({"grant_type": "password"}, None, 400, "invalid_request"),
            ({"grant_type": "authorization_code"}, None, 400, "unsupported_grant_type"),
            ({}, None, 400, "invalid_request"),
        ],
    )
    async def test_token_endpoint_errors(
        self,
        oidc_issuer: RunningIssuer,
        data: dict[str, str],
        auth: tuple[str, str] | None,
        status: int,
        error: str,
    ) -> None:
        async with httpx.AsyncClient(base_url=oidc_issuer.issuer_url) as http:
            basic = httpx.BasicAuth(*auth) if auth else httpx.USE_CLIENT_DEFAULT
            answer = await http.post("/token", data=data, auth=basic)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error
        assert answer.json()["error_description"]

    async def test_token_endpoint_client_secret_post_and_json_refused(
        self, oidc_issuer: RunningIssuer
    ) -> None:
        async with httpx.AsyncClient(base_url=oidc_issuer.issuer_url) as http:
            posted = await http.post(
                "/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "request-service",
                    "client_secret": "dev-request-secret",
                },
            )
            as_json = await http.post("/token", json={"grant_type": "client_credentials"})
        assert posted.status_code == 200, posted.text
        assert posted.json()["scope"] == "team.policy.evaluate team.directory.read"
        assert as_json.status_code == 400
        assert as_json.json()["error"] == "invalid_request"

    def test_user_token_claims(self, oidc_issuer: RunningIssuer) -> None:
        claims = oidc_issuer.issuer.user_claims("carol")
        assert claims["iss"] == oidc_issuer.issuer_url
        assert claims["aud"] == "team"
        assert claims["exp"] - claims["iat"] == 3600
        assert claims["nbf"] == claims["iat"]
        assert claims["groups"] == ["TEAM-Users", "TEAM-Approvers-Production"]
        assert claims["sub"] == DevIssuer.subject_of("carol") != DevIssuer.subject_of("bob")
