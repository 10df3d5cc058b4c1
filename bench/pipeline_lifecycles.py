"""Full lifecycles per second against the whole system, as a ratio to the Identity Center ceiling.

One lifecycle = submit an auto-approved request (a TEAM-Users member on a NonProd account with
ReadOnly or PowerUser, start now, a 60-minute window) → wait until it is `in_progress` (granted
and confirmed) → the requester revokes it (with a comment when the settings require one) → wait
until it is `revoked`. Durations are whole minutes in the API, so "windows of seconds" means an
early revoke, not a short window.

The system is `make run`'s (`devstack.stack.Stack`: embedded PostgreSQL, Tansu, moto, the dev
OIDC issuer and the five services, each its own process, on free loopback ports), with every
service at its defaults: the lifecycle service's Identity Center limiter is 20 calls/s, burst 1.
This process only generates load with httpx (issue 9: the load generator is apart from the
services). The `BenchEnv` PostgreSQL/Tansu of `bench.run` are not used: the Stack brings its own.

Lifecycles run with bounded concurrency; each one takes a free (user, account, permission set)
tuple from a pool of 40 and gives it back when done, so no two lifecycles in flight share a
tuple (no shared ledger rows, no duplicate-pending 409, every grant is a real create + delete).

Ceiling: Identity Center calls per lifecycle are counted, not assumed: the lifecycle service's
own call counter (`/readyz` → `checks.scheduler.aws_calls`, every call that took a token) before
and after the run, divided by the lifecycles; the grant timelines (`GET /v1/grants/{id}`) are
read afterwards to check each lifecycle made exactly one create and one delete.
ceiling = LIFECYCLE_IC_CALLS_PER_SECOND / calls per lifecycle; ratio = achieved / ceiling.

Run alone: `uv run python -m bench.run --only pipeline_lifecycles [--quick]`.
"""

import asyncio
import contextlib
import itertools
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.environment import BenchEnv
from bench.results import Figure, percentile
from devstack.stack import Stack, StackConfig

BENCH = "pipeline_lifecycles"
#: The lifecycle service's default limiter (`LIFECYCLE_IC_CALLS_PER_SECOND`), not overridden.
IC_CALLS_PER_SECOND = 20.0
#: Members of TEAM-Users in the demo organization (the demo NonProd policy needs no approval).
REQUESTERS: tuple[str, ...] = ("alice", "frank", "bob", "carol", "dave")
NONPROD_ACCOUNTS: tuple[str, ...] = ("team-a-dev", "team-a-staging", "team-b-dev", "shared-nonprod")
PERMISSION_SETS: tuple[str, ...] = ("ReadOnly", "PowerUser")
ADMIN = "dave"
POLL_SECONDS = 0.2
LIFECYCLE_TIMEOUT = 180.0


@dataclass(frozen=True)
class Plan:
    lifecycles: int
    concurrency: int


FULL = Plan(lifecycles=200, concurrency=24)
QUICK = Plan(lifecycles=30, concurrency=12)


@dataclass
class Lifecycle:
    """What one lifecycle saw; client times are `time.perf_counter()`, server ones RFC 3339."""

    n: int
    user: str
    account: str
    permission_set: str
    request_id: str = ""
    submitted: float = float("nan")
    seen_in_progress: float = float("nan")
    revoke_sent: float = float("nan")
    seen_revoked: float = float("nan")
    server: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.server.get("status") == "revoked"


class Client:
    """Tokens from the stack's issuer and the calls of one person."""

    def __init__(self, http: httpx.AsyncClient, description: dict[str, Any]) -> None:
        self.http = http
        self.services: dict[str, str] = dict(description["services"])
        self.token_endpoint = str(description["oidc"]["token_endpoint"])
        self.tokens: dict[str, str] = {}

    async def token(self, user: str) -> str:
        if user not in self.tokens:
            answer = await self.http.post(
                self.token_endpoint,
                data={"grant_type": "password", "username": user, "password": user},
            )
            answer.raise_for_status()
            self.tokens[user] = str(answer.json()["access_token"])
        return self.tokens[user]

    async def call(
        self, method: str, service: str, path: str, user: str, *, expect: int = 200, **kw: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {await self.token(user)}"}
        answer = await self.http.request(
            method, self.services[service] + path, headers=headers, **kw
        )
        if answer.status_code != expect:
            raise RuntimeError(
                f"{method} {service}{path} as {user}: {answer.status_code} {answer.text[:300]}"
            )
        return answer.json()

    async def pages(self, service: str, path: str, user: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = await self.call("GET", service, path, user, params=params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def ready_checks(self, service: str) -> dict[str, Any]:
        answer = await self.http.get(self.services[service] + "/readyz")
        checks: dict[str, Any] = answer.json()["checks"]
        return checks


def _ts(value: str | None) -> float:
    """Epoch seconds of an RFC 3339 time (services and bench share one wall clock)."""
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


async def _wait_setup(client: Client) -> tuple[dict[str, str], dict[str, Any]]:
    """Account ids by name once the demo policies are seeded; the request settings."""
    deadline = time.monotonic() + 90
    while True:
        policies = await client.pages("policy", "/v1/eligibility-policies", ADMIN)
        if len(policies) >= 2:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the demo policies were not seeded within 90 s")
        await asyncio.sleep(0.5)
    accounts = await client.pages("policy", "/v1/directory/accounts", ADMIN)
    settings: dict[str, Any] = await client.call("GET", "policy", "/v1/settings", ADMIN)
    return {a["name"]: a["id"] for a in accounts}, settings


TERMINAL = frozenset({"ended", "revoked", "rejected", "cancelled", "expired", "error"})


class Watcher:
    """Follows every lifecycle with one `GET /v1/requests?created_after=` per requester per round.

    Polling each request on its own would cost concurrency / POLL_SECONDS GETs per second and
    load the request service (the thing measured); this costs at most len(REQUESTERS) per round.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        # request id -> (user, oldest requested_at, wanted status, future of the request)
        self.waiting: dict[str, tuple[str, str, str, asyncio.Future[dict[str, Any]]]] = {}
        self.rounds = 0

    async def wait(self, life: Lifecycle, requested_at: str, wanted: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[life.request_id] = (life.user, requested_at, wanted, future)
        try:
            return await asyncio.wait_for(future, LIFECYCLE_TIMEOUT)
        except TimeoutError as exc:
            raise RuntimeError(f"not {wanted} after {LIFECYCLE_TIMEOUT:.0f} s") from exc
        finally:
            self.waiting.pop(life.request_id, None)

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            oldest: dict[str, float] = {}
            for user, requested_at, _, _ in list(self.waiting.values()):
                oldest[user] = min(oldest.get(user, float("inf")), _ts(requested_at))
            await asyncio.gather(*(self._round(user, since) for user, since in oldest.items()))
            self.rounds += 1
            await asyncio.sleep(max(0.0, POLL_SECONDS - (time.perf_counter() - started)))

    async def _round(self, user: str, since: float) -> None:
        after = datetime.fromtimestamp(since - 1.0, UTC).isoformat()
        try:
            page = await self.client.call(
                "GET",
                "request",
                "/v1/requests",
                user,
                params={"created_after": after, "limit": 100},
            )
        except (RuntimeError, httpx.HTTPError):
            return  # next round
        for item in page["items"]:
            entry = self.waiting.get(str(item["id"]))
            if entry is None or entry[3].done():
                continue
            _, _, wanted, future = entry
            if item["status"] == wanted:
                future.set_result(item)
            elif item["status"] in TERMINAL:
                future.set_exception(
                    RuntimeError(f"{item['status']} ({item.get('status_reason')}), wanted {wanted}")
                )


async def _one(
    client: Client, watcher: Watcher, life: Lifecycle, account_id: str, settings: dict[str, Any]
) -> None:
    body: dict[str, Any] = {
        "account_id": account_id,
        "permission_set": life.permission_set,
        "duration_minutes": 60,
        "justification": f"bench: lifecycle {life.n}",
    }
    if settings.get("ticket_required", True):
        body["ticket"] = f"INC-{life.n}"
    life.submitted = time.perf_counter()
    created = await client.call("POST", "request", "/v1/requests", life.user, expect=201, json=body)
    life.request_id = str(created["id"])
    if created["status"] != "approved" or not created.get("auto_approved"):
        raise RuntimeError(f"not auto-approved: {created['status']}")
    await watcher.wait(life, str(created["requested_at"]), "in_progress")
    life.seen_in_progress = time.perf_counter()
    revoke: dict[str, Any] = {}
    if settings.get("comments_required", True):
        revoke["comment"] = "bench: done early"
    life.revoke_sent = time.perf_counter()
    await client.call(
        "POST", "request", f"/v1/requests/{life.request_id}/revoke", life.user, json=revoke
    )
    life.server = await watcher.wait(life, str(created["requested_at"]), "revoked")
    life.seen_revoked = time.perf_counter()


async def _drive(
    client: Client, plan: Plan, accounts: dict[str, str], settings: dict[str, Any]
) -> list[Lifecycle]:
    """Run the lifecycles, at most `concurrency` at once, never two on one tuple."""
    free: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    for combo in itertools.product(REQUESTERS, NONPROD_ACCOUNTS, PERMISSION_SETS):
        free.put_nowait(combo)
    slots = asyncio.Semaphore(plan.concurrency)
    lives: list[Lifecycle] = []
    watcher = Watcher(client)
    watching = asyncio.create_task(watcher.run())

    async def lifecycle(n: int) -> None:
        async with slots:
            user, account, permission_set = await free.get()
            life = Lifecycle(n, user, account, permission_set)
            lives.append(life)
            try:
                await _one(client, watcher, life, accounts[account], settings)
            except (RuntimeError, httpx.HTTPError, KeyError) as exc:
                life.error = f"{type(exc).__name__}: {exc}"
            finally:
                free.put_nowait((user, account, permission_set))

    try:
        await asyncio.gather(*(lifecycle(n) for n in range(plan.lifecycles)))
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    return lives


async def _timeline_calls(client: Client, lives: list[Lifecycle]) -> Counter[str]:
    """Create/delete calls (and outcomes) in the grants' timelines."""
    counts: Counter[str] = Counter()
    sem = asyncio.Semaphore(4)

    async def read(life: Lifecycle) -> None:
        async with sem:
            grant = await client.call("GET", "lifecycle", f"/v1/grants/{life.request_id}", ADMIN)
        for call in grant.get("aws_calls", []):
            counts[f"{call.get('operation')}/{call.get('status')}"] += 1
        counts[f"grant_state/{grant.get('state')}"] += 1

    await asyncio.gather(*(read(life) for life in lives if life.request_id))
    return counts


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """Start the whole system, run the lifecycles, compare with the limiter's ceiling."""
    del env  # the Stack brings its own PostgreSQL and Tansu
    plan = QUICK if quick else FULL
    local = Path(tempfile.mkdtemp(prefix="team-bench-stack-"))
    config = StackConfig.with_free_ports(local)
    config.ready_timeout = 150.0
    stack = Stack(config)
    quiet: Any = lambda _message: None  # noqa: E731
    try:
        started = time.perf_counter()
        description = await asyncio.to_thread(stack.start, quiet)
        stack_seconds = time.perf_counter() - started
        async with httpx.AsyncClient(timeout=30.0) as http:
            client = Client(http, description)
            accounts, settings = await _wait_setup(client)
            for user in REQUESTERS:
                await client.token(user)
            calls_before = int((await client.ready_checks("lifecycle"))["scheduler"]["aws_calls"])
            t0 = time.perf_counter()
            lives = await _drive(client, plan, accounts, settings)
            elapsed = time.perf_counter() - t0
            calls_after = int((await client.ready_checks("lifecycle"))["scheduler"]["aws_calls"])
            timeline = await _timeline_calls(client, lives)
    finally:
        await asyncio.to_thread(stack.stop, quiet)
        shutil.rmtree(local, ignore_errors=True)
    return _figures(plan, lives, elapsed, calls_after - calls_before, timeline, stack_seconds)


def _figures(
    plan: Plan,
    lives: list[Lifecycle],
    elapsed: float,
    ic_calls: int,
    timeline: Counter[str],
    stack_seconds: float,
) -> list[Figure]:
    done = [life for life in lives if life.ok]
    failed = [life for life in lives if not life.ok]
    # Completions by the server's ended_at; steady part = between the 10th and 90th percentile
    # completions (drops the ramp-up, where the pipeline fills, and the drain at the end).
    ends = sorted(_ts(life.server.get("ended_at")) for life in done)
    lo, hi = int(len(ends) * 0.1), int(len(ends) * 0.9) - 1
    steady = (hi - lo) / (ends[hi] - ends[lo]) if hi > lo and ends[hi] > ends[lo] else float("nan")
    overall = len(done) / elapsed if elapsed > 0 else float("nan")
    per_lifecycle = ic_calls / len(lives) if lives else float("nan")
    ceiling = IC_CALLS_PER_SECOND / per_lifecycle if per_lifecycle > 0 else float("nan")

    def ms(values: list[float], q: float) -> float:
        return percentile([v * 1000 for v in values], q)

    grant_seen = [life.seen_in_progress - life.submitted for life in done]
    revoke_seen = [life.seen_revoked - life.revoke_sent for life in done]
    grant_server = [
        _ts(life.server.get("granted_at")) - _ts(life.server.get("requested_at")) for life in done
    ]
    revoke_server = [
        _ts(life.server.get("ended_at")) - _ts(life.server.get("revoke_requested_at"))
        for life in done
    ]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(timeline.items()))
    errors = Counter(life.error.split(":")[0] or life.server.get("status", "?") for life in failed)
    note = (
        f"{len(done)}/{len(lives)} lifecycles ok, {plan.concurrency} at once on distinct tuples, "
        f"{elapsed:.1f} s; failed: {dict(errors) or 0}; stack start {stack_seconds:.0f} s"
    )
    limit = "Identity Center limiter 20/s"
    return [
        Figure(
            "pipeline",
            "full lifecycles/s (steady) ÷ IC ceiling",
            steady,
            "lifecycles/s",
            baseline=ceiling,
            ratio=steady / ceiling if ceiling > 0 else None,
            note=note,
        ),
        Figure("pipeline", "full lifecycles/s (whole run)", overall, "lifecycles/s", note=note),
        Figure(
            "pipeline",
            "Identity Center calls per lifecycle (counted)",
            per_lifecycle,
            "calls",
            note=f"{ic_calls} calls for {len(lives)} lifecycles ({limit}); timelines: {calls}",
        ),
        Figure(
            "pipeline",
            "Identity Center calls/s during the run ÷ limit",
            ic_calls / elapsed if elapsed > 0 else float("nan"),
            "calls/s",
            baseline=IC_CALLS_PER_SECOND,
            ratio=ic_calls / elapsed / IC_CALLS_PER_SECOND if elapsed > 0 else None,
        ),
        Figure("pipeline", "submit → in_progress p50 (client)", ms(grant_seen, 0.5), "ms"),
        Figure(
            "pipeline",
            "submit → in_progress p99 (client)",
            ms(grant_seen, 0.99),
            "ms",
            note=f"polled every {POLL_SECONDS * 1000:.0f} ms",
        ),
        Figure("pipeline", "revoke → revoked p50 (client)", ms(revoke_seen, 0.5), "ms"),
        Figure(
            "pipeline",
            "revoke → revoked p99 (client)",
            ms(revoke_seen, 0.99),
            "ms",
            note=f"polled every {POLL_SECONDS * 1000:.0f} ms",
        ),
        Figure(
            "pipeline",
            "requested_at → granted_at p50/p99 (server)",
            ms(grant_server, 0.5),
            "ms",
            note=f"p99 {ms(grant_server, 0.99):.0f} ms",
        ),
        Figure(
            "pipeline",
            "revoke_requested_at → ended_at p50/p99 (server)",
            ms(revoke_server, 0.5),
            "ms",
            note=f"p99 {ms(revoke_server, 0.99):.0f} ms",
        ),
    ]
