"""The auditor API on a seeded trail: who sees what, filters, pagination, CSV, stats, verify."""

import base64
import csv
import hashlib
import hmac
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from audit_service import chain
from teamkit import db
from teamkit.events import Event, RequestStatus
from teamkit.migrations import upgrade_to_head_async
from teamkit.settings import KafkaSettings, OidcSettings
from tests.audit.conftest import audit_settings, bearer, record, running_audit
from tests.audit.factories import RequestStory
from tests.harness.cloudtrail import serve_cloudtrail
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import PostgresForTests, service_migrations

S = RequestStatus
HMAC_KEY = "k" * 40
BASE = datetime(2026, 10, 1, 9, tzinfo=UTC)


@dataclass
class Api:
    client: httpx.AsyncClient
    stories: dict[str, RequestStory]
    events: int


def seed_stories() -> tuple[dict[str, RequestStory], list[Event]]:
    def story(i: int, **kwargs: Any) -> RequestStory:
        return RequestStory(start=BASE + timedelta(days=i), **kwargs)

    r1 = story(1, justification='=HYPERLINK("http://evil.example")', ticket="INC-1")
    r2 = story(
        2,
        account_id="222222222222",
        account_name="prod",
        permission_set="ReadOnly",
        ticket="+INC-2",
    )
    r3 = story(3, requester="carol", justification="@SUM(1)", ticket=None)
    r4 = story(4, requester="carol", ticket="-3")
    r5 = story(5, approvers=("carol",), ticket="\tINC-5")
    events: list[Event] = [*r1.happy_path_revoked()]
    events += [
        r2.submitted(0),
        r2.status(0, S.PENDING, None),
        r2.rejected(20, "bob", "not without a change ticket"),
        r2.status(20, S.REJECTED, S.PENDING),
    ]
    events += [
        r3.submitted(0),
        r3.approval_recorded(5, "bob", "fine"),
        r3.approved(5, "bob"),
        r3.scheduled(6),
        r3.granted(30),
        r3.status(30, S.IN_PROGRESS, S.SCHEDULED),
    ]
    events += [r4.submitted(0), r4.status(60, S.EXPIRED, S.PENDING)]
    events += [r5.submitted(0), r5.status(0, S.PENDING, None)]
    return {"r1": r1, "r2": r2, "r3": r3, "r4": r4, "r5": r5}, events


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api(
    postgres: PostgresForTests, kafka_bootstrap: str, oidc_settings: OidcSettings
) -> AsyncIterator[Api]:
    name = await postgres.create("audit")
    url = postgres.url(name)
    try:
        await upgrade_to_head_async(service_migrations("audit"), url)
        stories, events = seed_stories()
        engine = db.create_engine(url)
        await record(engine, events)
        await engine.dispose()
        kafka = KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
            KAFKA_SESSION_TIMEOUT_MS=2000,
            KAFKA_HEARTBEAT_INTERVAL_MS=500,
            KAFKA_TOPIC_PARTITIONS=1,
        )
        async with serve_cloudtrail() as trail:
            settings = audit_settings(
                url,
                kafka,
                oidc_settings,
                CHECKPOINT_HMAC_KEY=HMAC_KEY,
                CLOUDTRAIL_ENDPOINT_URL=trail.url,
            )
            async with running_audit(settings) as client:
                yield Api(client, stories, len(events))
    finally:
        await postgres.drop(name)


def token(issuer: RunningIssuer, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    if who.endswith("-client") or who == "ticketing":
        client_id = "audit-service" if who == "audit-service-client" else who
        return bearer(issuer.client_token(client_id))
    return bearer(issuer.token_for(who))


READ_ENDPOINTS = [
    "/v1/audit/requests",
    "/v1/audit/requests.csv",
    "/v1/audit/requests/{r1}",
    "/v1/audit/events",
    "/v1/audit/verify",
    "/v1/audit/stats",
]


class TestRoleMatrix:
    @pytest.mark.parametrize(
        ("who", "expected"),
        [
            ("erin", 200),  # auditor
            ("ticketing", 200),  # integration with team.audit.read
            ("audit-service-client", 403),  # integration without the scope
            ("dave", 403),  # admin, not auditor
            ("alice", 403),  # requester
            ("bob", 403),  # approver
            ("anonymous", 401),
        ],
    )
    async def test_auditor_endpoints(
        self, api: Api, oidc_issuer: RunningIssuer, who: str, expected: int
    ) -> None:
        for template in READ_ENDPOINTS:
            path = template.format(r1=api.stories["r1"].request_id)
            response = await api.client.get(path, headers=token(oidc_issuer, who))
            assert response.status_code == expected, (who, path, response.text)
            if expected != 200:
                assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        ("who", "request_key", "expected"),
        [
            ("erin", "r1", 200),
            ("ticketing", "r1", 200),
            ("alice", "r1", 200),  # her own request
            ("bob", "r1", 200),  # he approved it
            ("carol", "r1", 403),  # unrelated
            ("dave", "r1", 403),  # admin, unrelated
            ("audit-service-client", "r1", 403),
            ("alice", "r3", 403),  # carol's request
            ("carol", "r5", 200),  # eligible approver of r5, has not acted yet
            ("bob", "r5", 403),  # not an approver of r5
            ("anonymous", "r1", 401),
        ],
    )
    async def test_activity(
        self, api: Api, oidc_issuer: RunningIssuer, who: str, request_key: str, expected: int
    ) -> None:
        request_id = api.stories[request_key].request_id
        for suffix in ("activity", "activity.csv"):
            response = await api.client.get(
                f"/v1/audit/requests/{request_id}/{suffix}", headers=token(oidc_issuer, who)
            )
            assert response.status_code == expected, (who, request_key, response.text)

    async def test_unknown_request_is_404_for_auditors_only(
        self, api: Api, oidc_issuer: RunningIssuer
    ) -> None:
        missing = uuid.uuid4()
        erin = await api.client.get(
            f"/v1/audit/requests/{missing}/activity", headers=token(oidc_issuer, "erin")
        )
        alice = await api.client.get(
            f"/v1/audit/requests/{missing}/activity", headers=token(oidc_issuer, "alice")
        )
        assert (erin.status_code, alice.status_code) == (404, 403)


class TestBadInput:
    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/v1/audit/requests", {"colour": "red"}),
            ("/v1/audit/requests", {"limit": "0"}),
            ("/v1/audit/requests", {"limit": "501"}),
            ("/v1/audit/requests", {"status": "granted"}),
            ("/v1/audit/requests", {"cursor": "not-a-cursor"}),
            ("/v1/audit/requests", {"cursor": base64.urlsafe_b64encode(b'["x"]').decode()}),
            (
                "/v1/audit/requests",
                {"created_from": "2026-10-02T00:00:00Z", "created_to": "2026-10-01T00:00:00Z"},
            ),
            ("/v1/audit/requests", {"created_from": "2026-10-01T00:00:00"}),
            ("/v1/audit/requests", {"created_from": "yesterday"}),
            ("/v1/audit/requests", {"status_style": "team"}),
            ("/v1/audit/requests.csv", {"limit": "10"}),
            ("/v1/audit/requests.csv", {"status_style": "excel"}),
            ("/v1/audit/events", {"from": "2026-10-02T00:00:00Z", "to": "2026-10-02T00:00:00Z"}),
            ("/v1/audit/events", {"kind": "x"}),
            ("/v1/audit/events", {"limit": "1000"}),
            ("/v1/audit/verify", {"deep": "1"}),
            ("/v1/audit/stats", {"top": "0"}),
            ("/v1/audit/stats", {"created_to": "2026-13-01T00:00:00Z"}),
        ],
    )
    async def test_422(
        self, api: Api, oidc_issuer: RunningIssuer, path: str, params: dict[str, str]
    ) -> None:
        response = await api.client.get(path, params=params, headers=token(oidc_issuer, "erin"))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]


class TestSearch:
    async def search(self, api: Api, issuer: RunningIssuer, **params: Any) -> list[str]:
        response = await api.client.get(
            "/v1/audit/requests", params=params, headers=token(issuer, "erin")
        )
        assert response.status_code == 200, response.text
        by_id = {str(s.request_id): key for key, s in api.stories.items()}
        return [by_id[item["request_id"]] for item in response.json()["items"]]

    async def test_pagination_walks_newest_first(
        self, api: Api, oidc_issuer: RunningIssuer
    ) -> None:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            body = (
                await api.client.get(
                    "/v1/audit/requests", params=params, headers=token(oidc_issuer, "erin")
                )
            ).json()
            seen += [item["request_id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        expected = [str(api.stories[k].request_id) for k in ("r5", "r4", "r3", "r2", "r1")]
        assert seen == expected

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"status": "revoked"}, ["r1"]),
            ({"status": ["rejected", "expired"]}, ["r4", "r2"]),
            ({"status": "in_progress"}, ["r3"]),
            ({"requester": "alice"}, ["r5", "r2", "r1"]),
            ({"requester": "carol@example.com"}, ["r4", "r3"]),
            ({"approver": "carol"}, ["r5"]),
            ({"approver": "bob", "requester": "carol"}, ["r4", "r3"]),
            ({"account": "prod"}, ["r2"]),
            ({"account": "222222222222"}, ["r2"]),
            ({"permission_set": "ReadOnly"}, ["r2"]),
            ({"ticket": "INC-1"}, ["r1"]),
            (
                {"created_from": "2026-10-03T00:00:00Z", "created_to": "2026-10-05T00:00:00Z"},
                ["r3", "r2"],  # submitted half an hour before their start days
            ),
        ],
    )
    async def test_filters(
        self, api: Api, oidc_issuer: RunningIssuer, params: dict[str, Any], expected: list[str]
    ) -> None:
        assert await self.search(api, oidc_issuer, **params) == expected

    async def test_timeline(self, api: Api, oidc_issuer: RunningIssuer) -> None:
        r1 = api.stories["r1"]
        body = (
            await api.client.get(
                f"/v1/audit/requests/{r1.request_id}", headers=token(oidc_issuer, "erin")
            )
        ).json()
        assert body["request"]["status"] == "revoked"
        assert len(body["events"]) == 12
        assert body["events"][0]["type"] == "request.submitted"
        assert [e["position"] for e in body["events"]] == sorted(
            e["position"] for e in body["events"]
        )

    async def test_events_pagination_and_filters(
        self, api: Api, oidc_issuer: RunningIssuer
    ) -> None:
        headers = token(oidc_issuer, "erin")
        positions: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            body = (await api.client.get("/v1/audit/events", params=params, headers=headers)).json()
            positions += [e["position"] for e in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert positions == list(range(1, api.events + 1))
        rejected = (
            await api.client.get(
                "/v1/audit/events", params={"type": "request.rejected"}, headers=headers
            )
        ).json()["items"]
        assert [e["subject"] for e in rejected] == [str(api.stories["r2"].request_id)]


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class TestCsv:
    async def test_export_neutralises_formulas(self, api: Api, oidc_issuer: RunningIssuer) -> None:
        response = await api.client.get(
            "/v1/audit/requests.csv", headers=token(oidc_issuer, "erin")
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = {row["id"]: row for row in parse_csv(response.text)}
        assert len(rows) == 5
        r1 = rows[str(api.stories["r1"].request_id)]
        assert r1["justification"] == '\'=HYPERLINK("http://evil.example")'
        assert r1["status"] == "revoked"
        assert r1["email"] == "alice@example.com"
        assert r1["accountId"] == "111111111111"
        assert r1["role"] == "AdministratorAccess"
        assert r1["approver"] == "bob@example.com"
        assert r1["comment"] == "ok for the incident"
        assert r1["revoker"] == "bob@example.com"
        assert r1["revokeComment"] == "done early"
        assert r1["duration"] == "1"
        assert r1["session_duration"] == "PT1H"  # the permission set's, as TEAM
        assert r1["accessMinutes"] == "21"  # granted at +30 min, revoked at +51 min
        assert rows[str(api.stories["r2"].request_id)]["ticketNo"] == "'+INC-2"
        assert rows[str(api.stories["r3"].request_id)]["justification"] == "'@SUM(1)"
        assert rows[str(api.stories["r4"].request_id)]["ticketNo"] == "'-3"
        assert rows[str(api.stories["r5"].request_id)]["ticketNo"] == "'\tINC-5"
        for row in rows.values():
            for cell in row.values():
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell

    async def test_team_status_style_and_accept_header(
        self, api: Api, oidc_issuer: RunningIssuer
    ) -> None:
        headers = {**token(oidc_issuer, "erin"), "Accept": "text/csv"}
        response = await api.client.get(
            "/v1/audit/requests",
            params={"status": "in_progress", "status_style": "team"},
            headers=headers,
        )
        assert response.headers["content-type"].startswith("text/csv")
        rows = parse_csv(response.text)
        assert [row["status"] for row in rows] == ["in progress"]
        assert rows[0]["id"] == str(api.stories["r3"].request_id)


class TestStats:
    async def test_figures(self, api: Api, oidc_issuer: RunningIssuer) -> None:
        body = (await api.client.get("/v1/audit/stats", headers=token(oidc_issuer, "erin"))).json()
        assert body["total"] == 5
        assert body["by_status"] == {
            "revoked": 1,
            "rejected": 1,
            "in_progress": 1,
            "expired": 1,
            "pending": 1,
        }
        assert (body["approved"], body["rejected"], body["expired"]) == (2, 1, 1)
        assert body["approval_rate"] == 0.5
        assert body["approval_wait_p50_seconds"] == 300.0
        assert body["approval_wait_p90_seconds"] == 300.0
        accounts = {g["key"]: g for g in body["per_account"]}
        assert accounts["222222222222"]["total"] == 1
        assert accounts["111111111111"]["total"] == 4
        assert accounts["111111111111"]["name"] == "dev"
        users = {g["key"]: g for g in body["per_user"]}
        assert users["alice"]["by_status"] == {"revoked": 1, "rejected": 1, "pending": 1}
        ranged = (
            await api.client.get(
                "/v1/audit/stats",
                params={"created_from": "2026-10-05T00:00:00Z"},
                headers=token(oidc_issuer, "erin"),
            )
        ).json()
        assert ranged["total"] == 2
        assert ranged["approval_rate"] == 0.0


class TestVerify:
    async def test_signed_checkpoint(self, api: Api, oidc_issuer: RunningIssuer) -> None:
        body = (await api.client.get("/v1/audit/verify", headers=token(oidc_issuer, "erin"))).json()
        assert body["ok"] is True
        assert body["count"] == api.events
        checkpoint = body["checkpoint"]
        assert checkpoint["algorithm"] == "HMAC-SHA256"
        claims = {k: checkpoint[k] for k in ("count", "head_hash", "issued_at")}
        expected = hmac.new(
            HMAC_KEY.encode(), chain.canonical_json(claims).encode(), hashlib.sha256
        ).digest()
        assert base64.b64decode(checkpoint["signature"]) == expected
        assert checkpoint["head_hash"] == body["head_hash"]
