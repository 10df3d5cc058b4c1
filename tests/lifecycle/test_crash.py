"""Crash safety: the real service process killed with SIGKILL mid-flight, then restarted."""

import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from devstack.moto_server import MotoProcess
from devstack.net import free_port
from devstack.processes import ManagedProcess
from lifecycle_service.repository import Tuple
from teamkit.clock import utc_now
from teamkit.settings import KafkaSettings
from tests.harness.aws_fault_proxy import FaultProxy
from tests.harness.oidc import RunningIssuer
from tests.harness.postgres import MigratedDb
from tests.harness.wait import eventually
from tests.lifecycle.conftest import Driver, moto_assigned, wait_ready, window


@dataclass
class ServiceProcess:
    """The lifecycle service as a child process that the test may kill and restart."""

    env: dict[str, str]
    base_url: str
    log_file: Path
    process: ManagedProcess | None = None

    async def start(self) -> float:
        """Start it and wait until ready; return how long that took."""
        began = time.monotonic()
        self.process = ManagedProcess(
            "lifecycle", [sys.executable, "-m", "lifecycle_service"], self.log_file, self.env
        )
        self.process.start()
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as http:
            try:
                await wait_ready(http, timeout=60)
            except AssertionError:
                raise AssertionError(f"lifecycle did not start:\n{self.process.tail()}") from None
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no rollback, no flush."""
        assert self.process is not None
        assert self.process.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.process.wait(10)

    def stop(self) -> None:
        """Stop it gracefully if it runs."""
        if self.process is not None:
            self.process.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def service_process(
    migrated_database: MigratedDb,
    kafka_settings: KafkaSettings,
    oidc_issuer: RunningIssuer,
    proxy: FaultProxy,
    tmp_path: Path,
) -> AsyncIterator[ServiceProcess]:
    url = await migrated_database("lifecycle")
    port = free_port()
    env = {
        "LIFECYCLE_DATABASE_URL": url,
        "LIFECYCLE_PORT": str(port),
        "LIFECYCLE_STATUS_POLL_SECONDS": "0.05",
        "LIFECYCLE_RETRY_BASE_SECONDS": "0.02",
        "LIFECYCLE_RETRY_MAX_SECONDS": "0.2",
        "LIFECYCLE_RECONCILE_INTERVAL_SECONDS": "0",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_TOPIC_PREFIX": kafka_settings.KAFKA_TOPIC_PREFIX,
        "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "OIDC_ISSUER": oidc_issuer.issuer_url,
        "AWS_ENDPOINT_URL": proxy.endpoint_url,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TEAM_DEV_MODE": "1",
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "WARNING",
    }
    handle = ServiceProcess(env, f"http://127.0.0.1:{port}", tmp_path / "lifecycle.log")
    try:
        yield handle
    finally:
        handle.stop()


async def _passed(moment: datetime) -> None:
    assert utc_now() > moment


async def test_sigkill_mid_grant_and_restart_ends_every_grant(
    service_process: ServiceProcess,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    proxy: FaultProxy,
    private_moto: MotoProcess,
    tuples: Iterator[Tuple],
) -> None:
    await service_process.start()
    dsn = service_process.env["LIFECYCLE_DATABASE_URL"].replace(
        "postgresql+asyncpg://", "postgresql://"
    )
    driver = Driver(kafka_settings, dsn, producer)
    moto = private_moto.endpoint_url
    active, scheduled, in_flight = next(tuples), next(tuples), next(tuples)

    # A: active when the process dies; its end passes during the downtime.
    a_id = await driver.approve(active, start=window(0.2, 0)[0], end=window(4.0, 0)[0])
    await driver.wait_event(a_id, "access.granted")
    # B: scheduled when the process dies; its start passes during the downtime.
    # Windows leave room for a slow restart on a loaded machine: an end that passes before the
    # start job runs is (rightly) never granted, which is not what this test is about.
    b_start, b_end = window(2.5, 28.0)
    b_id = await driver.approve(scheduled, start=b_start, end=b_end)
    await driver.wait_event(b_id, "grant.scheduled")
    # C: killed between CreateAccountAssignment (done in moto) and the database commit.
    proxy.in_progress(1, operations=("create",))
    proxy.delay("DescribeAccountAssignmentCreationStatus", 120.0, times=1)
    c_id = await driver.approve(in_flight, start=window(0, 0)[0], end=window(0, 30.0)[1])

    async def create_reached_moto() -> None:
        assert await moto_assigned(moto, in_flight) == 1

    await eventually(create_reached_moto)
    service_process.kill()
    proxy.clear()
    assert await driver.state(c_id) == "scheduled"  # the grant's commit never happened
    a_end = (await driver.fetch("SELECT end_at FROM grant_record WHERE request_id=$1", a_id))[0][
        "end_at"
    ]
    await eventually(lambda: _passed(a_end), timeout=30)
    await eventually(lambda: _passed(b_start), timeout=30)
    assert await moto_assigned(moto, active) == 1  # nobody removed it while we were down

    restart_began = time.monotonic()
    await service_process.start()
    ended = await driver.wait_event(a_id, "access.ended", timeout=30)
    overdue_fired_after = time.monotonic() - restart_began
    assert ended["data"]["assignment_action"] == "removed"
    assert await moto_assigned(moto, active) == 0
    # Overdue timers fire as soon as the service is back (start-up included).
    assert overdue_fired_after < 20, overdue_fired_after

    granted_c = await driver.wait_event(c_id, "access.granted")
    # The crash-hidden create is recognised as ours (not standing access), and not repeated.
    assert granted_c["data"]["assignment_action"] == "created"
    assert await moto_assigned(moto, in_flight) == 1
    granted_b = await driver.wait_event(b_id, "access.granted")
    assert granted_b["data"]["assignment_action"] == "created"
    assert await moto_assigned(moto, scheduled) == 1

    for request_id in (b_id, c_id):
        ended = await driver.wait_event(request_id, "access.ended", timeout=60)
        assert ended["data"]["assignment_action"] == "removed"
    for target in (active, scheduled, in_flight):
        assert await moto_assigned(moto, target) == 0
    states = await driver.fetch("SELECT state FROM grant_record ORDER BY start_at")
    assert [s["state"] for s in states] == ["ended", "ended", "ended"]


async def test_sigkill_between_delete_and_commit_does_not_fail_the_revoke(
    service_process: ServiceProcess,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    proxy: FaultProxy,
    private_moto: MotoProcess,
    tuples: Iterator[Tuple],
) -> None:
    await service_process.start()
    dsn = service_process.env["LIFECYCLE_DATABASE_URL"].replace(
        "postgresql+asyncpg://", "postgresql://"
    )
    driver = Driver(kafka_settings, dsn, producer)
    moto = private_moto.endpoint_url
    target = next(tuples)
    request_id = await driver.approve(target, start=window(0, 0)[0], end=window(300, 0)[0])
    await driver.wait_event(request_id, "access.granted")
    # The deletion answers IN_PROGRESS, and its first status poll hangs: the kill lands between
    # the DeleteAccountAssignment that moto executed and the job's commit.
    proxy.in_progress(1, operations=("delete",))
    proxy.delay("DescribeAccountAssignmentDeletionStatus", 120.0, times=1)
    await driver.revoke(request_id, target)

    async def delete_reached_moto() -> None:
        assert await moto_assigned(moto, target) == 0

    await eventually(delete_reached_moto)
    service_process.kill()
    proxy.clear()
    assert await driver.state(request_id) == "active"

    await service_process.start()
    ended = await driver.wait_event(request_id, "access.ended", timeout=30)
    assert ended["data"]["reason"] == "revoked"
    assert ended["data"]["assignment_action"] == "removed"
    assert "revoke.failed" not in await driver.event_types(request_id)
    assert await moto_assigned(moto, target) == 0
    # Moto answered the second delete with ResourceNotFound: checked first, so never called.
    assert proxy.count("DeleteAccountAssignment") == 1
