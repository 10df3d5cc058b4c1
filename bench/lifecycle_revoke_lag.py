"""Revoke lag: 1,000 windows ending in the same second, behind 100,000 pending timers.

The real lifecycle service runs as a child process (`python -m lifecycle_service`) at its
default Identity Center limits (20 calls/s, burst 1, 10 operations in flight). It reaches a
private moto (its own process) through the fault proxy of `tests/harness/aws_fault_proxy.py`,
which here only forwards and logs every call with its arrival time; the proxy runs in this
process, so call times and the due time share one monotonic clock.

Set-up, before the burst:

- `pending` far-future timers (1-90 days ahead; start, end and approval-expiry kinds) inserted
  with one `INSERT ... SELECT generate_series` into the service's `timer` table: real pending rows
  in the partial index the scheduler claims from;
- `ends` active grants on distinct (user, account, permission set) tuples. Their assignments
  are created directly in moto (not through the service: granting them at 20 calls/s would take
  minutes), and the service's rows are written as a confirmed grant leaves them: `grant_record`
  `active`/`created`, the ledger row holding the grant, the `aws_call` of the create
  (`succeeded`, moto's request id), the start timer `done` and the end timer pending. Every end
  is due within the same second, T ... T + 1 s, a few seconds after the service is ready.

Figures: the lag of each Identity Center call beyond the rate-limit floor (calls are FIFO through
one token bucket, so the k-th call cannot start before f_k = max(f_(k-1) + 1/limit, due_k)),
achieved calls/s ÷ the limit over the burst, and timers fired per second (AWS lane, bounded by
the limit; then the approval lane, which fires expiry timers in batches without AWS calls).
Run alone: `uv run python -m bench.run --only lifecycle_revoke_lag [--quick]`.
"""

import asyncio
import itertools
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.child_services import BASE_ENV, child, python_module
from bench.environment import BenchEnv
from bench.results import Figure, percentile
from devstack.moto_server import start_moto_process
from devstack.net import free_port
from devstack.seed_aws import SeedResult, seed_demo_org
from teamkit.aws import AwsClients
from teamkit.clock import utc_now
from teamkit.migrations import upgrade_to_head_async
from teamkit.settings import AwsSettings
from tests.harness.aws_fault_proxy import FaultProxy, serve_fault_proxy
from tests.harness.oidc import serve_issuer

BENCH = "lifecycle"
MIGRATIONS = (
    Path(__file__).resolve().parents[1] / "services/lifecycle/src/lifecycle_service/migrations"
)
#: The service's default `LIFECYCLE_IC_CALLS_PER_SECOND`; the bench runs at the default.
LIMIT = 20.0
DELETE = "DeleteAccountAssignment"


@dataclass(frozen=True)
class Scale:
    pending: int
    ends: int
    approval_timers: int


FULL = Scale(pending=100_000, ends=1_000, approval_timers=10_000)
QUICK = Scale(pending=10_000, ends=200, approval_timers=2_000)


@dataclass(frozen=True)
class Target:
    principal_id: str
    account_id: str
    permission_set_arn: str


async def _gather_bounded(limit: int, calls: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def _targets(aws: AwsSettings, seed: SeedResult, count: int) -> list[Target]:
    """`count` distinct tuples: the demo users plus as many bench users as the product needs."""
    accounts = sorted(seed.account_ids.values())
    sets = sorted(seed.permission_set_arns.values())
    users = sorted(seed.user_ids.values())
    needed = -(-count // (len(accounts) * len(sets)))
    async with AwsClients(aws).identitystore() as ids:
        made = await _gather_bounded(
            8,
            [
                ids.create_user(
                    IdentityStoreId=seed.identity_store_id,
                    UserName=f"bench-user-{n:03d}",
                    DisplayName=f"bench-user-{n:03d}",
                    Name={"GivenName": "Bench", "FamilyName": f"User{n:03d}"},
                    Emails=[{"Value": f"bench-user-{n:03d}@bench.example", "Primary": True}],
                )
                for n in range(max(0, needed - len(users)))
            ],
        )
    users += [str(m["UserId"]) for m in made]
    combos = itertools.product(users, accounts, sets)
    return [Target(u, a, p) for u, a, p in itertools.islice(combos, count)]


async def _assign_in_moto(aws: AwsSettings, instance_arn: str, targets: list[Target]) -> list[str]:
    """Create every assignment directly in moto; return moto's request ids, in order."""
    async with AwsClients(aws, max_pool_connections=8).sso_admin() as sso:
        answers = await _gather_bounded(
            8,
            [
                sso.create_account_assignment(
                    InstanceArn=instance_arn,
                    TargetId=t.account_id,
                    TargetType="AWS_ACCOUNT",
                    PermissionSetArn=t.permission_set_arn,
                    PrincipalType="USER",
                    PrincipalId=t.principal_id,
                )
                for t in targets
            ],
        )
    return [str(a["AccountAssignmentCreationStatus"]["RequestId"]) for a in answers]


async def _count_assigned(aws: AwsSettings, instance_arn: str, targets: list[Target]) -> int:
    """How many of `targets` moto still holds (after the burst: should be 0)."""
    wanted = {(t.account_id, t.permission_set_arn, t.principal_id) for t in targets}
    held = 0
    async with AwsClients(aws).sso_admin() as sso:
        for account, ps in sorted({(t.account_id, t.permission_set_arn) for t in targets}):
            paginator = sso.get_paginator("list_account_assignments")
            async for page in paginator.paginate(
                InstanceArn=instance_arn, AccountId=account, PermissionSetArn=ps
            ):
                held += sum(
                    1
                    for a in page["AccountAssignments"]
                    if (account, ps, a["PrincipalId"]) in wanted
                )
    return held


async def _insert_pending(conn: asyncpg.Connection, count: int) -> float:
    """`count` pending timers due 1-90 days ahead, in one statement; return seconds taken."""
    started = time.perf_counter()
    await conn.execute(
        """
        INSERT INTO timer (kind, request_id, due_at, state, payload)
        SELECT (ARRAY['start', 'end', 'approval_expiry'])[1 + n % 3],
               gen_random_uuid(),
               now() + interval '1 day' + (n % 129600) * interval '1 minute',
               'pending',
               '{}'::jsonb
        FROM generate_series(1, $1::int) AS n
        """,
        count,
    )
    await conn.execute("ANALYZE timer")
    return time.perf_counter() - started


async def _insert_active_grants(
    conn: asyncpg.Connection,
    targets: list[Target],
    create_ids: list[str],
    *,
    due: list[datetime],
) -> list[uuid.UUID]:
    """Write the rows a confirmed grant leaves, with end timers at `due`; one transaction."""
    n = len(targets)
    request_ids = [uuid.uuid4() for _ in range(n)]
    granted = utc_now() - timedelta(minutes=59)
    starts = [granted - timedelta(seconds=1)] * n
    principals = [t.principal_id for t in targets]
    accounts = [t.account_id for t in targets]
    sets = [t.permission_set_arn for t in targets]
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO grant_record (request_id, principal_id, account_id, permission_set_arn,
                                      start_at, end_at, state, assignment_action, granted_at,
                                      create_request_id)
            SELECT r, p, a, s, st, e, 'active', 'created', $7, c
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                        $6::timestamptz[], $8::text[]) AS x(r, p, a, s, st, e, c)
            """,
            request_ids,
            principals,
            accounts,
            sets,
            starts,
            due,
            granted,
            create_ids,
        )
        await conn.execute(
            """
            INSERT INTO assignment_ledger (principal_id, account_id, permission_set_arn, holders,
                                           standing, assigned)
            SELECT p, a, s, ARRAY[r], false, true
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS x(r, p, a, s)
            """,
            request_ids,
            principals,
            accounts,
            sets,
        )
        await conn.execute(
            """
            INSERT INTO aws_call (request_id, operation, principal_id, account_id,
                                  permission_set_arn, attempt, status, aws_request_id,
                                  started_at, finished_at)
            SELECT r, 'create', p, a, s, 1, 'succeeded', c, $6, $6
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
                 AS x(r, p, a, s, c)
            """,
            request_ids,
            principals,
            accounts,
            sets,
            create_ids,
            granted,
        )
        await conn.execute(
            """
            INSERT INTO timer (kind, request_id, due_at, state, fired_at)
            SELECT 'start', r, st, 'done', $3 FROM unnest($1::uuid[], $2::timestamptz[]) AS x(r, st)
            """,
            request_ids,
            starts,
            granted,
        )
        await conn.execute(
            """
            INSERT INTO timer (kind, request_id, due_at, state)
            SELECT 'end', r, d, 'pending' FROM unnest($1::uuid[], $2::timestamptz[]) AS x(r, d)
            """,
            request_ids,
            due,
        )
    return request_ids


def _floors(due_mono: list[float], count: int, limit: float) -> list[float]:
    """Earliest possible start of the k-th call through a FIFO bucket at `limit` (burst 1)."""
    floors: list[float] = []
    for k in range(count):
        due_k = due_mono[min(k, len(due_mono) - 1)]
        floors.append(due_k if k == 0 else max(floors[-1] + 1.0 / limit, due_k))
    return floors


async def _wait_until(check: Any, *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return False


async def _fire_rate(
    conn: asyncpg.Connection, kind: str, since: datetime
) -> tuple[int, float, datetime | None]:
    """(timers of `kind` fired since `since`, their rate first to last firing, last firing)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS n, min(fired_at) AS first, max(fired_at) AS last
        FROM timer WHERE kind = $1 AND state = 'done' AND fired_at >= $2
        """,
        kind,
        since,
    )
    assert row is not None
    n = int(row["n"])
    span = (row["last"] - row["first"]).total_seconds() if n > 1 else 0.0
    return n, (n - 1) / span if span > 0 else float("nan"), row["last"]


async def _burst(
    conn: asyncpg.Connection,
    proxy: FaultProxy,
    aws: AwsSettings,
    seed: SeedResult,
    targets: list[Target],
    create_ids: list[str],
) -> dict[str, Any]:
    """Insert the active grants ending in one second, wait until every end fired, measure."""
    n = len(targets)
    # T a few seconds ahead: the scheduler hears the NOTIFY, re-reads the earliest due time and
    # sleeps until it, as it would for ends scheduled long ago.
    t_wall = utc_now() + timedelta(seconds=4)
    due = [t_wall + timedelta(seconds=i / n) for i in range(n)]
    mono_offset = time.monotonic() - utc_now().timestamp()
    due_mono = [d.timestamp() + mono_offset for d in due]
    await _insert_active_grants(conn, targets, create_ids, due=due)
    proxy.calls.clear()

    async def all_ended() -> bool:
        left = await conn.fetchval(
            "SELECT count(*) FROM timer WHERE kind = 'end' AND state = 'pending' AND due_at <= $1",
            due[-1],
        )
        return int(left) == 0

    timeout = 60 + 3 * n / LIMIT
    finished = await _wait_until(all_ended, timeout=timeout)
    calls = sorted((c for c in proxy.calls if c.at >= due_mono[0] - 1.0), key=lambda c: c.at)
    deletes = [c for c in calls if c.operation == DELETE]
    floors = _floors(due_mono, len(calls), LIMIT)
    lags = [c.at - f for c, f in zip(calls, floors, strict=True) if c.operation == DELETE]
    span = calls[-1].at - calls[0].at if len(calls) > 1 else float("nan")
    rows = await conn.fetch(
        "SELECT state || '/' || coalesce(assignment_action, '-') AS k, count(*) AS n "
        "FROM grant_record WHERE end_at <= $1 GROUP BY 1",
        due[-1],
    )
    states = {str(r["k"]): int(r["n"]) for r in rows}
    fired, fire_rate, last = await _fire_rate(conn, "end", t_wall - timedelta(seconds=1))
    worked_off = (last - due[0]).total_seconds() if last is not None else float("nan")
    return {
        "finished": finished,
        "calls": calls,
        "deletes": deletes,
        "lags": lags,
        "rate": (len(calls) - 1) / span if span == span and span > 0 else float("nan"),
        "span": span,
        "worked_off": worked_off,
        "errors": sum(1 for c in calls if c.status != 200),
        "states": states,
        "fired": fired,
        "fire_rate": fire_rate,
        "left_in_moto": await _count_assigned(aws, seed.instance_arn, targets),
    }


async def _approval_lane(conn: asyncpg.Connection, count: int) -> tuple[int, float]:
    """`count` approval-expiry timers due at one moment; the lane's fired timers per second."""
    due = utc_now() + timedelta(seconds=2)
    await conn.execute(
        """
        INSERT INTO timer (kind, request_id, due_at, state, payload)
        SELECT 'approval_expiry', gen_random_uuid(), $2, 'pending', '{}'::jsonb
        FROM generate_series(1, $1::int)
        """,
        count,
        due,
    )

    async def all_fired() -> bool:
        left = await conn.fetchval(
            "SELECT count(*) FROM timer WHERE kind = 'approval_expiry' AND state = 'pending' "
            "AND due_at <= $1",
            due,
        )
        return int(left) == 0

    await _wait_until(all_fired, timeout=120)
    fired, rate, _ = await _fire_rate(conn, "approval_expiry", due - timedelta(seconds=1))
    return fired, rate


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """Measure revoke lag beyond the rate-limit floor, IC utilisation and timer fire rates."""
    scale = QUICK if quick else FULL
    moto = await asyncio.to_thread(start_moto_process)
    try:
        # moto answers the odd 500 under concurrent writes: botocore may retry set-up calls.
        setup_aws = AwsSettings(AWS_ENDPOINT_URL=moto.endpoint_url, AWS_MAX_ATTEMPTS=5)
        seed = await seed_demo_org(setup_aws)
        targets = await _targets(setup_aws, seed, scale.ends)
        create_ids = await _assign_in_moto(setup_aws, seed.instance_arn, targets)
        url = env.new_database("lifecycle")
        await upgrade_to_head_async(MIGRATIONS, url)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            insert_seconds = await _insert_pending(conn, scale.pending)
            kafka = env.kafka_settings()
            port = free_port()
            async with serve_issuer() as issuer, serve_fault_proxy(moto.endpoint_url) as proxy:
                service_env = {
                    **BASE_ENV,
                    "LIFECYCLE_DATABASE_URL": url,
                    "LIFECYCLE_PORT": str(port),
                    "LIFECYCLE_INSTANCE_ARN": seed.instance_arn,
                    "LIFECYCLE_RECONCILE_INTERVAL_SECONDS": "0",
                    "KAFKA_BOOTSTRAP_SERVERS": kafka.KAFKA_BOOTSTRAP_SERVERS,
                    "KAFKA_TOPIC_PREFIX": kafka.KAFKA_TOPIC_PREFIX,
                    "KAFKA_SESSION_TIMEOUT_MS": "2000",
                    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                    "OIDC_ISSUER": issuer.issuer_url,
                    "AWS_ENDPOINT_URL": proxy.endpoint_url,
                    "AWS_MAX_ATTEMPTS": "1",
                }
                async with child(
                    "lifecycle",
                    python_module("lifecycle_service"),
                    service_env,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                ):
                    burst = await _burst(conn, proxy, setup_aws, seed, targets, create_ids)
                    approvals, approval_rate = await _approval_lane(conn, scale.approval_timers)
                    pending_left = await conn.fetchval(
                        "SELECT count(*) FROM timer WHERE state = 'pending'"
                    )
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(moto.stop)
    return _figures(scale, burst, approvals, approval_rate, int(pending_left), insert_seconds)


def _figures(
    scale: Scale,
    burst: dict[str, Any],
    approvals: int,
    approval_rate: float,
    pending_left: int,
    insert_seconds: float,
) -> list[Figure]:
    lags_ms = [lag * 1000 for lag in burst["lags"]]
    deletes = len(burst["deletes"])
    ideal = (len(burst["calls"]) - 1) / LIMIT
    setup = (
        f"{scale.pending:,} pending timers (inserted in {insert_seconds:.1f} s), "
        f"{scale.ends:,} ends due within 1 s, limit {LIMIT:g} calls/s burst 1, 10 slots"
    )
    outcome = (
        f"{deletes} deletes / {len(burst['calls'])} IC calls, {burst['errors']} non-200, "
        f"grants {burst['states']}, {burst['left_in_moto']} left in moto, "
        f"{'all' if burst['finished'] else 'NOT all'} ends fired"
    )
    return [
        Figure(
            BENCH,
            "revoke lag beyond floor p50",
            percentile(lags_ms, 0.50),
            "ms",
            note=f"{setup}; {outcome}",
        ),
        Figure(
            BENCH,
            "revoke lag beyond floor p99",
            percentile(lags_ms, 0.99),
            "ms",
            goal="<= 1000 ms",
            note=f"max {max(lags_ms, default=float('nan')):.0f} ms, "
            f"mean {statistics.fmean(lags_ms) if lags_ms else float('nan'):.0f} ms, "
            f"first call {lags_ms[0] if lags_ms else float('nan'):.0f} ms after its due time",
        ),
        Figure(
            BENCH,
            "IC calls/s during burst",
            burst["rate"],
            "calls/s",
            baseline=LIMIT,
            ratio=burst["rate"] / LIMIT,
            goal=">= 0.95 of limit",
            note=f"{len(burst['calls'])} calls in {burst['span']:.2f} s (floor {ideal:.2f} s)",
        ),
        Figure(
            BENCH,
            "burst worked off",
            burst["worked_off"],
            "s",
            baseline=scale.ends / LIMIT,
            ratio=burst["worked_off"] / (scale.ends / LIMIT),
            note="first due time -> last end timer's job done; baseline = ends / limit",
        ),
        Figure(
            BENCH,
            "end timers fired/s (AWS lane)",
            burst["fire_rate"],
            "timers/s",
            baseline=LIMIT,
            ratio=burst["fire_rate"] / LIMIT,
            note=f"{burst['fired']} fired; one DeleteAccountAssignment each, so bound by the limit",
        ),
        Figure(
            BENCH,
            "approval timers fired/s",
            approval_rate,
            "timers/s",
            note=f"{approvals:,} approval-expiry timers due at once, batches of 500, no AWS call; "
            f"{pending_left:,} far-future timers still pending afterwards",
        ),
    ]
