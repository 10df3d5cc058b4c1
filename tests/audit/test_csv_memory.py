"""The CSV export streams: memory stays flat from 10k to 100k requests."""

import time
import tracemalloc
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from teamkit.db import DatabaseSettings
from teamkit.settings import KafkaSettings, OidcSettings
from tests.audit.conftest import audit_settings, bearer, running_audit
from tests.harness.oidc import RunningIssuer

# Rows shaped like real ones (long justification, approvers, decisions), built in the database.
SEED = """
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
    timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
    timestamptz '2026-01-01 02:00+00' + g * interval '1 minute',
    (ARRAY['ended','revoked','rejected','in_progress','expired'])[1 + g % 5],
    'uid-' || (g % 500), 'user' || (g % 500), 'user' || (g % 500) || '@example.com',
    lpad((g % 40)::text, 12, '1'), 'account-' || (g % 40),
    'arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-' || (g % 7),
    'PermissionSet' || (g % 7),
    timestamptz '2026-01-01 00:30+00' + g * interval '1 minute',
    timestamptz '2026-01-01 01:30+00' + g * interval '1 minute',
    60, repeat('investigating incident ' || g || ' ', 4), 'INC-' || g, true, 1, false,
    '[{"username": "bob", "email": "bob@example.com"}]'::jsonb,
    jsonb_build_array(jsonb_build_object('username', 'bob', 'email', 'bob@example.com',
        'decision', 'approved', 'comment', '=looks fine ' || g, 'at', '2026-01-01T00:05:00Z')),
    ARRAY['bob'],
    timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
    timestamptz '2026-01-01 00:05+00' + g * interval '1 minute',
    timestamptz '2026-01-01 00:30+00' + g * interval '1 minute',
    timestamptz '2026-01-01 01:30+00' + g * interval '1 minute',
    'expired', '[]'::jsonb, 8,
    '=looks fine ' || g, 'bob@example.com', 'bob@example.com', 60 + 30 * (g % 2)
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
"""


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def export(client: httpx.AsyncClient, token: str) -> tuple[int, int, int, float]:
    """Stream the export, keeping nothing; (rows, bytes, traced peak bytes, seconds)."""
    tracemalloc.start()
    started = time.perf_counter()
    rows = size = 0
    async with client.stream("GET", "/v1/audit/requests.csv", headers=bearer(token)) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            rows += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rows - 1, size, peak, elapsed


async def test_export_of_100k_requests_streams_with_flat_memory(
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
) -> None:
    async with audit_engine.begin() as conn:
        await conn.execute(text(SEED), {"first": 1, "last": 10_000})
    settings = audit_settings(audit_url, kafka_settings, oidc_settings)
    token = oidc_issuer.token_for("erin")
    async with running_audit(settings) as client:
        small_rows, small_size, small_peak, _ = await export(client, token)
        async with audit_engine.begin() as conn:
            await conn.execute(text(SEED), {"first": 10_001, "last": 100_000})
        rss_before = rss_kib()
        rows, size, peak, elapsed = await export(client, token)
        rss_growth = rss_kib() - rss_before
    print(  # noqa: T201 - the measured figures belong in the test log
        f"\nCSV export: 10k rows {small_size / 1e6:.1f} MB peak {small_peak / 1e6:.1f} MB; "
        f"100k rows {size / 1e6:.1f} MB peak {peak / 1e6:.1f} MB in {elapsed:.1f} s "
        f"({rows / elapsed:,.0f} rows/s under tracemalloc); RSS growth {rss_growth / 1024:.1f} MB"
    )
    assert (small_rows, rows) == (10_000, 100_000)
    # Ten times the rows, not ten times the memory: the peak is a batch, not the export.
    assert peak < small_peak * 2 + 4_000_000
    assert peak < size / 4
    assert rss_growth < 64 * 1024


async def test_client_leaving_mid_export_frees_the_connection(
    audit_url: str,
    audit_engine: AsyncEngine,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
) -> None:
    async with audit_engine.begin() as conn:
        await conn.execute(text(SEED), {"first": 1, "last": 30_000})
    settings = audit_settings(
        audit_url,
        kafka_settings,
        oidc_settings,
        db=DatabaseSettings(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1),
    )
    token = oidc_issuer.token_for("erin")
    async with running_audit(settings) as client:
        for _ in range(4):  # more than the pool holds: a leak would block the last ones
            async with client.stream(
                "GET", "/v1/audit/requests.csv", headers=bearer(token)
            ) as response:
                first = await anext(response.aiter_bytes())
                assert first.startswith(b"id,email,accountId")
            # Leaving early must cancel the COPY and give the connection back.
        rows, _, _, _ = await export(client, token)
        assert rows == 30_000
        verify = await client.get("/v1/audit/verify", headers=bearer(token))
        assert verify.status_code == 200
