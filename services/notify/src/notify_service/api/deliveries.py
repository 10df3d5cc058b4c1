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

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])

_PROBLEMS: dict[int | str, dict[str, str]] = {
    400: {"description": "Invalid cursor."},
    401: {"description": "No valid bearer token."},
    403: {"description": "Not an admin."},
}


@router.get("", operation_id="list_deliveries", responses=_PROBLEMS)
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
