"""`/v1/audit/stats`: monitoring figures over a time range."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from audit_service import service
from audit_service.dependencies import (
    FILTER_PARAMS,
    FiltersDep,
    ReaderPrincipal,
    SessionDep,
    only_params,
)
from audit_service.schemas import Stats

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token."},
    403: {"description": "Not an auditor (admins are not auditors unless in both groups)."},
    422: {"description": "Unknown parameter, bad range or bound."},
}


@router.get(
    "/stats",
    operation_id="get_audit_stats",
    summary="Request statistics",
    response_model=Stats,
    responses=_READ_PROBLEMS,
    dependencies=[Depends(only_params(*FILTER_PARAMS, "top"))],
)
async def get_stats(
    _: ReaderPrincipal,
    session: SessionDep,
    filters: FiltersDep,
    top: Annotated[
        int, Query(ge=1, le=1000, description="Largest accounts and users listed, 1..1000.")
    ] = 100,
) -> Stats:
    """Counts by status, approval rate, approval wait p50/p90, per account and per user.

    The range is on submission time (`created_from`, `created_to`); the other request filters
    apply too.
    """
    return await service.request_stats(session, filters=filters, top=top)
