"""The whole policy set as one JSON document, for GitOps."""

from fastapi import APIRouter

from policy_service import service
from policy_service.dependencies import PolicyAdmin, PolicyReader, SessionDep, SettingsDep
from policy_service.schemas import ImportResult, PolicyDocument
from teamkit.problems import problem_responses

router = APIRouter(prefix="/v1/policies/export", tags=["export"])


@router.get(
    "",
    operation_id="export_policies",
    summary="Export the policy set",
    responses=problem_responses(
        403,
        descriptions={403: "Needs the admin or auditor role, or scope team.policies.admin."},
    ),
)
async def export_policies(_: PolicyReader, session: SessionDep) -> PolicyDocument:
    """Every eligibility and approver policy, with ids, as one document."""
    return await service.export_policies(session)


@router.put(
    "",
    operation_id="import_policies",
    summary="Replace the policy set",
    responses=problem_responses(
        403,
        422,
        descriptions={
            403: "Not an admin and no scope team.policies.admin.",
            422: "Nothing was written: the problem lists every error in `errors`.",
        },
    ),
)
async def import_policies(
    document: PolicyDocument, principal: PolicyAdmin, session: SessionDep, config: SettingsDep
) -> ImportResult:
    """Replace the whole policy set with the document, all or nothing.

    Policies with a known id are updated, without an id (or an unknown one) created, and
    policies missing from the document deleted; one event per change.
    """
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    return await service.import_policies(session, document=document, actor=actor)
