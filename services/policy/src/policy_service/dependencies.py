"""FastAPI dependencies of the policy service: sessions, roles and version preconditions."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policy_service import service
from policy_service.cache import PolicyCache
from policy_service.config import Settings
from policy_service.directory import DirectoryReader
from policy_service.service import DirectoryRefresher
from teamkit.auth import CurrentPrincipal, Principal
from teamkit.problems import Forbidden, Unprocessable

ADMIN_SCOPE = "team.policies.admin"
EVALUATE_SCOPE = "team.policy.evaluate"
DIRECTORY_SCOPE = "team.directory.read"


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for one request; the use case opens (and commits) its transaction."""
    maker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    async with maker() as opened:
        yield opened


SessionDep = Annotated[AsyncSession, Depends(session)]


def settings(request: Request) -> Settings:
    """The service's settings from the lifespan state."""
    current: Settings = request.state.settings
    return current


SettingsDep = Annotated[Settings, Depends(settings)]


def refresher(request: Request) -> DirectoryRefresher:
    """The directory refresher started by the lifespan."""
    found: DirectoryRefresher = request.state.extras["refresher"]
    return found


RefresherDep = Annotated[DirectoryRefresher, Depends(refresher)]


def cache(request: Request) -> PolicyCache:
    """The in-memory directory and policy copies of this process."""
    found: PolicyCache = request.state.extras["cache"]
    return found


CacheDep = Annotated[PolicyCache, Depends(cache)]


def live_reader(request: Request, config: SettingsDep) -> DirectoryReader | None:
    """The AWS reader for live approver checks, unless they are turned off."""
    return refresher(request).reader if config.APPROVER_CHECK_LIVE else None


async def _roles(db: AsyncSession, principal: Principal) -> tuple[bool, bool]:
    # The token's roles (TEAM_ADMIN_GROUP / TEAM_AUDITOR_GROUP) or the groups named in the
    # settings, so an admin can rename the groups without redeploying this service.
    if principal.is_admin and principal.is_auditor:
        return True, True
    current = await service.get_settings(db)
    return (
        principal.is_admin or current.admin_group in principal.groups,
        principal.is_auditor or current.auditor_group in principal.groups,
    )


async def require_policy_admin(principal: CurrentPrincipal, db: SessionDep) -> Principal:
    """Admins, and clients with scope team.policies.admin."""
    if principal.has_scope(ADMIN_SCOPE):
        return principal
    is_admin, _ = await _roles(db, principal)
    if is_admin:
        return principal
    raise Forbidden(
        f"changing policies and settings needs the admin role or scope {ADMIN_SCOPE}",
        required_scopes=[ADMIN_SCOPE],
    )


async def require_policy_reader(principal: CurrentPrincipal, db: SessionDep) -> Principal:
    """Admins, auditors (read-only), and clients with scope team.policies.admin."""
    if principal.has_scope(ADMIN_SCOPE):
        return principal
    is_admin, is_auditor = await _roles(db, principal)
    if is_admin or is_auditor:
        return principal
    raise Forbidden(
        f"reading policies needs the admin or auditor role, or scope {ADMIN_SCOPE}",
        required_scopes=[ADMIN_SCOPE],
    )


async def require_evaluator(principal: CurrentPrincipal, db: SessionDep) -> Principal:
    """Service clients with scope team.policy.evaluate, and admins."""
    if principal.has_scope(EVALUATE_SCOPE) or principal.has_scope(ADMIN_SCOPE):
        return principal
    is_admin, _ = await _roles(db, principal)
    if is_admin:
        return principal
    raise Forbidden(
        f"evaluations need scope {EVALUATE_SCOPE} (service clients) or the admin role; "
        "people see their own options at GET /v1/me/entitlements",
        required_scopes=[EVALUATE_SCOPE],
    )


async def require_directory_reader(principal: CurrentPrincipal, db: SessionDep) -> Principal:
    """Admins, auditors, and clients with scope team.directory.read."""
    if principal.has_scope(DIRECTORY_SCOPE) or principal.has_scope(ADMIN_SCOPE):
        return principal
    is_admin, is_auditor = await _roles(db, principal)
    if is_admin or is_auditor:
        return principal
    raise Forbidden(
        f"reading the directory needs the admin or auditor role, or scope {DIRECTORY_SCOPE}",
        required_scopes=[DIRECTORY_SCOPE],
    )


PolicyAdmin = Annotated[Principal, Depends(require_policy_admin)]
PolicyReader = Annotated[Principal, Depends(require_policy_reader)]
Evaluator = Annotated[Principal, Depends(require_evaluator)]
DirectoryReaderPrincipal = Annotated[Principal, Depends(require_directory_reader)]


def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The ETag of the version you change; a stale one gets 409.",
            max_length=64,
        ),
    ] = None,
) -> int | None:
    """The version named by an If-Match header (`"3"` or `W/"3"`), or None without one."""
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise Unprocessable(
            f"If-Match {value!r} is not an ETag of this service; send the ETag header of the GET"
        )
    return int(raw)


IfMatch = Annotated[int | None, Depends(if_match)]


def etag(version: int) -> str:
    """The ETag of a version."""
    return f'"{version}"'
