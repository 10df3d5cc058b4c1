"""Operations API of grants: list, one grant's timeline, admin retry."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lifecycle_service import repository, service
from lifecycle_service.errors import GrantNotFound, GrantNotRetryable
from lifecycle_service.schemas import (
    AwsCallOut,
    GrantDetail,
    GrantOut,
    GrantPage,
    GrantState,
    TimerOut,
)
from teamkit.auth import AdminPrincipal, CurrentPrincipal
from teamkit.pagination import decode_time_id, encode_time_id
from teamkit.problems import Forbidden, problem_responses

router = APIRouter(prefix="/v1/grants", tags=["grants"])

_OPERATOR = "Needs the admin or auditor role."
_NO_GRANT = "No grant for this request (`grant-not-found`)."


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    return maker


def _require_operator(principal: Any) -> None:
    if not (principal.is_admin or principal.is_auditor):
        raise Forbidden("this needs the admin or auditor role (membership of the configured group)")


def grant_out(row: Row[Any]) -> GrantOut:
    """API form of a grant row."""
    return GrantOut(
        request_id=row.request_id,
        principal_id=row.principal_id,
        account_id=row.account_id,
        permission_set_arn=row.permission_set_arn,
        start=row.start_at,
        end=row.end_at,
        state=row.state,
        assignment_action=row.assignment_action,
        granted_at=row.granted_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        error_kind=row.error_kind,
        error_code=row.error_code,
        error_message=row.error_message,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get(
    "",
    operation_id="list_grants",
    summary="List grants",
    responses=problem_responses(
        403,
        422,
        descriptions={
            422: "A cursor this API did not return (`invalid-cursor`), or a bad query value.",
            403: _OPERATOR,
        },
    ),
)
async def list_grants(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    state: GrantState | None = None,
    account_id: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    user_id: Annotated[
        str | None, Query(max_length=64, description="Identity Center user id.")
    ] = None,
) -> GrantPage:
    """Grants newest first (admin or auditor), filtered by state, account and user."""
    _require_operator(principal)
    after = decode_time_id(cursor) if cursor else None
    async with _sessionmaker(request)() as session:
        rows = await repository.list_grants(
            session,
            limit=limit + 1,
            after=after,
            state=state,
            account_id=account_id,
            principal_id=user_id,
        )
    page = list(rows[:limit])
    next_cursor = (
        encode_time_id(page[-1].created_at, page[-1].request_id) if len(rows) > limit else None
    )
    return GrantPage(items=[grant_out(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/{request_id}",
    operation_id="get_grant",
    summary="One grant with its timeline",
    responses=problem_responses(403, 404, 422, descriptions={403: _OPERATOR, 404: _NO_GRANT}),
)
async def get_grant(request: Request, principal: CurrentPrincipal, request_id: UUID) -> GrantDetail:
    """The grant with its timers and Identity Center calls (with AWS request ids)."""
    _require_operator(principal)
    async with _sessionmaker(request)() as session:
        row = await repository.get_grant(session, request_id)
        if row is None:
            raise GrantNotFound(
                f"No grant for request {request_id}: it was never approved, or the id is wrong."
            )
        timers = await repository.timers_of(session, request_id)
        calls = await repository.calls_of(session, request_id)
    return GrantDetail(
        **grant_out(row).model_dump(),
        timers=[
            TimerOut(
                id=t.id,
                kind=t.kind,
                due_at=t.due_at,
                state=t.state,
                attempts=t.attempts,
                fired_at=t.fired_at,
                last_error=t.last_error,
            )
            for t in timers
        ],
        aws_calls=[
            AwsCallOut(
                id=c.id,
                operation=c.operation,
                status=c.status,
                aws_request_id=c.aws_request_id,
                error_code=c.error_code,
                error_message=c.error_message,
                started_at=c.started_at,
                finished_at=c.finished_at,
            )
            for c in calls
        ],
    )


@router.post(
    "/{request_id}/retry",
    operation_id="retry_grant",
    summary="Retry a grant in error",
    status_code=202,
    responses=problem_responses(
        403,
        404,
        409,
        422,
        descriptions={
            403: "Needs the admin role.",
            404: _NO_GRANT,
            409: "The grant is not in error, or its window is over (`grant-not-retryable`).",
        },
    ),
)
async def retry_grant(request: Request, admin: AdminPrincipal, request_id: UUID) -> GrantOut:
    """Reschedule a failed grant (start now) or run a failed revoke again (admin)."""
    async with _sessionmaker(request)() as session, session.begin():
        row = await service.retry_grant(session, request_id=request_id, admin=admin)
    return grant_out(row)


__all__ = ["GrantNotRetryable", "router"]
