from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar, Literal

import httpx
import pytest_asyncio
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from teamkit import outbox
from teamkit.app import ServiceSpec, create_service_app
from teamkit.auth import AdminPrincipal, CurrentPrincipal
from teamkit.events.envelope import Event, EventData
from teamkit.kafka import HandlerRegistry
from teamkit.logging import correlation_id
from teamkit.problems import Conflict
from teamkit.service_settings import ServiceSettings
from teamkit.settings import KafkaSettings, OidcSettings, RuntimeSettings
from tests.harness.postgres import MigratedDb
from tests.harness.servers import serving
from tests.harness.wait import eventually

MIGRATIONS = Path(__file__).resolve().parents[2] / "services/request/src/request_service/migrations"
PROBLEM = "application/problem+json"


class Body(BaseModel):
    name: str = Field(max_length=10)
    minutes: int = Field(gt=0)


class ShellPingData(EventData):
    note: str


class ShellPingV1(Event):
    topic: ClassVar[str] = "shell.events"
    type: Literal["shell.pinged"] = "shell.pinged"
    version: Literal[1] = 1
    source: str = "shell"
    data: ShellPingData


router = APIRouter()
registry = HandlerRegistry()
seen_correlation_ids: list[str | None] = []


@registry.on(ShellPingV1)
async def on_ping(session: AsyncSession, event: ShellPingV1) -> None:
    seen_correlation_ids.append(correlation_id.get())


@router.post("/v1/pings", status_code=202)
async def post_ping(request: Request) -> dict[str, str]:
    async with request.state.sessionmaker() as session, session.begin():
        event = await outbox.add(session, ShellPingV1(subject="p-1", data=ShellPingData(note="hi")))
    return {"event_id": str(event.id), "correlation_id": str(event.correlation_id)}


@router.post("/v1/things")
async def create_thing(body: Body) -> dict[str, str]:
    return {"name": body.name}


@router.get("/v1/conflict")
async def conflict() -> None:
    raise Conflict("the request is already approved", current_status="approved")


@router.get("/v1/boom")
async def boom() -> None:
    raise RuntimeError("SELECT secret FROM credentials -- internal detail")


@router.get("/v1/me")
async def me(principal: CurrentPrincipal) -> dict[str, str | None]:
    return {"username": principal.username}


@router.get("/v1/admin-only")
async def admin_only(principal: AdminPrincipal) -> dict[str, str | None]:
    return {"username": principal.username}


@pytest_asyncio.fixture(loop_scope="session")
async def base_url(
    migrated_database: MigratedDb, kafka_settings: KafkaSettings, oidc_issuer: object
) -> AsyncIterator[str]:
    url = await migrated_database("request")
    settings = ServiceSettings(
        DATABASE_URL=url,
        MAX_BODY_BYTES=2048,
        kafka=kafka_settings,
        oidc=OidcSettings(OIDC_ISSUER=getattr(oidc_issuer, "issuer_url")),  # noqa: B009
        runtime=RuntimeSettings(TEAM_DEV_MODE=True, LOG_FORMAT="console"),
    )
    spec = ServiceSpec(
        name="shell",
        title="Shell",
        description="test service",
        emits="shell.events",
        consumes=["shell.events"],
        registry=registry,
        migrations=MIGRATIONS,
        routers=[router],
    )
    async with serving(create_service_app(spec, settings)) as base:
        yield base


async def ready(client: httpx.AsyncClient) -> httpx.Response:
    for _ in range(200):
        answer = await client.get("/readyz")
        if answer.status_code == 200:
            return answer
        import asyncio

        await asyncio.sleep(0.1)
    return answer


class TestServiceShell:
    async def test_health_readiness_and_metrics(self, base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            answer = await ready(client)
            assert answer.status_code == 200, answer.text
            checks = answer.json()["checks"]
            assert checks["database"]["ok"]
            assert checks["broker"]["ok"]
            assert checks["consumer"]["running"]
            assert checks["consumer"]["lag"] == 0
            assert checks["outbox_relay"]["leader"]
            metrics = await client.get("/metrics")
            assert "http_requests_total" in metrics.text

    async def test_errors_are_problem_json_without_internals(self, base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            cases = {
                404: await client.get("/v1/nothing-here"),
                405: await client.delete("/v1/things"),
                409: await client.get("/v1/conflict"),
                422: await client.post("/v1/things", json={"name": "x" * 11, "minutes": 0}),
                500: await client.get("/v1/boom"),
                413: await client.post(
                    "/v1/things", content=b"x" * 5000, headers={"content-type": "application/json"}
                ),
                401: await client.get("/v1/me"),
            }
            for status, answer in cases.items():
                assert answer.status_code == status, (status, answer.text)
                assert answer.headers["content-type"].startswith(PROBLEM), status
                body = answer.json()
                assert body["status"] == status
                assert body["detail"]
                assert body["title"]
            assert cases[409].json()["current_status"] == "approved"
            errors = cases[422].json()["errors"]
            assert {tuple(e["loc"]) for e in errors} == {("body", "name"), ("body", "minutes")}
            assert "SELECT" not in cases[500].text
            assert "Traceback" not in cases[500].text
            assert cases[401].headers["www-authenticate"].startswith("Bearer")

    async def test_body_streamed_beyond_the_limit_is_413(self, base_url: str) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        async with httpx.AsyncClient(base_url=base_url) as client:
            answer = await client.post(
                "/v1/things", content=chunks(), headers={"content-type": "application/json"}
            )
        assert answer.status_code == 413
        assert answer.headers["content-type"].startswith(PROBLEM)

    async def test_correlation_id_is_echoed(self, base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            answer = await client.get("/healthz", headers={"X-Correlation-ID": "abc-123"})
        assert answer.headers["x-correlation-id"] == "abc-123"

    async def test_correlation_id_flows_from_http_through_kafka_into_the_consumer(
        self, base_url: str
    ) -> None:
        async with httpx.AsyncClient(base_url=base_url) as client:
            answer = await client.post("/v1/pings", headers={"X-Correlation-ID": "flow-42"})
        assert answer.status_code == 202
        assert answer.json()["correlation_id"] == "flow-42"

        async def consumed() -> None:
            assert "flow-42" in seen_correlation_ids

        await eventually(consumed, timeout=30)
