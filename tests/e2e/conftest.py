"""The whole system as `make run` starts it, driven over HTTP only, for the end-to-end suite.

One stack per test session (`devstack.stack.Stack`: embedded PostgreSQL, Tansu, moto, the dev
OIDC issuer and the five services as separate processes), plus two servers in the test process:
a fault-injecting proxy between the lifecycle service and moto (only lifecycle goes through it),
and a recorder standing in for Slack and webhook receivers. Timings are shortened through the
services' own settings (`StackConfig.extra_env`), never through code.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from devstack.demo_org import DEMO_ORG
from devstack.stack import Stack, StackConfig
from teamkit.aws import AwsClients
from teamkit.settings import AwsSettings
from tests.harness.aws_fault_proxy import FaultProxy, Rule
from tests.harness.http_recorder import HttpRecorder, recording_server
from tests.harness.servers import serving
from tests.harness.wait import eventually

if TYPE_CHECKING:
    from types_aiobotocore_sso_admin.client import SSOAdminClient

log = logging.getLogger(__name__)

#: moto's default account: the SNS topic the demo seed creates lives there.
MOTO_ACCOUNT = "123456789012"
SNS_TOPIC_ARN = f"arn:aws:sns:us-east-1:{MOTO_ACCOUNT}:{DEMO_ORG.sns_topic_name}"
OPS_EMAIL = "ops@example.com"
TERMINAL = frozenset({"ended", "revoked", "rejected", "cancelled", "expired", "error"})


class AccountFaultProxy(FaultProxy):
    """The harness fault proxy, plus faults for one (principal, account) pair only.

    The harness matches rules by operation; concurrent scenarios share the proxy, so a failing
    grant must fail for its own request's principal and account, not for whoever comes next.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.target_faults: dict[tuple[str, str], Rule] = {}

    def fail_target(self, principal_id: str, account_id: str, code: str, message: str) -> None:
        """Answer `code` to every CreateAccountAssignment of this principal on this account."""
        self.target_faults[(principal_id, account_id)] = Rule(
            "CreateAccountAssignment", error=code, message=message
        )

    async def handle(self, request: Request) -> Response:
        """Apply a per-target fault, else the harness rules (the body is cached by Starlette)."""
        operation = request.headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        if operation == "CreateAccountAssignment" and self.target_faults:
            raw = await request.body()
            body: dict[str, Any] = json.loads(raw) if raw else {}
            rule = self.target_faults.get((str(body.get("PrincipalId")), str(body.get("TargetId"))))
            if rule is not None:
                rule.used += 1
                return self._log(operation, body, self._error(rule))
        return await super().handle(request)


@contextlib.asynccontextmanager
async def serve_account_fault_proxy(upstream: str) -> AsyncIterator[AccountFaultProxy]:
    """Serve an AccountFaultProxy in front of `upstream` on a free port until the block exits."""
    proxy = AccountFaultProxy(upstream)
    app = FastAPI()
    app.add_route("/{path:path}", proxy.handle, methods=["GET", "POST", "PUT", "DELETE"])
    try:
        async with serving(app) as url:
            proxy.endpoint_url = url
            yield proxy
    finally:
        proxy.clear()
        await proxy.aclose()


class ApiError(AssertionError):
    """An HTTP answer other than the expected one (an AssertionError: `eventually` retries it)."""


@dataclass
class Directory:
    """Ids of the demo organization, read from the policy service's directory API."""

    accounts: dict[str, str]
    permission_sets: dict[str, str]
    users: dict[str, str]
    emails: dict[str, str]


@dataclass
class E2E:
    """The running stack and the means to talk to it as each demo person."""

    stack: Stack
    description: dict[str, Any]
    proxy: AccountFaultProxy
    recorder: HttpRecorder
    http: httpx.AsyncClient
    sso: "SSOAdminClient"
    instance_arn: str
    directory: Directory = field(init=False)
    tokens: dict[str, str] = field(default_factory=dict)
    slack_ids: dict[str, str] = field(default_factory=dict)
    webhook_secret: str = ""

    @property
    def services(self) -> dict[str, str]:
        """Base URLs of the five services."""
        return dict(self.description["services"])

    async def token(self, who: str) -> str:
        """A bearer token from the stack's issuer: password grant for people, else the client."""
        if who not in self.tokens:
            clients = {c.client_id: c for c in DEMO_ORG.clients}
            if who in clients:
                form = {
                    "grant_type": "client_credentials",
                    "client_id": who,
                    "client_secret": clients[who].secret,
                }
            else:
                form = {"grant_type": "password", "username": who, "password": who}
            answer = await self.http.post(self.description["oidc"]["token_endpoint"], data=form)
            assert answer.status_code == 200, answer.text
            self.tokens[who] = answer.json()["access_token"]
        return self.tokens[who]

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        who: str,
        *,
        json_body: Any = None,
        expect: int | tuple[int, ...] = 200,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> httpx.Response:
        """One HTTP call as `who`; raise ApiError unless the status is one of `expect`."""
        try:
            answer = await self.http.request(
                method,
                self.services[service] + path,
                json=json_body,
                params=params,
                headers={"Authorization": f"Bearer {await self.token(who)}", **(headers or {})},
            )
        except httpx.TransportError as exc:
            # A service being restarted (the crash scenario) is unreachable for a while.
            raise ApiError(f"{method} {service}{path}: unreachable: {exc!r}") from exc
        wanted = (expect,) if isinstance(expect, int) else expect
        if answer.status_code not in wanted:
            raise ApiError(
                f"{method} {service}{path} as {who}: {answer.status_code} (wanted {wanted}): "
                f"{answer.text[:1000]}"
            )
        return answer

    async def pages(self, service: str, path: str, who: str, **params: Any) -> list[Any]:
        """Every item of a keyset-paginated list."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = (await self.call("GET", service, path, who, params=query)).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    # -- requests --------------------------------------------------------------------------------

    async def submit(
        self,
        who: str,
        account: str,
        permission_set: str,
        *,
        minutes: int = 1,
        start_in: float | None = None,
        justification: str = "e2e: investigate an incident",
    ) -> dict[str, Any]:
        """Submit a request (account and permission set by demo name); the created request."""
        body: dict[str, Any] = {
            "account_id": self.directory.accounts[account],
            "permission_set": permission_set,
            "duration_minutes": minutes,
            "justification": justification,
            "ticket": "INC-4242",
        }
        if start_in is not None:
            start = time.time() + start_in
            body["start"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
        answer = await self.call("POST", "request", "/v1/requests", who, json_body=body, expect=201)
        created: dict[str, Any] = answer.json()
        return created

    async def request(self, request_id: str) -> dict[str, Any]:
        """A request as an admin sees it."""
        answer = await self.call("GET", "request", f"/v1/requests/{request_id}", "dave")
        found: dict[str, Any] = answer.json()
        return found

    async def act(
        self, action: str, request_id: str, who: str, *, expect: int = 200, **body: Any
    ) -> dict[str, Any]:
        """POST /v1/requests/{id}/{approve|reject|cancel|revoke} with a comment."""
        answer = await self.call(
            "POST",
            "request",
            f"/v1/requests/{request_id}/{action}",
            who,
            json_body={"comment": f"e2e: {action} by {who}", **body},
            expect=expect,
        )
        acted: dict[str, Any] = answer.json()
        return acted

    async def wait_status(
        self, request_id: str, *wanted: str, timeout: float = 150.0
    ) -> dict[str, Any]:
        """Poll until the request has one of `wanted`; fail at once on another terminal one."""

        async def check() -> dict[str, Any]:
            found = await self.request(request_id)
            status = found["status"]
            if status in TERMINAL and status not in wanted:
                raise RuntimeError(
                    f"request {request_id} ended as {status} ({found['status_reason']}), "
                    f"wanted {wanted}"
                )
            assert status in wanted, f"request {request_id} is {status}, wanted {wanted}"
            return found

        return await eventually(check, timeout=timeout, interval=0.5)

    async def grant(self, request_id: str) -> dict[str, Any]:
        """The lifecycle service's view of a grant (admin); waits while lifecycle restarts."""

        async def read() -> dict[str, Any]:
            answer = await self.call("GET", "lifecycle", f"/v1/grants/{request_id}", "dave")
            found: dict[str, Any] = answer.json()
            return found

        return await eventually(read, timeout=90, interval=0.5)

    # -- moto, read directly for assertions ------------------------------------------------------

    async def principals(self, account: str, permission_set: str) -> set[str]:
        """User ids moto holds an assignment for on (account, permission set)."""
        found: set[str] = set()
        paginator = self.sso.get_paginator("list_account_assignments")
        async for page in paginator.paginate(
            InstanceArn=self.instance_arn,
            AccountId=self.directory.accounts[account],
            PermissionSetArn=self.directory.permission_sets[permission_set],
        ):
            found |= {
                a["PrincipalId"] for a in page["AccountAssignments"] if a["PrincipalType"] == "USER"
            }
        return found

    async def assigned(self, user: str, account: str, permission_set: str) -> bool:
        """Whether moto holds the assignment of `user` on (account, permission set)."""
        return self.directory.users[user] in await self.principals(account, permission_set)

    async def all_assignments(self) -> set[tuple[str, str, str]]:
        """Every (user name, account name, permission set name) assigned in moto."""
        names = {v: k for k, v in self.directory.users.items()}
        result: set[tuple[str, str, str]] = set()
        for account in self.directory.accounts:
            for permission_set in self.directory.permission_sets:
                for principal in await self.principals(account, permission_set):
                    result.add((names.get(principal, principal), account, permission_set))
        return result


def _extra_env(proxy_url: str, recorder: HttpRecorder) -> dict[str, dict[str, str]]:
    return {
        "lifecycle": {
            # Only the lifecycle service goes through the fault proxy.
            "AWS_ENDPOINT_URL": proxy_url,
            "AWS_MAX_ATTEMPTS": "1",
            "LIFECYCLE_TIMER_POLL_SECONDS": "2",
            "LIFECYCLE_STATUS_POLL_SECONDS": "0.2",
            "LIFECYCLE_RETRY_BASE_SECONDS": "0.05",
            "LIFECYCLE_RETRY_MAX_SECONDS": "1",
            "LIFECYCLE_TIMER_RETRY_SECONDS": "1",
            "LIFECYCLE_RECONCILE_INTERVAL_SECONDS": "0",
        },
        "notify": {
            "NOTIFY_SLACK_ENABLED": "1",
            "NOTIFY_SLACK_BASE_URL": recorder.slack_api_url,
            "NOTIFY_SLACK_BOT_TOKEN": recorder.slack_token,
            "NOTIFY_WEBHOOKS_ENABLED": "1",
            "NOTIFY_SNS_ENABLED": "1",
            "NOTIFY_SNS_TOPIC_ARN": SNS_TOPIC_ARN,
            "NOTIFY_OPS_EMAIL": OPS_EMAIL,
            "NOTIFY_WORKER_POLL_SECONDS": "0.5",
            "NOTIFY_RETRY_BASE_SECONDS": "0.5",
            "NOTIFY_RETRY_MAX_SECONDS": "5",
        },
    }


async def _directory(e2e: E2E) -> Directory:
    accounts = await e2e.pages("policy", "/v1/directory/accounts", "dave", limit=500)
    sets = await e2e.pages("policy", "/v1/directory/permission-sets", "dave", limit=500)
    users = await e2e.pages("policy", "/v1/directory/users", "dave", limit=500)
    return Directory(
        accounts={a["name"]: a["id"] for a in accounts},
        permission_sets={p["name"]: p["arn"] for p in sets},
        users={u["username"]: u["id"] for u in users},
        emails={u["username"]: u["email"] for u in users},
    )


async def _wait_demo_policies(e2e: E2E) -> None:
    async def seeded() -> None:
        items = await e2e.pages("policy", "/v1/eligibility-policies", "dave")
        assert len(items) >= 2, "the demo policies are not seeded yet"

    await eventually(seeded, timeout=60, interval=0.5)


@pytest.fixture(scope="session")
async def e2e(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[E2E]:
    """The stack, started once for the session and stopped (every process) at the end."""
    local: Path = tmp_path_factory.mktemp("e2e-stack")
    config = StackConfig.with_free_ports(local)
    config.log_format = "json"
    config.ready_timeout = 150.0
    moto_url = f"http://127.0.0.1:{config.ports['aws']}"
    recorder = HttpRecorder()
    async with (
        serve_account_fault_proxy(moto_url) as proxy,
        recording_server(recorder),
        httpx.AsyncClient(timeout=30.0) as http,
    ):
        config.extra_env = _extra_env(proxy.endpoint_url, recorder)
        stack = Stack(config)
        try:
            started = time.monotonic()
            description = await asyncio.to_thread(stack.start, log.info)
            log.info("e2e stack ready in %.1f s", time.monotonic() - started)
            clients = AwsClients(AwsSettings(AWS_ENDPOINT_URL=moto_url, AWS_MAX_ATTEMPTS=1))
            async with clients.sso_admin() as sso:
                env = E2E(
                    stack=stack,
                    description=description,
                    proxy=proxy,
                    recorder=recorder,
                    http=http,
                    sso=sso,
                    instance_arn=description["aws"]["instance_arn"],
                )
                env.directory = await _directory(env)
                for user, email in env.directory.emails.items():
                    env.slack_ids[user] = f"U{user.upper()}"
                    recorder.add_slack_user(email, env.slack_ids[user])
                await _wait_demo_policies(env)
                yield env
        finally:
            await asyncio.to_thread(stack.stop, log.info)
