"""Against the real policy service (moto directory, demo policies) instead of the stub."""

import httpx
import pytest_asyncio

from devstack.seed_aws import SeedResult
from tests.harness.oidc import RunningIssuer
from tests.harness.wait import eventually


@pytest_asyncio.fixture(loop_scope="session")
async def request_with_real_policy(request_and_policy: dict[str, str]) -> str:
    return request_and_policy["request"]


async def test_submit_and_approve_with_the_real_policy_service(
    request_with_real_policy: str, oidc_issuer: RunningIssuer, seeded_org: SeedResult
) -> None:
    def client(user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=request_with_real_policy,
            headers={"Authorization": f"Bearer {oidc_issuer.token_for(user)}"},
            timeout=30.0,
        )

    body = {
        "account_id": seeded_org.account_ids["team-a-prod"],
        "permission_set": "Admin",
        "duration_minutes": 120,
        "justification": "Rotate the database credentials",
        "ticket": "T-1",
    }
    async with client("alice") as alice, client("carol") as carol, client("frank") as frank:

        async def submitted() -> httpx.Response:
            # The policy service serves decisions once its first directory refresh and demo
            # seed are done; until then it denies (unknown ids) or is not ready.
            answer = await alice.post("/v1/requests", json=body)
            assert answer.status_code == 201, answer.text
            return answer

        created = (await eventually(submitted, timeout=60, interval=0.5)).json()
        assert created["status"] == "pending"
        assert created["requester"]["user_id"] == seeded_org.user_ids["alice"]
        assert created["permission_set"]["arn"] == seeded_org.permission_set_arns["Admin"]
        assert {a["username"] for a in created["approvers"]} == {"bob", "carol"}

        self_approval = await alice.post(f"/v1/requests/{created['id']}/approve")
        assert self_approval.status_code == 403
        outsider = await frank.post(f"/v1/requests/{created['id']}/approve")
        assert outsider.status_code == 404
        approved = await carol.post(
            f"/v1/requests/{created['id']}/approve", json={"comment": "ok for the rotation"}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"

        denied = await alice.post(
            "/v1/requests", json={**body, "permission_set": "PowerUser", "ticket": "T-2"}
        )
        assert denied.status_code == 403
        assert {r["code"] for r in denied.json()["reasons"]} == {"not_eligible"}
