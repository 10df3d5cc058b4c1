"""Operations API of the reconciler: start a run, read the latest report."""

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lifecycle_service import repository
from lifecycle_service.errors import NoReconciliation, WorkersDisabled
from lifecycle_service.reconciler import Reconciler
from lifecycle_service.schemas import ReconciliationOut
from teamkit.auth import AdminPrincipal, CurrentPrincipal
from teamkit.problems import Forbidden, problem_responses

router = APIRouter(prefix="/v1/reconciliations", tags=["reconciliations"])


def _report(row: Any) -> ReconciliationOut:
    return ReconciliationOut(
        id=row.id,
        trigger=row.trigger,
        requested_by=row.requested_by,
        status="finished" if row.finished_at else "running",
        started_at=row.started_at,
        finished_at=row.finished_at,
        tuples_checked=row.tuples_checked,
        repairs=row.repairs,
        errors=row.errors,
    )


@router.post(
    "",
    operation_id="start_reconciliation",
    summary="Start a reconciliation",
    status_code=202,
    responses=problem_responses(
        403,
        503,
        descriptions={
            403: "Needs the admin role.",
            503: "This replica runs without workers (`workers-disabled`), or the issuer is "
            "unreachable.",
        },
    ),
)
async def start_reconciliation(request: Request, admin: AdminPrincipal) -> ReconciliationOut:
    """Compare the ledger with Identity Center now and repair drift (admin); runs in background."""
    reconciler: Reconciler | None = request.state.extras.get("reconciler")
    if reconciler is None:
        raise WorkersDisabled(
            "this replica runs with LIFECYCLE_WORKERS_ENABLED=false; call a worker replica"
        )
    report_id = await reconciler.open_report(
        trigger="api", requested_by=admin.username or admin.client_id
    )
    reconciler.start(report_id)
    maker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    async with maker() as session:
        row = await repository.latest_reconciliation(session)
    return _report(row)


@router.get(
    "/latest",
    operation_id="get_latest_reconciliation",
    summary="The latest reconciliation report",
    responses=problem_responses(
        403,
        404,
        descriptions={
            403: "Needs the admin or auditor role.",
            404: "No reconciliation has run yet (`no-reconciliation`).",
        },
    ),
)
async def latest_reconciliation(request: Request, principal: CurrentPrincipal) -> ReconciliationOut:
    """The most recent run (admin or auditor): status, tuples checked, repairs and errors."""
    if not (principal.is_admin or principal.is_auditor):
        raise Forbidden("this needs the admin or auditor role (membership of the configured group)")
    maker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    async with maker() as session:
        row = await repository.latest_reconciliation(session)
    if row is None:
        raise NoReconciliation("No reconciliation has run yet; start one with POST.")
    return _report(row)
