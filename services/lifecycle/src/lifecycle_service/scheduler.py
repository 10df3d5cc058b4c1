"""The durable timer scheduler: sleeps until the earliest due timer, wakes on NOTIFY.

Two lanes share the `timer` table:

- the **approval lane** fires approval-expiry timers in batches (no AWS call, one transaction
  per batch);
- the **AWS lane** takes an operation slot first, then claims the earliest due window timer with
  `FOR UPDATE SKIP LOCKED` and runs its job in that same transaction (see `jobs`). Slots are
  handed out first come first served, so timers are worked off in due order at the limit.

Replicas are safe: a claimed timer stays locked until its job commits or rolls back. After a
crash the lock is gone with the connection, so every overdue timer fires at once on restart.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lifecycle_service import jobs, repository, service
from lifecycle_service.config import Settings
from lifecycle_service.identity_center import IdentityCenter
from lifecycle_service.models import TIMER_CHANNEL, timer
from teamkit.clock import utc_now

log = structlog.get_logger(__name__)


class Scheduler:
    """Runs the approval lane, the AWS lane and the NOTIFY listener until cancelled."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        ic: IdentityCenter,
        settings: Settings,
    ) -> None:
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._ic = ic
        self._settings = settings
        self._wake_approval = asyncio.Event()
        self._wake_aws = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()
        self.fired = 0
        self.failed_jobs = 0
        self.listening = False

    def wake(self) -> None:
        """Re-read the earliest due time now (a timer was added or released)."""
        self._wake_approval.set()
        self._wake_aws.set()

    async def run(self) -> None:
        """Run all lanes; cancelling this cancels the in-flight jobs (their work rolls back)."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen(), name="lifecycle-timer-listen")
                group.create_task(self._approval_lane(), name="lifecycle-approval-lane")
                group.create_task(self._aws_lane(), name="lifecycle-aws-lane")
        finally:
            for task in list(self._jobs):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._jobs, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """Scheduler facts for `/readyz`."""
        return {
            "listening": self.listening,
            "fired": self.fired,
            "jobs_in_flight": len(self._jobs),
            "failed_jobs": self.failed_jobs,
        }

    async def _listen(self) -> None:
        while True:
            try:
                async with self._engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection

                    def on_notify(*_: object) -> None:
                        self.wake()

                    await driver.add_listener(TIMER_CHANNEL, on_notify)
                    self.listening = True
                    # Timers added while we were not listening are found by this wake-up.
                    self.wake()
                    try:
                        while True:
                            await asyncio.sleep(self._settings.TIMER_POLL_SECONDS)
                            await driver.execute("SELECT 1")
                    finally:
                        self.listening = False
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(TIMER_CHANNEL, on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a lost connection
                log.warning("scheduler.listen_failed", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _sleep_until_due(self, kinds: Sequence[str], wake: asyncio.Event) -> None:
        """Sleep until the earliest unlocked pending timer of `kinds` is due, or a wake-up."""
        async with self._sessionmaker() as session, session.begin():
            # SKIP LOCKED: timers being fired right now must not make this loop spin.
            due = await session.scalar(
                select(timer.c.due_at)
                .where(timer.c.state == "pending", timer.c.kind.in_(kinds))
                .order_by(timer.c.due_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        timeout = self._settings.TIMER_POLL_SECONDS
        if due is not None:
            timeout = min(timeout, max(0.0, (due - utc_now()).total_seconds()))
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)

    async def _approval_lane(self) -> None:
        while True:
            try:
                self._wake_approval.clear()
                while True:
                    async with self._sessionmaker() as session, session.begin():
                        count = await service.fire_approval_timers(
                            session, limit=self._settings.TIMER_BATCH_SIZE
                        )
                    self.fired += count
                    if count < self._settings.TIMER_BATCH_SIZE:
                        break
                await self._sleep_until_due(service.APPROVAL_KINDS, self._wake_approval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler.approval_lane_failed")
                await asyncio.sleep(1.0)

    async def _aws_lane(self) -> None:
        slots = self._ic.operation_slots
        while True:
            await slots.acquire()
            self._wake_aws.clear()
            claimed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._job(claimed), name="lifecycle-job")
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)
            try:
                found = await claimed
            except Exception:  # noqa: BLE001 - the job logged it; wait before claiming again
                found = False
            if not found:
                try:
                    await self._sleep_until_due(service.AWS_KINDS, self._wake_aws)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduler.aws_lane_failed")
                    await asyncio.sleep(1.0)

    async def _job(self, claimed: "asyncio.Future[bool]") -> None:
        timer_row = None
        try:
            async with self._sessionmaker() as session, session.begin():
                await repository.set_statement_timeout(
                    session, self._settings.JOB_STATEMENT_TIMEOUT_SECONDS
                )
                rows = await repository.claim_due_timers(
                    session, kinds=service.AWS_KINDS, limit=1, now=utc_now()
                )
                if not rows:
                    claimed.set_result(False)
                    return
                timer_row = rows[0]
                claimed.set_result(True)
                await jobs.fire(
                    session, timer=timer_row, ic=self._ic, sessionmaker=self._sessionmaker
                )
            self.fired += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed_jobs += 1
            if not claimed.done():
                claimed.set_exception(exc)
            log.exception("scheduler.job_failed", timer_id=timer_row.id if timer_row else None)
            if timer_row is not None:
                with contextlib.suppress(Exception):
                    async with self._sessionmaker() as session, session.begin():
                        await repository.defer_timer(
                            session,
                            timer_row.id,
                            delay=self._settings.TIMER_RETRY_SECONDS,
                            error=repr(exc),
                        )
                self.wake()
        finally:
            if not claimed.done():
                claimed.set_result(False)
            self._ic.operation_slots.release()
