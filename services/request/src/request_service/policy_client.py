"""The request service's calls to the policy service (contract: `teamkit.contracts.policy`).

Every failure to get a usable answer (connection refused, timeout, 5xx, a refused service token,
an answer that does not match the contract) becomes `PolicyUnavailable` (503): the caller stores
nothing and may retry.
"""

from typing import TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from request_service.errors import PolicyUnavailable
from teamkit.contracts.policy import (
    ApproverCheck,
    ApproverCheckRequest,
    EvaluationDecision,
    EvaluationRequest,
)
from teamkit.problems import ServiceUnavailable
from teamkit.service_client import ClientCredentials

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


class PolicyClient:
    """A client of the policy service authenticated with this service's client credentials."""

    def __init__(
        self,
        *,
        base_url: str,
        issuer: str,
        client_id: str | None,
        client_secret: str | None,
        timeout: float,
        token_http: httpx.AsyncClient,
    ) -> None:
        self._configured = bool(client_id and client_secret)
        auth = (
            ClientCredentials(
                issuer=issuer,
                client_id=client_id or "",
                client_secret=client_secret or "",
                # Token fetches use a plain client: the policy client's own auth must not
                # apply to the issuer's endpoints.
                http=token_http,
            )
            if self._configured
            else None
        )
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            timeout=httpx.Timeout(timeout),
        )
        self.base_url = base_url

    async def aclose(self) -> None:
        """Close the underlying connections."""
        await self._http.aclose()

    async def evaluate(self, request: EvaluationRequest) -> EvaluationDecision:
        """`POST /v1/evaluations`: may the user request this, and who approves?"""
        return await self._post("/v1/evaluations", request, EvaluationDecision)

    async def check_approver(self, request: ApproverCheckRequest) -> ApproverCheck:
        """`POST /v1/approver-checks`: may this person decide this request, right now?"""
        return await self._post("/v1/approver-checks", request, ApproverCheck)

    async def _post(self, path: str, body: BaseModel, answer: type[M]) -> M:
        if not self._configured:
            raise PolicyUnavailable(
                "the request service has no client credentials for the policy service; an "
                "operator must set REQUEST_CLIENT_ID and REQUEST_CLIENT_SECRET",
                headers={"Retry-After": "30"},
            )
        try:
            response = await self._http.post(path, json=body.model_dump(mode="json"))
        except ServiceUnavailable as exc:  # the issuer refused or is down (token fetch)
            raise self._unavailable(path, f"no service token: {exc.detail}") from None
        except httpx.TimeoutException:
            raise self._unavailable(path, "it did not answer in time") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(
                path, f"it could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise self._unavailable(path, f"it answered HTTP {response.status_code}")
        try:
            return answer.model_validate_json(response.content)
        except ValidationError:
            raise self._unavailable(path, "its answer does not match the policy contract") from None

    def _unavailable(self, path: str, reason: str) -> PolicyUnavailable:
        log.warning("policy.call_failed", path=path, reason=reason)
        return PolicyUnavailable(
            f"the policy service at {self.base_url} could not decide: {reason}. Nothing was "
            "changed; retry shortly.",
            headers={"Retry-After": "5"},
        )
