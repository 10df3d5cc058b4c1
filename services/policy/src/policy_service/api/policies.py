"""CRUD of eligibility and approver policies (admin writes; admins and auditors read)."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from policy_service import service
from policy_service.dependencies import (
    IfMatch,
    PolicyAdmin,
    PolicyReader,
    SessionDep,
    SettingsDep,
    etag,
)
from policy_service.schemas import (
    ApproverPolicy,
    ApproverPolicyIn,
    ApproverPolicyUpdate,
    EligibilityPolicy,
    EligibilityPolicyIn,
    EligibilityPolicyUpdate,
    Page,
)

eligibility_router = APIRouter(prefix="/v1/eligibility-policies", tags=["eligibility policies"])
approver_router = APIRouter(prefix="/v1/approver-policies", tags=["approver policies"])

_WRITE: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin and no scope team.policies.admin."},
    422: {"description": "Invalid body, unknown directory ids, or a value above a limit."},
}
_VERSIONED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such policy."},
    409: {"description": "The version is stale: someone changed the policy meanwhile."},
    428: {"description": "Neither If-Match nor `version` says which version you replace."},
}
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=2048)]


# -- eligibility ---------------------------------------------------------------------------------


@eligibility_router.post(
    "", status_code=201, operation_id="create_eligibility_policy", responses=_WRITE
)
async def create_eligibility_policy(
    body: EligibilityPolicyIn,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    response: Response,
) -> EligibilityPolicy:
    """Create an eligibility policy; every referenced id must exist in the directory."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    created = await service.create_policy(session, service.ELIGIBILITY, body=body, actor=actor)
    response.headers["ETag"] = etag(created.version)
    return created


@eligibility_router.get("", operation_id="list_eligibility_policies")
async def list_eligibility_policies(
    _: PolicyReader, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[EligibilityPolicy]:
    """Eligibility policies by name, keyset-paginated."""
    return await service.list_policies(session, service.ELIGIBILITY, cursor=cursor, limit=limit)


@eligibility_router.get(
    "/{policy_id}", operation_id="get_eligibility_policy", responses={404: _VERSIONED[404]}
)
async def get_eligibility_policy(
    policy_id: UUID, _: PolicyReader, session: SessionDep, response: Response
) -> EligibilityPolicy:
    """One eligibility policy; its ETag is the version to send back when changing it."""
    found = await service.get_policy(session, service.ELIGIBILITY, policy_id=policy_id)
    response.headers["ETag"] = etag(found.version)
    return found


@eligibility_router.put(
    "/{policy_id}",
    operation_id="update_eligibility_policy",
    responses={**_WRITE, **_VERSIONED},
)
async def update_eligibility_policy(
    policy_id: UUID,
    body: EligibilityPolicyUpdate,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    version: IfMatch,
    response: Response,
) -> EligibilityPolicy:
    """Replace an eligibility policy; If-Match (or `version`) must name its current version."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    updated = await service.update_policy(
        session,
        service.ELIGIBILITY,
        policy_id=policy_id,
        body=body,
        expected_version=version if version is not None else body.version,
        actor=actor,
    )
    response.headers["ETag"] = etag(updated.version)
    return updated


@eligibility_router.delete(
    "/{policy_id}",
    status_code=204,
    operation_id="delete_eligibility_policy",
    responses={403: _WRITE[403], 404: _VERSIONED[404], 409: _VERSIONED[409]},
)
async def delete_eligibility_policy(
    policy_id: UUID,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    version: IfMatch,
) -> Response:
    """Delete an eligibility policy (If-Match optional; a stale one gets 409)."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    await service.delete_policy(
        session, service.ELIGIBILITY, policy_id=policy_id, expected_version=version, actor=actor
    )
    return Response(status_code=204)


# -- approver ------------------------------------------------------------------------------------


@approver_router.post("", status_code=201, operation_id="create_approver_policy", responses=_WRITE)
async def create_approver_policy(
    body: ApproverPolicyIn,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    response: Response,
) -> ApproverPolicy:
    """Create an approver policy; every referenced id must exist in the directory."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    created = await service.create_policy(session, service.APPROVER, body=body, actor=actor)
    response.headers["ETag"] = etag(created.version)
    return created


@approver_router.get("", operation_id="list_approver_policies")
async def list_approver_policies(
    _: PolicyReader, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[ApproverPolicy]:
    """Approver policies by name, keyset-paginated."""
    return await service.list_policies(session, service.APPROVER, cursor=cursor, limit=limit)


@approver_router.get(
    "/{policy_id}", operation_id="get_approver_policy", responses={404: _VERSIONED[404]}
)
async def get_approver_policy(
    policy_id: UUID, _: PolicyReader, session: SessionDep, response: Response
) -> ApproverPolicy:
    """One approver policy; its ETag is the version to send back when changing it."""
    found = await service.get_policy(session, service.APPROVER, policy_id=policy_id)
    response.headers["ETag"] = etag(found.version)
    return found


@approver_router.put(
    "/{policy_id}", operation_id="update_approver_policy", responses={**_WRITE, **_VERSIONED}
)
async def update_approver_policy(
    policy_id: UUID,
    body: ApproverPolicyUpdate,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    version: IfMatch,
    response: Response,
) -> ApproverPolicy:
    """Replace an approver policy; If-Match (or `version`) must name its current version."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    updated = await service.update_policy(
        session,
        service.APPROVER,
        policy_id=policy_id,
        body=body,
        expected_version=version if version is not None else body.version,
        actor=actor,
    )
    response.headers["ETag"] = etag(updated.version)
    return updated


@approver_router.delete(
    "/{policy_id}",
    status_code=204,
    operation_id="delete_approver_policy",
    responses={403: _WRITE[403], 404: _VERSIONED[404], 409: _VERSIONED[409]},
)
async def delete_approver_policy(
    policy_id: UUID,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    version: IfMatch,
) -> Response:
    """Delete an approver policy (If-Match optional; a stale one gets 409)."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    await service.delete_policy(
        session, service.APPROVER, policy_id=policy_id, expected_version=version, actor=actor
    )
    return Response(status_code=204)
