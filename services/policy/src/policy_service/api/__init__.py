"""HTTP routers of the policy service, one per resource."""

from policy_service.api import directory, evaluations, export, policies, settings

ROUTERS = (
    policies.eligibility_router,
    policies.approver_router,
    export.router,
    evaluations.router,
    settings.router,
    directory.router,
)
