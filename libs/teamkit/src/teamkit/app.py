"""`create_service_app()`: the lifespan, health, metrics and error handling every service shares."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
import structlog
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from teamkit import db
from teamkit.auth import TokenVerifier
from teamkit.events.topics import dead_letter_topic
from teamkit.kafka import (
    ConsumerRunner,
    HandlerRegistry,
    broker_reachable,
    create_producer,
    ensure_topics,
)
from teamkit.logging import CorrelationIdMiddleware, configure_logging
from teamkit.metrics import ServiceMetrics
from teamkit.migrations import upgrade_to_head_async
from teamkit.outbox import OutboxRelay
from teamkit.problems import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA_REF,
    PayloadTooLarge,
    Problem,
    install_problem_handlers,
    problem_response,
    problem_responses,
)
from teamkit.service_settings import ServiceSettings

log = structlog.get_logger(__name__)

ExtraLifespan = Callable[["ServiceState", AsyncExitStack], Awaitable[None]]
#: A readiness probe of a service's own: returns a dict with at least `ok`.
ReadyCheck = Callable[[Request], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ServiceSpec:
    """What makes one service: its name, topics, handlers, routers and migrations."""

    name: str
    title: str
    description: str
    emits: str | None
    consumes: Sequence[str]
    migrations: Path
    routers: Sequence[APIRouter] = ()
    registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    openapi_tags: Sequence[dict[str, str]] = ()
    version: str = "0.1.0"
    extra_lifespan: ExtraLifespan | None = None
    ready_checks: Mapping[str, ReadyCheck] = field(default_factory=dict)


class ServiceState(TypedDict):
    """Lifespan state, reachable as `request.state.<key>` in routes."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    producer: AIOKafkaProducer
    token_verifier: TokenVerifier
    relay: OutboxRelay
    consumer: ConsumerRunner | None
    metrics: ServiceMetrics
    extras: dict[str, Any]


async def _start_producer(producer: AIOKafkaProducer, *, attempts: int = 60) -> None:
    # The broker may come up after the service (compose, make run): keep trying for a while.
    for attempt in range(1, attempts + 1):
        try:
            await producer.start()
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("kafka.producer_start_retry", attempt=attempt, error=repr(exc))
            await asyncio.sleep(1.0)


def _cancel_on_exit(stack: AsyncExitStack, task: "asyncio.Task[None]") -> None:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(cancel)


def _lifespan(
    spec: ServiceSpec, settings: ServiceSettings, metrics: ServiceMetrics
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[ServiceState]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ServiceState]:
        async with AsyncExitStack() as stack:
            if settings.MIGRATE_ON_START:
                await upgrade_to_head_async(spec.migrations, settings.DATABASE_URL)
            engine = db.create_engine(settings.DATABASE_URL, settings.db)
            stack.push_async_callback(engine.dispose)
            sessionmaker = db.create_sessionmaker(engine)
            http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            stack.push_async_callback(http.aclose)
            verifier = TokenVerifier(settings.oidc, http)
            app.state.token_verifier = verifier

            await ensure_topics(
                settings.kafka,
                [
                    *([spec.emits] if spec.emits else []),
                    dead_letter_topic(spec.name),
                    *spec.consumes,
                ],
                client_id=spec.name,
            )
            producer = create_producer(settings.kafka, client_id=spec.name)
            await _start_producer(producer)
            stack.push_async_callback(producer.stop)

            relay = OutboxRelay(
                service=spec.name,
                engine=engine,
                sessionmaker=sessionmaker,
                producer=producer,
                topic_prefix=settings.kafka.KAFKA_TOPIC_PREFIX,
                batch_size=settings.OUTBOX_BATCH_SIZE,
                poll_interval=settings.OUTBOX_POLL_SECONDS,
                retention=timedelta(hours=settings.OUTBOX_RETENTION_HOURS),
            )
            _cancel_on_exit(stack, asyncio.create_task(relay.run(), name=f"{spec.name}-relay"))

            consumer: ConsumerRunner | None = None
            if spec.consumes:
                consumer = ConsumerRunner(
                    group=spec.name,
                    topics=list(spec.consumes),
                    registry=spec.registry,
                    sessionmaker=sessionmaker,
                    settings=settings.kafka,
                    metrics=metrics,
                )
                _cancel_on_exit(
                    stack, asyncio.create_task(consumer.run(), name=f"{spec.name}-consumer")
                )

            state = ServiceState(
                settings=settings,
                engine=engine,
                sessionmaker=sessionmaker,
                http=http,
                producer=producer,
                token_verifier=verifier,
                relay=relay,
                consumer=consumer,
                metrics=metrics,
                extras={},
            )
            if spec.extra_lifespan is not None:
                await spec.extra_lifespan(state, stack)
            log.info("service.started", service=spec.name, port=settings.PORT)
            yield state
            log.info("service.stopping", service=spec.name)

    return lifespan


class BodySizeLimit:
    """Reject request bodies above a bound with 413 before a handler reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, answering 413 once the body passes the bound."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                413,
                f"The body is {int(declared)} bytes; at most {self.max_bytes} are accepted.",
                type_=PayloadTooLarge.type,
                title=PayloadTooLarge.title,
            )
            await response(scope, receive, send)
            return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer 413 now and tell the app the client went away; whatever the app
                    # tries to send afterwards is dropped by guarded_send.
                    rejected = True
                    response = problem_response(
                        413,
                        f"The body exceeds {self.max_bytes} bytes.",
                        type_=PayloadTooLarge.type,
                        title=PayloadTooLarge.title,
                    )
                    await response(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


class RequestMetrics:
    """Count every HTTP answer and time it, by route template, method and status."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call through, recording it once the app has answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, observed_send)
        if status is None:  # the app raised before answering: the outer handler answers 500
            return
        # The router stores the matched route in the (shared) scope.
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.metrics.http_requests.labels(template, method, str(status)).inc()
        self.metrics.http_latency.labels(template, method).observe(time.perf_counter() - started)


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """Build a service's FastAPI app; nothing connects until the lifespan starts."""
    configure_logging(
        service=spec.name, fmt=settings.runtime.LOG_FORMAT, level=settings.runtime.LOG_LEVEL
    )
    metrics = ServiceMetrics()
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=_lifespan(spec, settings, metrics),
        openapi_tags=[dict(tag) for tag in spec.openapi_tags] or None,
    )
    app.state.spec = spec
    app.state.metrics = metrics
    _install_openapi(app, issuer=settings.oidc.OIDC_ISSUER)
    install_problem_handlers(app)
    # Pure ASGI middleware, innermost first (the last added runs first): each
    # `@app.middleware("http")` layer cost a task, a body stream and a response copy per call.
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.MAX_BODY_BYTES)
    app.include_router(health_router())
    for router in spec.routers:
        app.include_router(router)
    return app


OIDC_SCHEME = "oidc"
_OPERATIONS_TAG = {
    "name": "operations",
    "description": "Liveness, readiness (dependency checks, consumer lag) and Prometheus metrics.",
}
#: Problems any operation that takes a bearer token can answer (the issuer may be unreachable).
_SECURED_PROBLEMS = (401, 503)


def _install_openapi(app: FastAPI, *, issuer: str) -> None:
    """Wrap `app.openapi` so the document is finished once, then cached as FastAPI does."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        finish_openapi(document, issuer=issuer)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def finish_openapi(document: dict[str, Any], *, issuer: str) -> None:
    """Make a FastAPI document fit for client generation, in place.

    Adds the shared `Problem` schema, turns FastAPI's default 422 (`HTTPValidationError`, which
    this API never sends) into a problem+json answer, declares 401/503 problems on every secured
    operation that does not already, gives every secured operation's error statuses declared
    without a body the Problem body, adds an `openIdConnect` scheme as an alternative to the
    `bearer` one, and describes the `operations` tag.
    """
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}

    schemes = components.setdefault("securitySchemes", {})
    if "bearer" in schemes:
        schemes[OIDC_SCHEME] = {
            "type": "openIdConnect",
            "openIdConnectUrl": issuer.rstrip("/") + "/.well-known/openid-configuration",
            "description": "The same access token as `bearer`, described by the issuer's "
            "discovery document (authorization code for people, client credentials for "
            "integrations).",
        }
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            validation = responses.get("422")
            if validation is not None and "application/json" in validation.get("content", {}):
                validation["content"] = dict(problem_content)
                validation["description"] = problem_responses(422)[422]["description"]
            security: list[dict[str, list[str]]] = operation.get("security", [])
            if {"bearer": []} in security:
                if OIDC_SCHEME in schemes and {OIDC_SCHEME: []} not in security:
                    security.append({OIDC_SCHEME: []})
                for status, entry in problem_responses(*_SECURED_PROBLEMS).items():
                    responses.setdefault(str(status), entry)
                # Errors of API routes are always problem+json: a declared status without a
                # body schema (a bare `{"description": ...}`) gets the Problem one.
                for status, entry in responses.items():
                    if status[0] in "45" and not entry.get("content"):
                        entry["content"] = dict(problem_content)
            operation["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            schemas.pop(unused, None)
    tags: list[dict[str, Any]] = document.setdefault("tags", [])
    if not any(tag.get("name") == "operations" for tag in tags):
        tags.append(dict(_OPERATIONS_TAG))


def health_router() -> APIRouter:
    """`/healthz` (alive), `/readyz` (dependencies) and `/metrics` (Prometheus)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", operation_id="healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        """Answers 200 while the process serves HTTP."""
        return {"status": "ok"}

    @router.get(
        "/readyz",
        operation_id="readyz",
        summary="Readiness",
        responses={503: {"description": "A dependency is not ready (see `checks`)."}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Database reachable, broker reachable, relay and consumer running, with consumer lag."""
        state = request.state
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(db.ping(state.engine), 2.0)
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        checks["broker"] = {"ok": await broker_reachable(state.producer)}
        relay: OutboxRelay = state.relay
        checks["outbox_relay"] = {"ok": True, **relay.status()}
        consumer: ConsumerRunner | None = state.consumer
        if consumer is not None:
            checks["consumer"] = {"ok": consumer.running, **consumer.status()}
        spec: ServiceSpec = request.app.state.spec
        for name, check in spec.ready_checks.items():
            checks[name] = await check(request)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get(
        "/metrics", operation_id="metrics", summary="Prometheus metrics", response_class=Response
    )
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition of this service's metrics."""
        service_metrics: ServiceMetrics = request.app.state.metrics
        return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
