"""Clients generated from the committed OpenAPI documents drive the approval flow.

`openapi-python-client` generates a request-service and a policy-service package from
`openapi/request.json` and `openapi/policy.json` (offline, no post hooks) into a temporary
directory; the test imports them and, against a live request service and the real policy
service (moto directory, demo policies), lets alice find what she may request, submit it, bob
see it in his inbox and approve it, and alice read the status. Problems come back parsed as the
shared `Problem` model. Any change to the documents that breaks generated clients fails here.
"""

import importlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

from devstack.seed_aws import SeedResult
from scripts.gen_openapi import OUT
from tests.harness.oidc import RunningIssuer
from tests.harness.wait import eventually

PACKAGES = {"request": "team_request_client", "policy": "team_policy_client"}


def _generator() -> str:
    # The console script of the dev dependency, next to this interpreter in the virtualenv.
    beside = Path(sys.executable).with_name("openapi-python-client")
    found = str(beside) if beside.exists() else shutil.which("openapi-python-client")
    if found is None:
        pytest.fail("openapi-python-client is not installed: run `uv sync --frozen --all-packages`")
    return found


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Generate one client package per document and put them on sys.path for this module."""
    root = tmp_path_factory.mktemp("generated")
    generator = _generator()
    for service, package in PACKAGES.items():
        config = root / f"{service}.yml"
        # No post hooks: generation must not depend on ruff being on PATH.
        config.write_text(
            f"project_name_override: {package}\npackage_name_override: {package}\npost_hooks: []\n"
        )
        completed = subprocess.run(
            [
                generator,
                "generate",
                "--path",
                str(OUT / f"{service}.json"),
                "--config",
                str(config),
                "--output-path",
                str(root / package),
                "--fail-on-warning",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
    sys.path.insert(0, str(root / PACKAGES["request"]))
    sys.path.insert(0, str(root / PACKAGES["policy"]))
    try:
        yield PACKAGES
    finally:
        for package in PACKAGES.values():
            for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[name]
        sys.path.remove(str(root / PACKAGES["request"]))
        sys.path.remove(str(root / PACKAGES["policy"]))


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest_asyncio.fixture(loop_scope="session")
async def live_services(request_and_policy: dict[str, str]) -> dict[str, str]:
    """The request service with the real policy service behind it: service → base URL."""
    return request_and_policy


# Generated without a formatter, the code has `1and`-style tokens Python warns about.
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
async def test_approval_flow_through_generated_clients(
    generated: dict[str, str],
    live_services: dict[str, str],
    oidc_issuer: RunningIssuer,
    seeded_org: SeedResult,
) -> None:
    req = generated["request"]
    pol = generated["policy"]
    request_client = _module(req)
    policy_client = _module(pol)
    submit_request = _module(f"{req}.api.requests.submit_request")
    get_request = _module(f"{req}.api.requests.get_request")
    approve_request = _module(f"{req}.api.requests.approve_request")
    list_my_approvals = _module(f"{req}.api.approvals.list_my_approvals")
    get_my_entitlements = _module(f"{pol}.api.decisions.get_my_entitlements")
    models = _module(f"{req}.models")

    def as_user(package: ModuleType, service: str, user: str) -> Any:
        return package.AuthenticatedClient(
            base_url=live_services[service],
            token=oidc_issuer.token_for(user),
            raise_on_unexpected_status=True,
            timeout=30.0,
        )

    prod = seeded_org.account_ids["team-a-prod"]

    # What may alice request? The policy client answers once the directory is loaded.
    async with as_user(policy_client, "policy", "alice") as alice_policy:

        async def alice_entitled() -> Any:
            answer = await get_my_entitlements.asyncio_detailed(client=alice_policy)
            assert answer.status_code == 200, answer.content
            options = [
                option
                for item in answer.parsed.items
                if any(account.id == prod for account in item.accounts)
                for option in item.permission_sets
                if option.permission_set.name == "Admin"
            ]
            assert options, "alice is not entitled to Admin on team-a-prod yet"
            return options[0]

        admin_option = await eventually(alice_entitled, timeout=60, interval=0.5)
    assert admin_option.approval_required

    async with (
        as_user(request_client, "request", "alice") as alice,
        as_user(request_client, "request", "bob") as bob,
    ):
        body = models.SubmitRequest(
            account_id=prod,
            permission_set="Admin",
            duration_minutes=60,
            justification="Rotate the database credentials",
            ticket="T-100",
        )
        key = f"generated-{uuid.uuid4()}"

        async def submitted() -> Any:
            answer = await submit_request.asyncio_detailed(
                client=alice, body=body, idempotency_key=key
            )
            assert answer.status_code in (200, 201), answer.content
            return answer

        created = await eventually(submitted, timeout=60, interval=0.5)
        request = created.parsed
        assert isinstance(request, models.RequestOut)
        assert request.status == models.RequestStatus.PENDING
        assert request.requester.username == "alice"
        assert "bob" in request.pending_approvers
        assert created.headers["Location"] == f"/v1/requests/{request.id}"

        replay = await submit_request.asyncio_detailed(client=alice, body=body, idempotency_key=key)
        assert replay.status_code == 200
        assert replay.parsed.id == request.id

        inbox = await list_my_approvals.asyncio(client=bob)
        assert request.id in {item.id for item in inbox.items}

        # A problem comes back as the shared Problem model, with its extensions.
        refused = await approve_request.asyncio_detailed(
            request.id, client=alice, body=models.DecisionBody(comment="my own")
        )
        assert refused.status_code == 403
        assert isinstance(refused.parsed, models.Problem)
        assert refused.parsed.type_.endswith("/self-approval")
        assert refused.parsed.status == 403

        approved = await approve_request.asyncio(
            request.id, client=bob, body=models.DecisionBody(comment="ok for the rotation")
        )
        assert isinstance(approved, models.RequestOut)
        assert approved.status == models.RequestStatus.APPROVED
        assert [(d.approver, d.decision.value) for d in approved.approvals] == [("bob", "approved")]

        status = await get_request.asyncio(request.id, client=alice)
        assert isinstance(status, models.RequestOut)
        assert status.status == models.RequestStatus.APPROVED
        assert status.approved_at is not None
