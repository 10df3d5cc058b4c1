"""A fault-injecting HTTP proxy between aiobotocore and moto, for Identity Center tests.

moto answers every assignment status SUCCEEDED at once and never throttles, so the lifecycle
service's polling, back-off and error paths need faults moto cannot produce. The proxy forwards
every request to moto unchanged unless a rule matches the operation (the `X-Amz-Target` header of
the sso-admin JSON protocol, e.g. `SWBExternalService.CreateAccountAssignment`):

- `fail(op, code, status=400, times=n)`: answer an AWS JSON error (`ThrottlingException`,
  `ConflictException`, `ValidationException`, 500 `InternalServerException`, ...);
- `delay(op, seconds, times=n)`: hold the call before forwarding it;
- `in_progress(polls, then="pass" | "failed")`: creation/deletion answers say IN_PROGRESS and so
  do the first `polls` status polls of each operation; then the real (SUCCEEDED) answer passes
  through, or FAILED with a reason. In "failed" mode the create/delete never reaches moto, as
  when AWS fails an operation, so moto's state stays what AWS's would be.

Every call is logged (`calls`) with its operation, time and answered status, so tests can count
calls, measure rates and check order.
"""

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_STATUS_OPS = {
    "DescribeAccountAssignmentCreationStatus": (
        "AccountAssignmentCreationRequestId",
        "AccountAssignmentCreationStatus",
    ),
    "DescribeAccountAssignmentDeletionStatus": (
        "AccountAssignmentDeletionRequestId",
        "AccountAssignmentDeletionStatus",
    ),
}
_OPERATION_OPS = {
    "CreateAccountAssignment": "AccountAssignmentCreationStatus",
    "DeleteAccountAssignment": "AccountAssignmentDeletionStatus",
}
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


@dataclass
class Rule:
    """Answer an error for (or delay) the next `times` calls of `operation` (None: all)."""

    operation: str
    error: str | None = None
    status: int = 400
    message: str = ""
    delay: float = 0.0
    times: int | None = None
    used: int = 0

    def take(self, operation: str) -> bool:
        """True when this rule applies to this call (and count it)."""
        if operation != self.operation or (self.times is not None and self.used >= self.times):
            return False
        self.used += 1
        return True


@dataclass(frozen=True)
class Call:
    """One call through the proxy."""

    at: float
    operation: str
    status: int
    body: dict[str, Any]


@dataclass
class _Progress:
    polls: int
    then: Literal["pass", "failed"]
    reason: str
    operations: frozenset[str]
    seen: dict[str, int] = field(default_factory=dict)
    fake: set[str] = field(default_factory=set)


class FaultProxy:
    """The proxy's state and rules; `endpoint_url` is set once it serves."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.endpoint_url = ""
        self.rules: list[Rule] = []
        self.calls: list[Call] = []
        self._progress: _Progress | None = None
        self._http = httpx.AsyncClient(timeout=30.0)
        self._released = asyncio.Event()

    # -- control ---------------------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        message: str = "",
        times: int | None = None,
    ) -> Rule:
        """Answer `code` to the next `times` calls of `operation`."""
        rule = Rule(operation, error=code, status=status, message=message or code, times=times)
        self.rules.append(rule)
        return rule

    def delay(self, operation: str, seconds: float, *, times: int | None = None) -> Rule:
        """Hold the next `times` calls of `operation` for `seconds` before forwarding."""
        rule = Rule(operation, delay=seconds, times=times)
        self.rules.append(rule)
        return rule

    def in_progress(
        self,
        polls: int,
        *,
        then: Literal["pass", "failed"] = "pass",
        reason: str = "Received a 400 status code from Organizations: simulated failure",
        operations: tuple[str, ...] = ("create", "delete"),
    ) -> None:
        """Report IN_PROGRESS for `polls` status polls per operation, then pass or FAILED."""
        self._progress = _Progress(polls, then, reason, frozenset(operations))

    def clear(self) -> None:
        """Drop every rule and the status mode, and let held calls go (the call log stays)."""
        self.rules.clear()
        self._progress = None
        self._released.set()
        self._released = asyncio.Event()

    def count(self, operation: str, *, status: int | None = None) -> int:
        """How many calls of `operation` passed (answered `status`, if given)."""
        return sum(
            1
            for c in self.calls
            if c.operation == operation and (status is None or c.status == status)
        )

    # -- serving ---------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Apply the rules to one call, else forward it to moto."""
        target = request.headers.get("x-amz-target", "")
        operation = target.rsplit(".", 1)[-1] if target else request.url.path
        raw = await request.body()
        try:
            body: dict[str, Any] = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        for rule in self.rules:
            if rule.take(operation):
                if rule.delay:
                    # Held calls end early when the proxy shuts down (or the rules are cleared).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._released.wait(), rule.delay)
                if rule.error:
                    return self._log(operation, body, self._error(rule))
        progress = self._progress
        kind = "create" if operation == "CreateAccountAssignment" else "delete"
        if (
            progress is not None
            and operation in _OPERATION_OPS
            and kind in progress.operations
            and progress.then == "failed"
        ):
            # AWS fails the operation: nothing reaches moto, the status will say FAILED.
            request_id = str(uuid.uuid4())
            progress.fake.add(request_id)
            status = {
                "Status": "IN_PROGRESS",
                "RequestId": request_id,
                "TargetId": body.get("TargetId"),
                "TargetType": "AWS_ACCOUNT",
                "PermissionSetArn": body.get("PermissionSetArn"),
                "PrincipalType": body.get("PrincipalType"),
                "PrincipalId": body.get("PrincipalId"),
            }
            return self._log(operation, body, _json({_OPERATION_OPS[operation]: status}))
        if progress is not None and operation in _STATUS_OPS:
            id_field, status_field = _STATUS_OPS[operation]
            request_id = str(body.get(id_field))
            if request_id in progress.fake:
                # moto never saw this operation: answer its polls here.
                seen = progress.seen.get(request_id, 0) + 1
                progress.seen[request_id] = seen
                answer: dict[str, Any] = {"RequestId": request_id, "Status": "IN_PROGRESS"}
                if seen > progress.polls:
                    answer.update(Status="FAILED", FailureReason=progress.reason)
                return self._log(operation, body, _json({status_field: answer}))
        upstream = await self._forward(request, raw)
        if progress is not None and upstream.status_code == 200:
            upstream = self._rewrite(operation, body, upstream, progress)
        return self._log(operation, body, upstream)

    def _rewrite(
        self, operation: str, body: dict[str, Any], answer: Response, progress: _Progress
    ) -> Response:
        if operation in _OPERATION_OPS:
            kind = "create" if operation == "CreateAccountAssignment" else "delete"
            if kind not in progress.operations or progress.polls <= 0:
                return answer
            document = json.loads(bytes(answer.body))
            document[_OPERATION_OPS[operation]]["Status"] = "IN_PROGRESS"
            return _json(document)
        if operation in _STATUS_OPS:
            id_field, status_field = _STATUS_OPS[operation]
            request_id = str(body.get(id_field))
            seen = progress.seen.get(request_id, 0) + 1
            progress.seen[request_id] = seen
            document = json.loads(bytes(answer.body))
            if seen <= progress.polls:
                document[status_field]["Status"] = "IN_PROGRESS"
            return _json(document)
        return answer

    async def _forward(self, request: Request, raw: bytes) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream = await self._http.request(
            request.method,
            self.upstream + request.url.path,
            params=request.query_params,
            content=raw,
            headers=headers,
        )
        kept = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in _HOP_HEADERS | {"content-encoding"}
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    def _error(self, rule: Rule) -> Response:
        code = rule.error or "InternalServerException"
        return Response(
            json.dumps({"__type": code, "message": rule.message}),
            status_code=rule.status,
            media_type="application/x-amz-json-1.1",
            headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _log(self, operation: str, body: dict[str, Any], response: Response) -> Response:
        self.calls.append(Call(time.monotonic(), operation, response.status_code, body))
        return response

    async def aclose(self) -> None:
        """Close the upstream client."""
        await self._http.aclose()


def _json(document: dict[str, Any]) -> Response:
    return Response(
        json.dumps(document, default=str),
        status_code=200,
        media_type="application/x-amz-json-1.1",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        # pytest owns SIGINT/SIGTERM; an embedded server must not swallow them.
        yield


@contextlib.asynccontextmanager
async def serve_fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """Run a FaultProxy in front of `upstream` on a free loopback port until the block exits."""
    proxy = FaultProxy(upstream)
    app = Starlette(
        routes=[Route("/{path:path}", proxy.handle, methods=["GET", "POST", "PUT", "DELETE"])]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        limit_concurrency=1000,
        timeout_graceful_shutdown=2,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"aws-fault-proxy-{port}")
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the fault proxy stopped before it started")
                await asyncio.sleep(0.01)
        proxy.endpoint_url = f"http://127.0.0.1:{port}"
        yield proxy
    finally:
        proxy.clear()
        server.should_exit = True
        await task
        sock.close()
        await proxy.aclose()
