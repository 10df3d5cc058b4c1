"""Request API: `POST /v1/requests` and `GET /v1/requests` beside a bare single-insert endpoint.

Four child processes serve (issue 9: load generators run apart from the services): the dev OIDC
issuer (`python -m devstack.oidc_issuer`), the policy contract stub (`python -m
bench.policy_stub_server`, decisions "pending, one approval needed"), the request service
(`python -m request_service`, its own database, Kafka relay running) and the bare baseline
(`python -m bench.bare_insert_app`: FastAPI + asyncpg, one INSERT, no auth). This process only
generates load, with httpx on loopback:

- **fixed arrival rate, open loop**: request i is sent at t0 + i/rate whether or not earlier
  ones answered; latency is measured from that scheduled time (no coordinated omission);
  bounded by count and by a deadline;
- **saturation, closed loop**: `CONCURRENCY` clients send back to back for a few seconds; the
  completions per second are the capacity of each endpoint on this machine, the ratio that
  shows what the request path costs beyond one insert.

Every submission differs (its own account id, round-robin over the demo users), so none hits
the duplicate-pending 409. Run alone: `uv run python -m bench.run --only request_api [--quick]`.
"""

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.child_services import BASE_ENV, child, python_module
from bench.environment import BenchEnv
from bench.results import Figure, percentile
from devstack.demo_org import DEMO_ORG
from devstack.net import free_port

BENCH = "request_api"
USERS = tuple(user.username for user in DEMO_ORG.users)
CLIENT_SECRETS = {c.client_id: c.secret for c in DEMO_ORG.clients}
CONCURRENCY = 16

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Plan:
    rate: float
    seconds: float
    get_rate: float
    get_seconds: float
    saturation_seconds: float


FULL = Plan(rate=200, seconds=20, get_rate=200, get_seconds=10, saturation_seconds=8)
QUICK = Plan(rate=100, seconds=5, get_rate=100, get_seconds=5, saturation_seconds=3)


@dataclass
class Load:
    """What one load phase saw."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful answers only
    statuses: Counter[str] = field(default_factory=Counter)
    send_lateness: list[float] = field(default_factory=list)
    elapsed: float = float("nan")

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else float("nan")

    def ms(self, q: float) -> float:
        return percentile([x * 1000 for x in self.latencies], q)

    def describe(self) -> str:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        text = f"{self.sent} sent, {self.ok} ok ({answers})"
        if self.send_lateness:
            late = percentile([x * 1000 for x in self.send_lateness], 0.99)
            text += f", sender late p99 {late:.1f} ms"
        return text


class Accounts:
    """A fresh 12-digit account id per submission, across every phase of the run."""

    def __init__(self) -> None:
        self._next = itertools.count(100_000_000_000)

    def take(self) -> str:
        return str(next(self._next))


async def open_loop(
    client: httpx.AsyncClient, send: Send, *, rate: float, seconds: float, ok: int
) -> Load:
    """Send at t0 + i/rate (open loop); latency from the scheduled time to the answer."""
    load = Load()
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.1
    last_done = t0

    async def one(i: int, due: float) -> None:
        nonlocal last_done
        load.send_lateness.append(time.perf_counter() - due)
        try:
            answer = await send(client, i)
            status = str(answer.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        done = time.perf_counter()
        load.statuses[status] += 1
        if status == str(ok):
            load.latencies.append(done - due)
            last_done = max(last_done, done)

    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
        load.sent += 1
    _, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    load.statuses["unfinished"] += len(pending)
    if not load.statuses["unfinished"]:
        del load.statuses["unfinished"]
    load.elapsed = last_done - t0
    return load


async def closed_loop(
    client: httpx.AsyncClient, send: Send, *, seconds: float, ok: int, concurrency: int
) -> Load:
    """`concurrency` clients back to back for `seconds`.

    With one client this is the service time of one request; with many, the endpoint's
    capacity on this machine.
    """
    load = Load()
    counter = itertools.count()
    started = time.perf_counter()
    stop = started + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            load.sent += 1
            try:
                answer = await send(client, next(counter))
                status = str(answer.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            load.statuses[status] += 1
            if status == str(ok):
                load.latencies.append(time.perf_counter() - began)

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), timeout=seconds + 30
    )
    load.elapsed = time.perf_counter() - started
    return load


async def settle(client: httpx.AsyncClient, url: str, *, timeout: float = 60.0) -> None:
    """Wait until `url` answers fast again: a backlog of one phase must not bleed into the next."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            await client.get(url)
        if time.perf_counter() - began < 0.02:
            return
        await asyncio.sleep(0.5)


async def _tokens(issuer_url: str) -> dict[str, str]:
    """An access token per demo user, from the issuer's password grant (dev mode only)."""
    async with httpx.AsyncClient(base_url=issuer_url, timeout=10.0) as http:
        tokens: dict[str, str] = {}
        for user in USERS:
            answer = await http.post(
                "/token", data={"grant_type": "password", "username": user, "password": user}
            )
            answer.raise_for_status()
            tokens[user] = str(answer.json()["access_token"])
    return tokens


def _submission(account_id: str) -> dict[str, object]:
    return {
        "account_id": account_id,
        "permission_set": "ReadOnlyAccess",
        "duration_minutes": 60,
        "justification": "benchmark: investigating a production incident",
    }


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """POST and GET /v1/requests at fixed rates, and both POST endpoints at saturation."""
    plan = QUICK if quick else FULL
    kafka = env.kafka_settings()
    request_db = env.new_database("request")
    bare_db = env.new_database("bare")
    ports = {name: free_port() for name in ("oidc", "policy", "request", "bare")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    request_env = {
        **BASE_ENV,
        "REQUEST_DATABASE_URL": request_db,
        "REQUEST_PORT": str(ports["request"]),
        "REQUEST_POLICY_URL": urls["policy"],
        "REQUEST_CLIENT_ID": "request-service",
        "REQUEST_CLIENT_SECRET": CLIENT_SECRETS["request-service"],
        "OIDC_ISSUER": urls["oidc"],
        "KAFKA_BOOTSTRAP_SERVERS": kafka.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_TOPIC_PREFIX": kafka.KAFKA_TOPIC_PREFIX,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    }
    async with (
        child(
            "oidc",
            python_module(
                "devstack.oidc_issuer", "--port", str(ports["oidc"]), "--log-level", "warning"
            ),
            {**BASE_ENV},
            ready_url=urls["oidc"] + "/.well-known/openid-configuration",
        ),
        child(
            "policy-stub",
            python_module(
                "bench.policy_stub_server", "--port", str(ports["policy"]), "--issuer", urls["oidc"]
            ),
            {**BASE_ENV},
            ready_url=urls["policy"] + "/openapi.json",
        ),
        child(
            "request",
            python_module("request_service"),
            request_env,
            ready_url=urls["request"] + "/readyz",
        ),
        child(
            "bare",
            python_module("bench.bare_insert_app", "--port", str(ports["bare"])),
            {**BASE_ENV, "BARE_DATABASE_URL": bare_db},
            ready_url=urls["bare"] + "/healthz",
        ),
    ):
        tokens = await _tokens(urls["oidc"])
        auth = [{"Authorization": f"Bearer {tokens[user]}"} for user in USERS]
        accounts = Accounts()

        async def post_request(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.post(
                urls["request"] + "/v1/requests",
                json=_submission(accounts.take()),
                headers=auth[i % len(auth)],
            )

        async def post_bare(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.post(urls["bare"] + "/items", json=_submission(accounts.take()))

        async def get_requests(client: httpx.AsyncClient, i: int) -> httpx.Response:
            return await client.get(urls["request"] + "/v1/requests", headers=auth[i % len(auth)])

        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:
            # Warm-up: connections, JWKS, the policy client's token, prepared statements.
            for i in range(30):
                await post_request(client, i)
                await post_bare(client, i)
                await get_requests(client, i)
            health = urls["request"] + "/healthz"
            phases: dict[str, Load] = {}
            for name, send in (("bare", post_bare), ("post", post_request)):
                phases[f"{name}_one"] = await closed_loop(
                    client, send, seconds=plan.saturation_seconds, ok=201, concurrency=1
                )
                await settle(client, health)
                phases[f"{name}_max"] = await closed_loop(
                    client,
                    send,
                    seconds=plan.saturation_seconds,
                    ok=201,
                    concurrency=CONCURRENCY,
                )
                await settle(client, health)
            phases["get_one"] = await closed_loop(
                client, get_requests, seconds=plan.saturation_seconds, ok=200, concurrency=1
            )
            await settle(client, health)
            phases["bare"] = await open_loop(
                client, post_bare, rate=plan.rate, seconds=plan.seconds, ok=201
            )
            await settle(client, health)
            phases["post"] = await open_loop(
                client, post_request, rate=plan.rate, seconds=plan.seconds, ok=201
            )
            await settle(client, health)
            phases["get"] = await open_loop(
                client, get_requests, rate=plan.get_rate, seconds=plan.get_seconds, ok=200
            )
    return _figures(plan, phases)


def _ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline > 0 else None


def _figures(plan: Plan, phases: dict[str, Load]) -> list[Figure]:
    bare, posts, gets = phases["bare"], phases["post"], phases["get"]
    bare_one, posts_one = phases["bare_one"], phases["post_one"]
    bare_max, posts_max = phases["bare_max"], phases["post_max"]
    at = f"{plan.rate:g} req/s for {plan.seconds:g} s, open loop"
    return [
        Figure(
            BENCH,
            "POST /v1/requests throughput",
            posts.throughput,
            "req/s",
            baseline=bare.throughput,
            ratio=_ratio(posts.throughput, bare.throughput),
            goal=">= 0.5 of bare",
            note=f"{at}; request: {posts.describe()}; bare: {bare.describe()}",
        ),
        Figure(
            BENCH,
            "POST /v1/requests p50",
            posts.ms(0.50),
            "ms",
            baseline=bare.ms(0.50),
            ratio=_ratio(posts.ms(0.50), bare.ms(0.50)),
            note=f"{at}; baseline = bare insert endpoint",
        ),
        Figure(
            BENCH,
            "POST /v1/requests p99",
            posts.ms(0.99),
            "ms",
            baseline=bare.ms(0.99),
            ratio=_ratio(posts.ms(0.99), bare.ms(0.99)),
            goal="< 50 ms at 200 req/s",
            note=f"{at}; baseline = bare insert endpoint",
        ),
        Figure(
            BENCH,
            "GET /v1/requests p50",
            gets.ms(0.50),
            "ms",
            note=f"{plan.get_rate:g} req/s for {plan.get_seconds:g} s, first page (50) of "
            f"{len(USERS)} users' requests; {gets.describe()}",
        ),
        Figure(BENCH, "GET /v1/requests p99", gets.ms(0.99), "ms"),
        Figure(
            BENCH,
            "GET /v1/requests one at a time p50",
            phases["get_one"].ms(0.50),
            "ms",
            note=f"one client back to back for {plan.saturation_seconds:g} s (full pages of 50); "
            f"{phases['get_one'].describe()}, p99 {phases['get_one'].ms(0.99):.1f} ms",
        ),
        Figure(
            BENCH,
            "POST /v1/requests one at a time p50",
            posts_one.ms(0.50),
            "ms",
            baseline=bare_one.ms(0.50),
            ratio=_ratio(posts_one.ms(0.50), bare_one.ms(0.50)),
            note=f"one client back to back for {plan.saturation_seconds:g} s: the service time; "
            f"request: {posts_one.describe()}, p99 {posts_one.ms(0.99):.1f} ms; "
            f"bare: {bare_one.describe()}, p99 {bare_one.ms(0.99):.1f} ms",
        ),
        Figure(
            BENCH,
            "POST /v1/requests at saturation",
            posts_max.throughput,
            "req/s",
            baseline=bare_max.throughput,
            ratio=_ratio(posts_max.throughput, bare_max.throughput),
            goal=">= 0.5 of bare",
            note=f"{CONCURRENCY} clients back to back for {plan.saturation_seconds:g} s each; "
            f"request: {posts_max.describe()} p50 {posts_max.ms(0.5):.1f} ms; "
            f"bare: {bare_max.describe()} p50 {bare_max.ms(0.5):.1f} ms",
        ),
    ]
