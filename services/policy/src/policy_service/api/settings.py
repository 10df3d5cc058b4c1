"""The system settings: everyone signed in reads them, admins change them."""

from fastapi import APIRouter, Response

from policy_service import service
from policy_service.dependencies import IfMatch, PolicyAdmin, SessionDep, SettingsDep, etag
from policy_service.schemas import SettingsUpdate, SettingsView
from teamkit.auth import CurrentPrincipal
from teamkit.problems import problem_responses

router = APIRouter(prefix="/v1/settings", tags=["settings"])


@router.get("", operation_id="get_settings", summary="Read the settings")
async def get_settings(
    _: CurrentPrincipal, session: SessionDep, response: Response
) -> SettingsView:
    """The settings (never secrets); the ETag is the version to send back when changing them."""
    current = await service.get_settings(session)
    response.headers["ETag"] = etag(current.version)
    return current


@router.put(
    "",
    operation_id="update_settings",
    summary="Replace the settings",
    responses=problem_responses(
        403,
        409,
        422,
        428,
        descriptions={
            403: "Not an admin and no scope team.policies.admin.",
            409: "The version is stale: someone changed the settings meanwhile.",
            422: "Invalid or unknown field (secrets are never accepted here).",
            428: "Neither If-Match nor `version` says which version you replace.",
        },
    ),
)
async def update_settings(
    body: SettingsUpdate,
    principal: PolicyAdmin,
    session: SessionDep,
    config: SettingsDep,
    version: IfMatch,
    response: Response,
) -> SettingsView:
    """Replace the settings; emits `settings.updated` with the values before and after."""
    actor = await service.actor_of(session, principal, by_email=config.USER_MATCH == "email")
    updated = await service.update_settings(
        session,
        body=body,
        expected_version=version if version is not None else body.version,
        actor=actor,
    )
    response.headers["ETag"] = etag(updated.version)
    return updated
