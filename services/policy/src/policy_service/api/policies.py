"""CRUD of eligibility and approver policies (admin writes; admins and auditors read)."""

from typing import Annotated
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
from teamkit.problems import problem_responses

eligibility_router = APIRouter(prefix="/v1/eligibility-policies", tags=["eligibility policies"])
approver_router = APIRouter(prefix="/v1/approver-policies", tags=["approver policies"])

_DESCRIPTIONS = {
    403: "Not an admin and no scope team.policies.admin.",
    404: "No such policy.",
    409: "The version is stale: someone changed the policy meanwhile.",
    422: "Invalid body, unknown directory ids (`unknown-references`), or a value above a limit.",
    428: "Neither If-Match nor `version` says which version you replace.",
}
_READ_DESCRIPTIONS = {
    403: "Needs the admin or auditor role, or scope team.policies.admin.",
    404: "No such policy.",
    422: "Invalid query, or a cursor this API did not return (`invalid-cursor`).",
}
_CREATE = problem_responses(403, 422, descriptions={s: _DESCRIPTIONS[s] for s in (403, 422)})
_LIST = problem_responses(403, 422, descriptions={s: _READ_DESCRIPTIONS[s] for s in (403, 422)})
_GET = problem_responses(403, 404, descriptions={s: _READ_DESCRIPTIONS[s] for s in (403, 404)})
_UPDATE = problem_responses(403, 404, 409, 422, 428, descriptions=_DESCRIPTIONS)
_DELETE = problem_responses(
    403, 404, 409, descriptions={s: _DESCRIPTIONS[s] for s in (403, 404, 409)}
)
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=2048)]


# -- eligibility ---------------------------------------------------------------------------------


@eligibility_router.post(
    "",
    status_code=201,
    operation_id="create_eligibility_policy",
    summary="Create an eligibility policy",
    responses=_CREATE,
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


@eligibility_router.get(
    "",
    operation_id="list_eligibility_policies",
    summary="List eligibility policies",
    responses=_LIST,
)
async def list_eligibility_policies(
    _: PolicyReader, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[EligibilityPolicy]:
    """Eligibility policies by name, keyset-paginated."""
    return await service.list_policies(session, service.ELIGIBILITY, cursor=cursor, limit=limit)


@eligibility_router.get(
    "/{policy_id}",
    operation_id="get_eligibility_policy",
    summary="Read an eligibility policy",
    responses=_GET,
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
    summary="Replace an eligibility policy",
    responses=_UPDATE,
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
    summary="Delete an eligibility policy",
    responses=_DELETE,
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


@approver_router.post(
    "",
    status_code=201,
    operation_id="create_approver_policy",
    summary="Create an approver policy",
    responses=_CREATE,
)
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


@approver_router.get(
    "",
    operation_id="list_approver_policies",
    summary="List approver policies",
    responses=_LIST,
)
async def list_approver_policies(
    _: PolicyReader, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[ApproverPolicy]:
    """Approver policies by name, keyset-paginated."""
    return await service.list_policies(session, service.APPROVER, cursor=cursor, limit=limit)


@approver_router.get(
    "/{policy_id}",
    operation_id="get_approver_policy",
    summary="Read an approver policy",
    responses=_GET,
)
async def get_approver_policy(
    policy_id: UUID, _: PolicyReader, session: SessionDep, response: Response
) -> ApproverPolicy:
    """One approver policy; its ETag is the version to send back when changing it."""
    found = await service.get_policy(session, service.APPROVER, policy_id=policy_id)
    response.headers["ETag"] = etag(found.version)
    return found


@approver_router.put(
    "/{policy_id}",
    operation_id="update_approver_policy",
    summary="Replace an approver policy",
    responses=_UPDATE,
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
    summary="Delete an approver policy",
    responses=_DELETE,
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
