"""CRUD `/v1/webhooks`: admins subscribe ticketing systems to signed event deliveries."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from notify_service import service
from notify_service.dependencies import SessionDep
from notify_service.schemas import Page, WebhookCreate, WebhookCreated, WebhookOut, WebhookUpdate
from teamkit.auth import AdminPrincipal
from teamkit.problems import problem_responses

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_ADMIN = {403: "Not an admin."}
_NOT_FOUND = {**_ADMIN, 404: "No such webhook (`webhook-not-found`)."}


@router.post(
    "",
    status_code=201,
    operation_id="create_webhook",
    summary="Subscribe a webhook",
    responses=problem_responses(401, 403, 422, descriptions=_ADMIN),
)
async def create_webhook(
    body: WebhookCreate, session: SessionDep, admin: AdminPrincipal
) -> WebhookCreated:
    """Subscribe a URL to event types. The signing `secret` is in this answer only: store it."""
    return await service.create_webhook(session, body=body, actor=admin)


@router.get(
    "",
    operation_id="list_webhooks",
    summary="List webhook subscriptions",
    responses=problem_responses(
        401,
        403,
        422,
        descriptions={**_ADMIN, 422: "A cursor this API did not return (`invalid-cursor`)."},
    ),
)
async def list_webhooks(
    session: SessionDep,
    _admin: AdminPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[WebhookOut]:
    """Webhook subscriptions, oldest first, without secrets."""
    return await service.list_webhooks(session, limit=limit, cursor=cursor)


@router.get(
    "/{webhook_id}",
    operation_id="get_webhook",
    summary="Read a webhook subscription",
    responses=problem_responses(401, 403, 404, 422, descriptions=_NOT_FOUND),
)
async def get_webhook(webhook_id: UUID, session: SessionDep, _admin: AdminPrincipal) -> WebhookOut:
    """One webhook subscription, without its secret."""
    return await service.get_webhook(session, webhook_id=webhook_id)


@router.patch(
    "/{webhook_id}",
    operation_id="update_webhook",
    summary="Change a webhook subscription",
    responses=problem_responses(401, 403, 404, 422, descriptions=_NOT_FOUND),
)
async def update_webhook(
    webhook_id: UUID, body: WebhookUpdate, session: SessionDep, _admin: AdminPrincipal
) -> WebhookOut:
    """Change URL, event types, description or the enabled switch; the secret stays."""
    return await service.update_webhook(session, webhook_id=webhook_id, body=body)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    operation_id="delete_webhook",
    summary="Delete a webhook subscription",
    responses=problem_responses(401, 403, 404, 422, descriptions=_NOT_FOUND),
)
async def delete_webhook(webhook_id: UUID, session: SessionDep, _admin: AdminPrincipal) -> Response:
    """Remove a subscription; its pending deliveries are skipped."""
    await service.delete_webhook(session, webhook_id=webhook_id)
    return Response(status_code=204)
