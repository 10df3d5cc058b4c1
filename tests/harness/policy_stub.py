"""A real HTTP stand-in for the policy service, speaking exactly `teamkit.contracts.policy`.

It verifies every bearer token against the OIDC issuer with `teamkit.auth` and requires scope
`team.policy.evaluate`, like the real service. Tests configure its answers: the approver group
(changeable mid-test: "bob left the group"), the quorum, whether approval is needed, denials
with several reasons, the settings snapshot, and a switch to go down (503) or hang (timeout).
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from teamkit.auth import Principal, TokenVerifier, require_scope
from teamkit.contracts.policy import (
    ApproverCheck,
    ApproverCheckRequest,
    DenialCode,
    DenialReason,
    EvaluationDecision,
    EvaluationRequest,
    RequestSettings,
)
from teamkit.events.common import AccountRef, Approver, PermissionSetRef, Requester
from teamkit.problems import install_problem_handlers
from teamkit.settings import OidcSettings
from tests.harness.servers import serving

SCOPE = "team.policy.evaluate"
UNKNOWN_ACCOUNT = "000000000000"
INSTANCE = "arn:aws:sso:::permissionSet/ssoins-stub"
#: A caller verified by teamkit.auth whose token grants the policy service's scope.
Evaluator = Annotated[Principal, Depends(require_scope(SCOPE))]


def user_id(username: str) -> str:
    """The Identity Center user id the stub gives a user name (stable, UUID-shaped)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{username}.users.stub"))


def permission_set_arn(name_or_arn: str) -> str:
    """The ARN the stub resolves a permission set name (or ARN) to."""
    return name_or_arn if name_or_arn.startswith("arn:") else f"{INSTANCE}/{name_or_arn}"


def default_settings() -> RequestSettings:
    """Approval workflow on, comments optional, one hour to decide."""
    return RequestSettings(
        approval_workflow_enabled=True,
        comments_required=False,
        ticket_required=False,
        pending_expiry_minutes=60,
        max_concurrent_grants=None,
        allow_requests_on_behalf=False,
    )


@dataclass
class PolicyStub:
    """Configurable decisions plus a record of every call and of who made it."""

    oidc: OidcSettings
    url: str = ""
    approvers: set[str] = field(default_factory=lambda: {"bob", "carol"})
    approvals_needed: int = 1
    approval_required: bool = True
    denial: list[DenialReason] | None = None
    settings: RequestSettings = field(default_factory=default_settings)
    down: bool = False
    hang_seconds: float = 0.0
    evaluations: list[EvaluationRequest] = field(default_factory=list)
    approver_checks: list[ApproverCheckRequest] = field(default_factory=list)
    callers: list[str | None] = field(default_factory=list)
    decide: Callable[[EvaluationRequest], EvaluationDecision] | None = None

    def reset(self) -> None:
        """Back to the defaults (called before every test)."""
        fresh = PolicyStub(self.oidc, url=self.url)
        for name in (
            "approvers",
            "approvals_needed",
            "approval_required",
            "denial",
            "settings",
            "down",
            "hang_seconds",
            "evaluations",
            "approver_checks",
            "callers",
            "decide",
        ):
            setattr(self, name, getattr(fresh, name))

    def evaluate(self, request: EvaluationRequest) -> EvaluationDecision:
        """The configured decision for one evaluation."""
        if self.decide is not None:
            return self.decide(request)
        reasons = list(self.denial or [])
        if request.account_id == UNKNOWN_ACCOUNT:
            reasons.append(
                DenialReason(
                    code=DenialCode.UNKNOWN_ACCOUNT,
                    detail=f"account {request.account_id} is not in the organization",
                )
            )
        cap = self.settings.max_concurrent_grants
        if cap is not None and request.active_grants >= cap:
            reasons.append(
                DenialReason(
                    code=DenialCode.TOO_MANY_ACTIVE_GRANTS,
                    detail=f"you hold {request.active_grants} active grant(s); at most {cap}",
                )
            )
        if reasons:
            return EvaluationDecision(allowed=False, reasons=reasons, settings=self.settings)
        arn = permission_set_arn(request.permission_set)
        return EvaluationDecision(
            allowed=True,
            requester=Requester(
                user_id=user_id(request.user),
                username=request.user,
                email=f"{request.user}@example.com",
                time_zone="Europe/Berlin" if request.user == "alice" else None,
            ),
            account=AccountRef(
                id=request.account_id, name=f"acct-{request.account_id}", ou_path=["r-root"]
            ),
            permission_set=PermissionSetRef(
                arn=arn, name=arn.rsplit("/", 1)[-1], session_duration_minutes=60
            ),
            matched_policy_ids=["elig-1", "appr-1"],
            approval_required=self.approval_required,
            approvals_needed=self.approvals_needed if self.approval_required else 0,
            approvers=[
                Approver(user_id=user_id(name), username=name, email=f"{name}@example.com")
                for name in sorted(self.approvers)
                if name != request.user
            ],
            max_duration_minutes=480,
            settings=self.settings,
        )

    def check(self, request: ApproverCheckRequest) -> ApproverCheck:
        """The live approver answer from the current group."""
        is_requester = request.requester in (request.approver, user_id(request.approver))
        allowed = request.approver in self.approvers and not is_requester
        return ApproverCheck(
            allowed=allowed,
            detail="member of the approver group"
            if allowed
            else f"{request.approver} is not in the approver group of this account",
            approver=Approver(
                user_id=user_id(request.approver),
                username=request.approver,
                email=f"{request.approver}@example.com",
            ),
            approvals_needed=self.approvals_needed,
        )

    def app(self, verifier: TokenVerifier) -> FastAPI:
        """The FastAPI app serving the contract."""
        app = FastAPI(title="policy stub")
        app.state.token_verifier = verifier
        install_problem_handlers(app)

        async def gate(principal: Principal) -> JSONResponse | None:
            self.callers.append(principal.client_id)
            if self.hang_seconds:
                await asyncio.sleep(self.hang_seconds)
            if self.down:
                return JSONResponse({"detail": "down for the test"}, status_code=503)
            return None

        @app.post("/v1/evaluations", response_model=None)
        async def evaluations(
            body: EvaluationRequest, principal: Evaluator
        ) -> EvaluationDecision | JSONResponse:
            if (refusal := await gate(principal)) is not None:
                return refusal
            self.evaluations.append(body)
            return self.evaluate(body)

        @app.post("/v1/approver-checks", response_model=None)
        async def approver_checks(
            body: ApproverCheckRequest, principal: Evaluator
        ) -> ApproverCheck | JSONResponse:
            if (refusal := await gate(principal)) is not None:
                return refusal
            self.approver_checks.append(body)
            return self.check(body)

        return app

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator["PolicyStub"]:
        """Serve under uvicorn on a free port (sets `url`) until the block exits."""
        verifier = TokenVerifier(self.oidc)
        try:
            async with serving(self.app(verifier)) as url:
                self.url = url
                yield self
        finally:
            await verifier.aclose()
