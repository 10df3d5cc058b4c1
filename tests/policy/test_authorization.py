"""Every endpoint against every role: anonymous, requester, approver, admin, auditor, clients."""

import uuid
from typing import Any

import pytest

from tests.policy.conftest import Api

# who: anonymous (None), a requester, an approver, the admin, the auditor, the request service
# (team.policy.evaluate + team.directory.read), the ticketing integration (no policy scope), and
# a GitOps client holding team.policies.admin.
ROLES = [
    "anonymous",
    "alice",
    "bob",
    "dave",
    "erin",
    "client:request-service",
    "client:ticketing",
    "gitops",
]

EVERYONE = {"alice", "bob", "dave", "erin", "client:request-service", "client:ticketing", "gitops"}
ADMINS = {"dave", "gitops"}
READERS = {"dave", "erin", "gitops"}
EVALUATORS = {"dave", "client:request-service", "gitops"}
DIRECTORY = {"dave", "erin", "client:request-service", "gitops"}
PEOPLE = {"alice", "bob", "dave", "erin"}


def endpoints(api: Api) -> list[tuple[str, str, dict[str, Any] | None, set[str]]]:
    s = api.seed
    missing = uuid.uuid4()
    evaluation = {
        "user": "alice",
        "account_id": s.account_ids["team-a-prod"],
        "permission_set": "ReadOnly",
        "duration_minutes": 30,
    }
    check = {
        "approver": "bob",
        "requester": "alice",
        "account_id": s.account_ids["team-a-prod"],
        "permission_set_arn": s.permission_set_arns["ReadOnly"],
    }
    return [
        ("POST", "/v1/evaluations", evaluation, EVALUATORS),
        ("POST", "/v1/approver-checks", check, EVALUATORS),
        ("GET", "/v1/me/entitlements", None, PEOPLE),
        ("GET", "/v1/settings", None, EVERYONE),
        ("PUT", "/v1/settings", {"version": 999_999}, ADMINS),  # admins get past auth: 409
        ("GET", "/v1/eligibility-policies", None, READERS),
        ("POST", "/v1/eligibility-policies", {"name": "x"}, ADMINS),  # admins: 422
        ("GET", f"/v1/eligibility-policies/{missing}", None, READERS),  # readers: 404
        ("PUT", f"/v1/eligibility-policies/{missing}", {"name": "x"}, ADMINS),
        ("DELETE", f"/v1/eligibility-policies/{missing}", None, ADMINS),
        ("GET", "/v1/approver-policies", None, READERS),
        ("POST", "/v1/approver-policies", {"name": "x"}, ADMINS),
        ("GET", f"/v1/approver-policies/{missing}", None, READERS),
        ("PUT", f"/v1/approver-policies/{missing}", {"name": "x"}, ADMINS),
        ("DELETE", f"/v1/approver-policies/{missing}", None, ADMINS),
        ("GET", "/v1/policies/export", None, READERS),
        ("PUT", "/v1/policies/export", {"format_version": 2}, ADMINS),  # admins: 422
        ("GET", "/v1/directory/accounts", None, DIRECTORY),
        ("GET", "/v1/directory/ous", None, DIRECTORY),
        ("GET", "/v1/directory/permission-sets", None, DIRECTORY),
        ("GET", "/v1/directory/users", None, DIRECTORY),
        ("GET", "/v1/directory/groups", None, DIRECTORY),
        ("GET", "/v1/directory/status", None, DIRECTORY),
    ]


@pytest.mark.parametrize("role", ROLES)
async def test_every_endpoint_for_every_role(policy_api: Api, role: str) -> None:
    api = policy_api
    for method, path, body, allowed in endpoints(api):
        who = None if role == "anonymous" else role
        answer = await api.call(method, path, who=who, json=body)
        where = f"{role} {method} {path}: {answer.status_code} {answer.text[:200]}"
        if who is None:
            assert answer.status_code == 401, where
        elif role in allowed:
            assert answer.status_code not in (401, 403), where
        else:
            assert answer.status_code == 403, where
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["detail"], where


async def test_directory_refresh_is_admin_only(policy_api: Api) -> None:
    for who in ("alice", "erin", "client:request-service"):
        assert (await policy_api.call("POST", "/v1/directory/refresh", who=who)).status_code == 403
    result = await policy_api.ok("POST", "/v1/directory/refresh", who="gitops")
    assert result["ok"] is True
