"""`/v1/approvals`: the caller's approval inbox."""

from typing import Annotated

from fastapi import APIRouter, Query

from request_service import repository
from request_service.api.render import page_of
from request_service.dependencies import SessionDep
from request_service.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor
from request_service.schemas import RequestPage
from teamkit.auth import CurrentPrincipal
from teamkit.problems import Forbidden, problem_responses

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


@router.get(
    "",
    operation_id="list_my_approvals",
    summary="My approval inbox",
    responses=problem_responses(401, 403, 422),
)
async def inbox(
    principal: CurrentPrincipal,
    session: SessionDep,
    decided: Annotated[
        bool,
        Query(description="false: requests waiting for my decision; true: those I decided."),
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RequestPage:
    """Pending requests I may approve and have not decided (`decided=true`: those I decided)."""
    if principal.username is None:
        raise Forbidden(
            "the approval inbox belongs to a person; an integration relays decisions with "
            "`on_behalf_of` on POST /v1/requests/{id}/approve"
        )
    after = decode_cursor(cursor)
    async with session.begin():
        rows = await repository.list_inbox(
            session,
            approver_username=principal.username,
            decided=decided,
            after=after,
            limit=limit + 1,
        )
        decisions = await repository.decisions_of(session, [r.id for r in rows[:limit]])
    return page_of(rows, decisions, limit)
