"""Decisions: evaluations and approver checks (service clients, admins), own entitlements."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from policy_service import service
from policy_service.dependencies import CacheDep, Evaluator, SessionDep, SettingsDep, live_reader
from policy_service.directory import DirectoryReader
from policy_service.schemas import Entitlements
from teamkit.auth import CurrentPrincipal
from teamkit.contracts.policy import (
    ApproverCheck,
    ApproverCheckRequest,
    EvaluationDecision,
    EvaluationRequest,
)
from teamkit.problems import problem_responses

router = APIRouter(tags=["decisions"])

_EVALUATOR = problem_responses(
    403, 422, descriptions={403: "Needs scope team.policy.evaluate or the admin role."}
)


@router.post(
    "/v1/evaluations",
    operation_id="evaluate_request",
    summary="Evaluate a prospective request",
    responses=_EVALUATOR,
)
async def evaluate(
    body: EvaluationRequest,
    _: Evaluator,
    session: SessionDep,
    config: SettingsDep,
    cache: CacheDep,
) -> EvaluationDecision:
    """May the user request the permission set on the account for the duration, and who approves?

    Always 200: a denial lists every reason (unknown user, account or permission set included).
    """
    return await service.evaluate_request(
        session, body=body, by_email=config.USER_MATCH == "email", cache=cache
    )


@router.post(
    "/v1/approver-checks",
    operation_id="check_approver",
    summary="Check an approver, live",
    responses=_EVALUATOR,
)
async def check_approver(
    body: ApproverCheckRequest,
    _: Evaluator,
    session: SessionDep,
    config: SettingsDep,
    reader: Annotated[DirectoryReader | None, Depends(live_reader)],
) -> ApproverCheck:
    """Is the approver, right now, an approver of this account and permission set?

    Group memberships are read live from Identity Center (the cache if AWS fails), so someone
    removed from an approver group can no longer approve. Nobody approves their own request.
    """
    return await service.check_approver(
        session, body=body, by_email=config.USER_MATCH == "email", reader=reader
    )


@router.get(
    "/v1/me/entitlements",
    operation_id="get_my_entitlements",
    summary="What I may request",
    response_model=Entitlements,
    responses=problem_responses(
        403,
        404,
        descriptions={
            403: "A client token: entitlements belong to people.",
            404: "The caller has no Identity Center user (`unknown-user`).",
        },
    ),
)
async def my_entitlements(
    principal: CurrentPrincipal, session: SessionDep, config: SettingsDep, cache: CacheDep
) -> Response:
    """Every account (with OU path) and permission set the caller may request, with limits."""
    # Already serialised (and cached) by the use case: the answer can list thousands of
    # accounts, and FastAPI would validate the typed model a second time.
    found = await service.entitlements(
        session, principal=principal, by_email=config.USER_MATCH == "email", cache=cache
    )
    return Response(found, media_type="application/json")
