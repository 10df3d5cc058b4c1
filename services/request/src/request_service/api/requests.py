"""`/v1/requests`: submit, list mine, read one, cancel, revoke, approve, reject."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from request_service import repository, service
from request_service.api.render import page_of, request_out
from request_service.dependencies import PolicyDep, SessionDep, SettingsDep
from request_service.models import RequestDecision
from request_service.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor
from request_service.schemas import (
    CommentBody,
    DecisionBody,
    RequestOut,
    RequestPage,
    SubmitRequest,
)
from teamkit.auth import CurrentPrincipal
from teamkit.events.common import RequestStatus
from teamkit.problems import Forbidden, problem_responses

router = APIRouter(prefix="/v1/requests", tags=["requests"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes retries safe: the same key with the same body returns the same "
        "request (200); with a different body, 409. Printable ASCII, at most 255 characters.",
    ),
]
_END_PROBLEMS = problem_responses(
    401,
    403,
    404,
    409,
    422,
    descriptions={
        409: "The status does not allow it (`invalid-transition`, with `current_status`).",
        422: "Invalid body, or a comment the settings require is missing.",
    },
)
_DECIDE_PROBLEMS = problem_responses(
    401,
    403,
    404,
    409,
    422,
    503,
    descriptions={
        403: "Not an approver of this request (`not-an-approver`), or one's own request "
        "(`self-approval`).",
        409: "Not pending any more (`invalid-transition`, with `current_status`), or this "
        "approver already decided (`already-decided`).",
        503: "The live approver check could not be made; nothing changed.",
    },
)
OptionalComment = Annotated[CommentBody | None, Body()]
OptionalDecision = Annotated[DecisionBody | None, Body()]


@router.post(
    "",
    status_code=201,
    operation_id="submit_request",
    summary="Submit a request",
    responses={
        200: {
            "model": RequestOut,
            "description": "A replay of an earlier submission with the same Idempotency-Key.",
        },
        **problem_responses(
            401,
            403,
            409,
            422,
            503,
            descriptions={
                403: "Denied by policy (`policy-denied`, with `reasons`), or an integration "
                "without scope team.requests.write.",
                409: "The same access is already pending (`duplicate-pending`, with "
                "`existing_request_id`), or the Idempotency-Key was used with another body.",
                422: "Invalid body (`errors`), or values the policy refuses (`reasons`).",
                503: "The policy service could not be asked; nothing was stored.",
            },
        ),
    },
)
async def submit(
    body: SubmitRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RequestOut:
    """Ask for a permission set on an account for a window; the policy service decides.

    Answers 201 with `Location` (status `pending`, or `approved` when no approval is needed),
    403/422 with every `reasons` when denied, 409 when the same access is already pending
    (`existing_request_id`), 503 when the policy service cannot be asked (nothing stored).
    """
    outcome = await service.submit_request(
        session,
        body=body,
        principal=principal,
        idempotency_key=idempotency_key,
        policy=policy,
        settings=settings,
    )
    response.status_code = 201 if outcome.created else 200
    response.headers["Location"] = f"/v1/requests/{outcome.request.id}"
    decisions = [] if outcome.created else await _decisions(session, outcome.request.id)
    return request_out(outcome.request, decisions)


async def _decisions(session: AsyncSession, request_id: UUID) -> list[RequestDecision]:
    async with session.begin():
        return (await repository.decisions_of(session, [request_id]))[request_id]


@router.get(
    "",
    operation_id="list_my_requests",
    summary="List my requests",
    responses=problem_responses(401, 403, 422),
)
async def list_mine(
    principal: CurrentPrincipal,
    session: SessionDep,
    status: Annotated[list[RequestStatus] | None, Query(max_length=10)] = None,
    account_id: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    created_after: Annotated[datetime | None, Query()] = None,
    created_before: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RequestPage:
    """The caller's own requests (an integration: those it submitted), newest first."""
    if principal.username is None and not principal.has_scope(service.SCOPE_WRITE):
        raise Forbidden(
            f"an integration needs scope {service.SCOPE_WRITE} to list the requests it submitted"
        )
    after = decode_cursor(cursor)
    async with session.begin():
        rows = await repository.list_requests(
            session,
            requester_username=principal.username,
            client_id=principal.client_id if principal.username is None else None,
            statuses=status or [],
            account_id=account_id,
            created_after=created_after,
            created_before=created_before,
            after=after,
            limit=limit + 1,
        )
        decisions = await repository.decisions_of(session, [r.id for r in rows[:limit]])
    return page_of(rows, decisions, limit)


@router.get(
    "/{request_id}",
    operation_id="get_request",
    summary="Read one request",
    responses=problem_responses(
        401, 404, descriptions={404: "No such request, or the caller may not see it."}
    ),
)
async def get_one(request_id: UUID, principal: CurrentPrincipal, session: SessionDep) -> RequestOut:
    """One request, for its requester, its approvers, admins and auditors (404 for others)."""
    row, decisions = await service.get_visible_request(
        session, request_id=request_id, principal=principal
    )
    return request_out(row, decisions)


@router.post(
    "/{request_id}/cancel",
    operation_id="cancel_request",
    summary="Cancel a request",
    responses=_END_PROBLEMS,
)
async def cancel(
    request_id: UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    body: OptionalComment = None,
) -> RequestOut:
    """Withdraw a pending or scheduled request (the requester, or an admin)."""
    row, decisions = await service.cancel_request(
        session, request_id=request_id, principal=principal, body=body or CommentBody()
    )
    return request_out(row, decisions)


@router.post(
    "/{request_id}/revoke",
    operation_id="revoke_request",
    summary="Revoke a grant early",
    responses=_END_PROBLEMS,
)
async def revoke(
    request_id: UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    body: OptionalComment = None,
) -> RequestOut:
    """End a scheduled or running grant early (requester, an approver of it, or an admin).

    The status becomes `revoked` once the lifecycle service confirms the access ended.
    """
    row, decisions = await service.revoke_request(
        session, request_id=request_id, principal=principal, body=body or CommentBody()
    )
    return request_out(row, decisions)


@router.post(
    "/{request_id}/approve",
    operation_id="approve_request",
    summary="Approve a request",
    responses=_DECIDE_PROBLEMS,
)
async def approve(
    request_id: UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    body: OptionalDecision = None,
) -> RequestOut:
    """Approve a pending request; approved once enough distinct approvers approved.

    The approver is re-checked live with the policy service; nobody approves their own request.
    """
    row, decisions = await service.decide_request(
        session,
        request_id=request_id,
        principal=principal,
        body=body or DecisionBody(),
        approve=True,
        policy=policy,
    )
    return request_out(row, decisions)


@router.post(
    "/{request_id}/reject",
    operation_id="reject_request",
    summary="Reject a request",
    responses=_DECIDE_PROBLEMS,
)
async def reject(
    request_id: UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    body: OptionalDecision = None,
) -> RequestOut:
    """Reject a pending request: one rejection by an approver rejects it."""
    row, decisions = await service.decide_request(
        session,
        request_id=request_id,
        principal=principal,
        body=body or DecisionBody(),
        approve=False,
        policy=policy,
    )
    return request_out(row, decisions)
