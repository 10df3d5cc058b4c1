"""Audit service: CSV export of 1,000,000 requests beside PostgreSQL's own COPY, peak RSS of the
service process, and chain verification throughput.

The service runs as a child process (`python -m audit_service`) with the dev OIDC issuer; the
export is read over HTTP exactly as an auditor's client reads it. The baseline is
`COPY (SELECT * FROM audit_request ORDER BY ...) TO STDOUT CSV` of the same rows, in the same run.
Goals (issue 7): export rows/s >= 50 % of COPY's; peak RSS < 150 MB.

Standalone: `uv run python -m bench.audit_export [--quick]`.
"""

import argparse
import asyncio
import hashlib
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from audit_service import chain
from bench.child_services import BASE_ENV, child, python_module
from bench.environment import BenchEnv, bench_env
from bench.results import Figure, print_table
from devstack.net import free_port
from teamkit.db import normalise_url
from teamkit.migrations import upgrade_to_head_async

MIGRATIONS = Path(__file__).resolve().parents[1] / "services/audit/src/audit_service/migrations"

# Rows shaped like real ones (long justification, approvers, decisions), built in the database.
SEED_REQUESTS = """
INSERT INTO audit_request (
    request_id, created_at, updated_at, status, requester_id, requester_username,
    requester_email, account_id, account_name, permission_set_arn, permission_set_name,
    start_at, end_at, duration_minutes, justification, ticket, approval_required,
    approvals_needed, auto_approved, eligible_approvers, decisions, approver_usernames,
    submitted_at, approved_at, granted_at, ended_at, end_reason, errors, event_count,
    decision_comments, decision_approvers, eligible_approver_list, session_duration_minutes
)
SELECT
    md5(g::text)::uuid,
    timestamptz '2026-01-01 00:00+00' + g * interval '1 second',
    timestamptz '2026-01-01 02:00+00' + g * interval '1 second',
    (ARRAY['ended','revoked','rejected','in_progress','expired'])[1 + g % 5],
    'uid-' || (g % 500), 'user' || (g % 500), 'user' || (g % 500) || '@example.com',
    lpad((g % 40)::text, 12, '1'), 'account-' || (g % 40),
    'arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-' || (g % 7),
    'PermissionSet' || (g % 7),
    timestamptz '2026-01-01 00:30+00' + g * interval '1 second',
    timestamptz '2026-01-01 01:30+00' + g * interval '1 second',
    60, 'investigating incident ' || g || ' in the payments service', 'INC-' || g, true, 1,
    false, '[{"username": "bob", "email": "bob@example.com"}]'::jsonb,
    jsonb_build_array(jsonb_build_object('username', 'bob', 'email', 'bob@example.com',
        'decision', 'approved', 'comment', 'looks fine', 'at', '2026-01-01T00:05:00Z')),
    ARRAY['bob'],
    timestamptz '2026-01-01 00:00+00' + g * interval '1 second',
    timestamptz '2026-01-01 00:05+00' + g * interval '1 second',
    timestamptz '2026-01-01 00:30+00' + g * interval '1 second',
    timestamptz '2026-01-01 01:30+00' + g * interval '1 second',
    'expired', '[]'::jsonb, 8,
    'looks fine', 'bob@example.com', 'bob@example.com', 60 + 30 * (g % 2)
FROM generate_series(1, $1::integer) AS g
"""
BASELINE_COPY = "SELECT * FROM audit_request ORDER BY created_at DESC, request_id DESC"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _seed_trail(conn: asyncpg.Connection, events: int) -> None:
    """`events` chained trail rows, hashed here exactly as the service hashes them."""
    prev = chain.GENESIS_HASH
    base = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for position in range(1, events + 1):
        event_id = str(uuid.UUID(bytes=hashlib.md5(str(position).encode()).digest()))  # noqa: S324
        subject = str(uuid.UUID(int=position // 12 + 1))
        at = base + timedelta(seconds=position)
        body = chain.canonical_json(
            {
                "specversion": "1.0",
                "id": event_id,
                "type": "request.status_changed",
                "version": 1,
                "source": "request",
                "subject": subject,
                "time": at.isoformat(),
                "data": {"request_id": subject, "from_status": "pending", "to_status": "approved"},
            }
        )
        digest = chain.chain_hash(prev, body)
        records.append(
            (
                position,
                event_id,
                "request.status_changed",
                1,
                "request",
                subject,
                at,
                at,
                "request.events",
                0,
                position,
                True,
                None,
                body,
                prev,
                digest,
            )
        )
        prev = digest
    await conn.copy_records_to_table(
        "audit_event",
        records=records,
        columns=[
            "position",
            "event_id",
            "type",
            "version",
            "source",
            "subject",
            "event_time",
            "recorded_at",
            "topic",
            "partition",
            "offset",
            "known",
            "flag",
            "body",
            "prev_hash",
            "hash",
        ],
    )


def _memory_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


async def _baseline_copy(dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)

    try:
        started = time.perf_counter()
        await conn.copy_from_query(BASELINE_COPY, output=sink, format="csv", header=True)
        return size, time.perf_counter() - started
    finally:
        await conn.close()


async def run(env: BenchEnv, *, quick: bool) -> list[Figure]:
    """Seed, export over HTTP, COPY the same rows, verify the chain; return the figures."""
    rows = 100_000 if quick else 1_000_000
    trail_events = 50_000 if quick else 200_000
    url = env.new_database("audit")
    await upgrade_to_head_async(MIGRATIONS, url)
    dsn = _dsn(normalise_url(url))
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute(SEED_REQUESTS, rows)
        await conn.execute("ANALYZE audit_request")
        await _seed_trail(conn, trail_events)
        print(
            f"   seeded {rows:,} requests, {trail_events:,} trail rows "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    finally:
        await conn.close()

    kafka = env.kafka_settings()
    ports = {"oidc": free_port(), "audit": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    audit_env = {
        **BASE_ENV,
        "AUDIT_DATABASE_URL": url,
        "AUDIT_PORT": str(ports["audit"]),
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
            "audit", python_module("audit_service"), audit_env, ready_url=urls["audit"] + "/readyz"
        ) as audit,
        httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0)) as http,
    ):
        answer = await http.post(
            urls["oidc"] + "/token", data={"grant_type": "password", "username": "erin"}
        )
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        before = _memory_kib(audit.pid)

        started = time.perf_counter()
        lines = size = 0
        async with http.stream(
            "GET", urls["audit"] + "/v1/audit/requests.csv", headers=headers
        ) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
        export_seconds = time.perf_counter() - started
        after = _memory_kib(audit.pid)
        if lines - 1 != rows:
            raise RuntimeError(f"export returned {lines - 1} rows, expected {rows}")

        copy_size, copy_seconds = await _baseline_copy(dsn)

        started = time.perf_counter()
        verify = await http.get(urls["audit"] + "/v1/audit/verify", headers=headers)
        verify_seconds = time.perf_counter() - started
        verify.raise_for_status()
        verified = verify.json()
        if not verified["ok"] or verified["count"] != trail_events:
            raise RuntimeError(f"verification failed: {verified}")

    export_rate = rows / export_seconds
    copy_rate = rows / copy_seconds
    return [
        Figure(
            "audit_export",
            f"CSV export of {rows:,} requests (HTTP)",
            export_rate,
            "rows/s",
            baseline=copy_rate,
            ratio=export_rate / copy_rate,
            goal=">= 0.5 of COPY",
            note=f"{size / 1e6:.0f} MB in {export_seconds:.1f} s; COPY {copy_size / 1e6:.0f} MB "
            f"in {copy_seconds:.1f} s",
        ),
        Figure(
            "audit_export",
            "audit service peak RSS",
            after["VmHWM"] / 1024,
            "MB",
            goal="< 150 MB",
            note=f"RSS {before['VmRSS'] / 1024:.0f} MB before the export, "
            f"{after['VmRSS'] / 1024:.0f} MB after; peak is the process high-water mark",
        ),
        Figure(
            "audit_export",
            f"chain verification of {trail_events:,} events",
            trail_events / verify_seconds,
            "events/s",
            note=f"{verify_seconds:.1f} s over HTTP; server-side {verified['elapsed_ms']} ms",
        ),
    ]


def main() -> int:
    """Run this benchmark alone and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with bench_env() as env:
        figures = asyncio.run(run(env, quick=args.quick))
    print_table(figures)
    for figure in figures:
        print(f"- {figure.name}: {figure.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
