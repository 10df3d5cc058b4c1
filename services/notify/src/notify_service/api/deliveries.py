"""`GET /v1/deliveries`: what was sent to whom, when, and why something failed (admins)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from notify_service import service
from notify_service.dependencies import SessionDep
from notify_service.schemas import (
    DeliveryChannel,
    DeliveryFilters,
    DeliveryOut,
    DeliveryStatus,
    Page,
)
from teamkit.auth import AdminPrincipal
from teamkit.problems import problem_responses

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

_PROBLEMS = problem_responses(
    401,
    403,
    422,
    descriptions={
        422: "A cursor this API did not return (`invalid-cursor`), or a bad query value.",
        403: "Not an admin.",
    },
)


@router.get(
    "", operation_id="list_deliveries", summary="List notification deliveries", responses=_PROBLEMS
)
async def list_deliveries(
    session: SessionDep,
    _admin: AdminPrincipal,
    request_id: UUID | None = None,
    channel: DeliveryChannel | None = None,
    status: DeliveryStatus | None = None,
    event_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[DeliveryOut]:
    """Deliveries newest first, filtered by request, channel, status or source event."""
    filters = DeliveryFilters(
        request_id=request_id, channel=channel, status=status, event_id=event_id
    )
    return await service.list_deliveries(session, filters=filters, limit=limit, cursor=cursor)
