"""The directory cache: search and paginate it, see its state, refresh it from AWS."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from policy_service import service
from policy_service.dependencies import (
    DirectoryReaderPrincipal,
    PolicyAdmin,
    RefresherDep,
    SessionDep,
    SettingsDep,
)
from policy_service.schemas import (
    AccountView,
    DirectoryStatus,
    GroupView,
    OuView,
    Page,
    PermissionSetView,
    RefreshResult,
    UserView,
)
from teamkit.problems import problem_responses

router = APIRouter(prefix="/v1/directory", tags=["directory"])

Search = Annotated[
    str | None,
    Query(max_length=200, description="Case-insensitive substring of the name (or id, email)."),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=2048)]
_READ = problem_responses(
    403,
    422,
    descriptions={
        403: "Needs the admin or auditor role, or scope team.directory.read.",
        422: "Invalid query, or a cursor this API did not return (`invalid-cursor`).",
    },
)


@router.get("/accounts", operation_id="list_accounts", summary="Search accounts", responses=_READ)
async def list_accounts(
    _: DirectoryReaderPrincipal,
    session: SessionDep,
    search: Search = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AccountView]:
    """Accounts by name, each with its OU path."""
    page: Page[Any] = await service.directory_page(
        session, kind="accounts", search=search, cursor=cursor, limit=limit
    )
    return page


@router.get("/ous", operation_id="list_ous", summary="Search organizational units", responses=_READ)
async def list_ous(
    _: DirectoryReaderPrincipal,
    session: SessionDep,
    search: Search = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[OuView]:
    """Organizational units (and the root) by name, each with its path."""
    page: Page[Any] = await service.directory_page(
        session, kind="ous", search=search, cursor=cursor, limit=limit
    )
    return page


@router.get(
    "/permission-sets",
    operation_id="list_permission_sets",
    summary="Search permission sets",
    responses=_READ,
)
async def list_permission_sets(
    _: DirectoryReaderPrincipal,
    session: SessionDep,
    search: Search = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[PermissionSetView]:
    """Permission sets by name, with their session duration."""
    page: Page[Any] = await service.directory_page(
        session, kind="permission-sets", search=search, cursor=cursor, limit=limit
    )
    return page


@router.get("/users", operation_id="list_users", summary="Search users", responses=_READ)
async def list_users(
    _: DirectoryReaderPrincipal,
    session: SessionDep,
    search: Search = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[UserView]:
    """Identity Center users by user name."""
    page: Page[Any] = await service.directory_page(
        session, kind="users", search=search, cursor=cursor, limit=limit
    )
    return page


@router.get("/groups", operation_id="list_groups", summary="Search groups", responses=_READ)
async def list_groups(
    _: DirectoryReaderPrincipal,
    session: SessionDep,
    search: Search = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[GroupView]:
    """Identity Center groups by name."""
    page: Page[Any] = await service.directory_page(
        session, kind="groups", search=search, cursor=cursor, limit=limit
    )
    return page


@router.get(
    "/status",
    operation_id="get_directory_status",
    summary="Directory cache status",
    responses=problem_responses(
        403, descriptions={403: "Needs the admin or auditor role, or scope team.directory.read."}
    ),
)
async def directory_status(
    _: DirectoryReaderPrincipal, session: SessionDep, refresher: RefresherDep
) -> DirectoryStatus:
    """When the cache was last refreshed, whether the last attempt failed, and the counts."""
    return await service.directory_status(session, refreshing=refresher.running)


@router.post(
    "/refresh",
    operation_id="refresh_directory",
    summary="Refresh the directory cache",
    responses=problem_responses(
        403, descriptions={403: "Needs the admin role or scope team.policies.admin."}
    ),
)
async def refresh_directory(
    principal: PolicyAdmin, session: SessionDep, refresher: RefresherDep, config: SettingsDep
) -> RefreshResult:
    """Refresh the cache from AWS now and report the counts (a failure keeps the last copy).

    A refresh already running is waited for, then this one runs.
    """
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    return await refresher.refresh(requested_by=actor)
