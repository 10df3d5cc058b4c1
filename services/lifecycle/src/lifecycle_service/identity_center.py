"""Identity Center account assignments through aiobotocore, behind the shared limits.

Every call goes through one `TokenBucket`; create and delete run inside an operation slot
(at most `MAX_OUTSTANDING_OPERATIONS` from the call to a terminal status). Throttling, conflicts,
internal errors, 5xx and network failures are retried with jittered exponential back-off;
validation, access-denied and not-found errors are not (they cannot heal by waiting).
botocore's own retries must be off (`AWS_MAX_ATTEMPTS=1`) so this module owns retrying.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from lifecycle_service.config import Settings
from lifecycle_service.limits import TokenBucket, backoff_delay
from lifecycle_service.repository import Tuple

if TYPE_CHECKING:
    from types_aiobotocore_sso_admin.client import SSOAdminClient

log = structlog.get_logger(__name__)

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ConflictException",
        "InternalServerException",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class AwsFailure(Exception):
    """An Identity Center call that failed for good (after retries, or not retryable)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        attempts: int,
        aws_request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.aws_request_id = aws_request_id


class CallLog(Protocol):
    """Durable notes about one create or delete, written outside the job's transaction."""

    async def started(self, attempt: int) -> int:
        """The call is about to be made; return the note's id."""
        ...

    async def accepted(self, call_id: int, aws_request_id: str, attempt: int) -> None:
        """AWS accepted the operation; its status is being polled."""
        ...

    async def finished(
        self, call_id: int, status: str, code: str | None = None, message: str | None = None
    ) -> None:
        """The call ended: `succeeded`, `failed` (terminal status) or `error` (not accepted)."""
        ...


@dataclass
class CallStats:
    """Counters for `/readyz` and the benchmark."""

    calls: int = 0
    retries: int = 0
    first_call_at: float | None = None
    last_call_at: float | None = None


def _classify(exc: Exception) -> tuple[str, str, bool]:
    """(code, message, retryable) of a failed call."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code, message, code in RETRYABLE_CODES or status >= 500
    # Connection resets, read timeouts: the call may not have arrived; trying again is safe
    # because create and delete are checked against the ledger and the call log first.
    return type(exc).__name__, str(exc), True


class IdentityCenter:
    """Assignment operations on one Identity Center instance, within the configured limits."""

    def __init__(
        self,
        client: SSOAdminClient,
        settings: Settings,
        *,
        bucket: TokenBucket | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._settings = settings
        self.bucket = bucket or TokenBucket(settings.IC_CALLS_PER_SECOND, burst=settings.IC_BURST)
        self.operation_slots = asyncio.Semaphore(settings.MAX_OUTSTANDING_OPERATIONS)
        self._instance_arn = settings.INSTANCE_ARN
        self._instance_lock = asyncio.Lock()
        self._sleep = sleep
        self.stats = CallStats()

    async def instance_arn(self) -> str:
        """The configured instance, or the first one `ListInstances` returns (looked up once)."""
        if self._instance_arn is not None:
            return self._instance_arn
        async with self._instance_lock:
            if self._instance_arn is None:
                answer = await self._call(self._client.list_instances)
                instances = answer.get("Instances", [])
                if not instances:
                    raise AwsFailure(
                        "NoInstance",
                        "ListInstances returned no Identity Center instance; set "
                        "LIFECYCLE_INSTANCE_ARN",
                        retryable=False,
                        attempts=1,
                    )
                self._instance_arn = str(instances[0]["InstanceArn"])
        return self._instance_arn

    async def _call(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            await self.bucket.acquire()
            now = time.monotonic()
            self.stats.calls += 1
            self.stats.first_call_at = self.stats.first_call_at or now
            self.stats.last_call_at = now
            try:
                return await method(**kwargs)
            except (TimeoutError, ClientError, BotoCoreError, OSError) as exc:
                code, message, retryable = _classify(exc)
                if not retryable or attempt >= self._settings.RETRY_MAX_ATTEMPTS:
                    raise AwsFailure(code, message, retryable=retryable, attempts=attempt) from exc
                self.stats.retries += 1
                delay = backoff_delay(
                    attempt,
                    base=self._settings.RETRY_BASE_SECONDS,
                    cap=self._settings.RETRY_MAX_SECONDS,
                )
                log.info("aws.retry", code=code, attempt=attempt, delay=round(delay, 3))
                await self._sleep(delay)

    async def is_assigned(self, target: Tuple) -> bool:
        """Whether `ListAccountAssignments` shows the user assignment of `target`."""
        users = await self.assigned_users(
            account_id=target.account_id, permission_set_arn=target.permission_set_arn
        )
        return target.principal_id in users

    async def assigned_users(self, *, account_id: str, permission_set_arn: str) -> set[str]:
        """User principal ids holding `permission_set_arn` on `account_id` (every page)."""
        instance = await self.instance_arn()
        users: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "InstanceArn": instance,
                "AccountId": account_id,
                "PermissionSetArn": permission_set_arn,
                "MaxResults": 100,
            }
            if token:
                kwargs["NextToken"] = token
            page = await self._call(self._client.list_account_assignments, **kwargs)
            users.update(
                str(assignment["PrincipalId"])
                for assignment in page.get("AccountAssignments", [])
                if assignment.get("PrincipalType", "USER") == "USER"
            )
            token = page.get("NextToken")
            if not token:
                return users

    async def create(self, target: Tuple, log_: CallLog) -> str:
        """Create the assignment and poll it to SUCCEEDED; return AWS's request id."""
        return await self._operate("create", target, log_)

    async def delete(self, target: Tuple, log_: CallLog) -> str:
        """Delete the assignment and poll it to SUCCEEDED; return AWS's request id."""
        return await self._operate("delete", target, log_)

    async def _operate(self, operation: str, target: Tuple, log_: CallLog) -> str:
        instance = await self.instance_arn()
        kwargs = {
            "InstanceArn": instance,
            "TargetId": target.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": target.permission_set_arn,
            "PrincipalType": "USER",
            "PrincipalId": target.principal_id,
        }
        call_id = await log_.started(1)
        try:
            if operation == "create":
                answer = await self._call(self._client.create_account_assignment, **kwargs)
                status = answer["AccountAssignmentCreationStatus"]
            else:
                answer = await self._call(self._client.delete_account_assignment, **kwargs)
                status = answer["AccountAssignmentDeletionStatus"]
        except AwsFailure as failure:
            await log_.finished(call_id, "error", failure.code, failure.message)
            raise
        request_id = str(status.get("RequestId", ""))
        await log_.accepted(call_id, request_id, 1)
        deadline = time.monotonic() + self._settings.STATUS_TIMEOUT_SECONDS
        polls = 0
        try:
            while status.get("Status") == "IN_PROGRESS":
                if time.monotonic() > deadline:
                    raise AwsFailure(
                        "StatusTimeout",
                        f"the {operation} operation was still IN_PROGRESS after "
                        f"{self._settings.STATUS_TIMEOUT_SECONDS:.0f} s",
                        retryable=True,
                        attempts=polls + 1,
                        aws_request_id=request_id,
                    )
                await self._sleep(self._settings.STATUS_POLL_SECONDS)
                polls += 1
                if operation == "create":
                    polled = await self._call(
                        self._client.describe_account_assignment_creation_status,
                        InstanceArn=instance,
                        AccountAssignmentCreationRequestId=request_id,
                    )
                    status = polled["AccountAssignmentCreationStatus"]
                else:
                    polled = await self._call(
                        self._client.describe_account_assignment_deletion_status,
                        InstanceArn=instance,
                        AccountAssignmentDeletionRequestId=request_id,
                    )
                    status = polled["AccountAssignmentDeletionStatus"]
        except AwsFailure as failure:
            failure.aws_request_id = failure.aws_request_id or request_id
            await log_.finished(call_id, "error", failure.code, failure.message)
            raise
        if status.get("Status") != "SUCCEEDED":
            reason = str(status.get("FailureReason") or f"status {status.get('Status')}")
            await log_.finished(call_id, "failed", "OperationFailed", reason)
            raise AwsFailure(
                "OperationFailed", reason, retryable=False, attempts=1, aws_request_id=request_id
            )
        await log_.finished(call_id, "succeeded")
        return request_id
