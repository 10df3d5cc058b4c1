"""The reconciler: compares the assignment ledger with `ListAccountAssignments` and repairs drift.

For every managed tuple (a ledger row): an active grant's assignment that is missing is created
again (`recreated`); an assignment that no active grant and no standing access needs, but that
is still present, is deleted (`removed`). Each repair re-checks AWS under the tuple's ledger lock
(skipping tuples a job holds right now) and emits `drift.repaired` in the same transaction as the
ledger update. Every run leaves a report (`GET /v1/reconciliations/latest`).
"""

import asyncio
from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lifecycle_service import repository
from lifecycle_service.config import Settings
from lifecycle_service.identity_center import AwsFailure, IdentityCenter
from lifecycle_service.jobs import JobCallLog
from lifecycle_service.repository import Tuple, tuple_of
from teamkit import outbox
from teamkit.events.lifecycle import DriftRepairedData, DriftRepairedV1

log = structlog.get_logger(__name__)


class Reconciler:
    """Runs reconciliations one at a time: periodically and on demand."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        ic: IdentityCenter,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ic = ic
        self._settings = settings
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run_periodically(self) -> None:
        """Reconcile every RECONCILE_INTERVAL_SECONDS until cancelled (0: never)."""
        interval = self._settings.RECONCILE_INTERVAL_SECONDS
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                report_id = await self.open_report(trigger="periodic", requested_by=None)
                await self.reconcile(report_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile.failed")

    async def open_report(self, *, trigger: str, requested_by: str | None) -> int:
        """Create the report row of a new run; return its id."""
        async with self._sessionmaker() as session, session.begin():
            return await repository.insert_reconciliation(
                session, trigger=trigger, requested_by=requested_by
            )

    def start(self, report_id: int) -> None:
        """Run `reconcile(report_id)` in the background (for the API)."""
        task = asyncio.create_task(self.reconcile(report_id), name=f"reconcile-{report_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel background runs."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reconcile(self, report_id: int) -> None:
        """Compare every managed tuple with Identity Center, repair drift, fill the report."""
        async with self._lock:
            repairs: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            async with self._sessionmaker() as session:
                rows = await repository.ledger_rows(session)
            groups: dict[tuple[str, str], list[Row[Any]]] = defaultdict(list)
            for row in rows:
                groups[(row.account_id, row.permission_set_arn)].append(row)
            for (account_id, permission_set_arn), members in groups.items():
                try:
                    present = await self._ic.assigned_users(
                        account_id=account_id, permission_set_arn=permission_set_arn
                    )
                except AwsFailure as failure:
                    errors.append(
                        {
                            "account_id": account_id,
                            "permission_set_arn": permission_set_arn,
                            "error_code": failure.code,
                            "error_message": failure.message,
                        }
                    )
                    continue
                for row in members:
                    if _needs_repair(row, row.principal_id in present):
                        await self._repair(tuple_of(row), repairs, errors)
            async with self._sessionmaker() as session, session.begin():
                await repository.finish_reconciliation(
                    session, report_id, tuples_checked=len(rows), repairs=repairs, errors=errors
                )
            log.info("reconcile.finished", report_id=report_id, repairs=len(repairs))

    async def _repair(
        self, target: Tuple, repairs: list[dict[str, Any]], errors: list[dict[str, Any]]
    ) -> None:
        async with self._ic.operation_slots:
            try:
                async with self._sessionmaker() as session, session.begin():
                    ledger = await repository.lock_ledger(session, target, skip_locked=True)
                    if ledger is None:
                        return  # a job is changing this tuple right now; the next run looks again
                    present = await self._ic.is_assigned(target)
                    if not _needs_repair(ledger, present):
                        return
                    holder = ledger.holders[0] if ledger.holders else None
                    if present:
                        action = "removed"
                        detail = (
                            "the assignment was present although no active grant or standing "
                            "access needs it; deleted"
                        )
                        aws_id = await self._ic.delete(
                            target,
                            JobCallLog(
                                self._sessionmaker,
                                request_id=None,
                                operation="delete",
                                target=target,
                            ),
                        )
                    else:
                        action = "recreated"
                        detail = (
                            f"the assignment of active grant {holder} was missing from "
                            "Identity Center; created again"
                        )
                        aws_id = await self._ic.create(
                            target,
                            JobCallLog(
                                self._sessionmaker,
                                request_id=None,
                                operation="create",
                                target=target,
                            ),
                        )
                    await repository.update_ledger(session, ledger.id, assigned=not present)
                    await outbox.add(
                        session,
                        DriftRepairedV1(
                            subject=str(holder) if holder else target.key(),
                            data=DriftRepairedData(
                                principal_id=target.principal_id,
                                account_id=target.account_id,
                                permission_set_arn=target.permission_set_arn,
                                action=action,
                                detail=detail,
                                request_id=holder,
                                aws_request_id=aws_id,
                            ),
                        ),
                    )
                repairs.append(
                    {
                        "principal_id": target.principal_id,
                        "account_id": target.account_id,
                        "permission_set_arn": target.permission_set_arn,
                        "action": action,
                        "request_id": str(holder) if holder else None,
                        "aws_request_id": aws_id,
                    }
                )
            except AwsFailure as failure:
                errors.append(
                    {
                        "principal_id": target.principal_id,
                        "account_id": target.account_id,
                        "permission_set_arn": target.permission_set_arn,
                        "error_code": failure.code,
                        "error_message": failure.message,
                    }
                )


def _needs_repair(ledger: Row[Any], present: bool) -> bool:
    """Active grants need the assignment; without them only standing access may keep it."""
    if ledger.holders:
        return not present
    return present and not ledger.standing
