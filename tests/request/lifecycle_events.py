"""Lifecycle events as the lifecycle service would produce them, and a wait for their effect."""

from datetime import UTC, datetime, timedelta
from typing import Any

from teamkit.events.envelope import Event
from teamkit.events.lifecycle import (
    AccessEndedData,
    AccessEndedV1,
    AccessGrantedData,
    AccessGrantedV1,
    ApprovalTimedOutData,
    ApprovalTimedOutV1,
    GrantFailedData,
    GrantFailedV1,
    GrantScheduledData,
    GrantScheduledV1,
    RevokeFailedData,
    RevokeFailedV1,
)
from tests.harness.wait import eventually
from tests.request.conftest import RequestService


def _ids(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "principal_id": request["requester"]["user_id"],
        "account_id": request["account"]["id"],
        "permission_set_arn": request["permission_set"]["arn"],
    }


def scheduled(request: dict[str, Any]) -> GrantScheduledV1:
    now = datetime.now(UTC)
    return GrantScheduledV1(
        subject=request["id"],
        data=GrantScheduledData(request_id=request["id"], start=now, end=now + timedelta(hours=1)),
    )


def granted(request: dict[str, Any]) -> AccessGrantedV1:
    now = datetime.now(UTC)
    return AccessGrantedV1(
        subject=request["id"],
        data=AccessGrantedData(
            request_id=request["id"],
            confirmed_at=now,
            aws_request_id="aws-1",
            end=now + timedelta(hours=1),
            **_ids(request),
        ),
    )


def ended(request: dict[str, Any], reason: str = "expired") -> AccessEndedV1:
    return AccessEndedV1(
        subject=request["id"],
        data=AccessEndedData(
            request_id=request["id"],
            reason=reason,
            assignment_action="removed",
            ended_at=datetime.now(UTC),
            **_ids(request),
        ),
    )


def grant_failed(request: dict[str, Any]) -> GrantFailedV1:
    return GrantFailedV1(
        subject=request["id"],
        data=GrantFailedData(
            request_id=request["id"],
            error_code="AccessDeniedException",
            error_message="not authorized to perform sso:CreateAccountAssignment",
            retryable=False,
            attempts=1,
        ),
    )


def revoke_failed(request: dict[str, Any]) -> RevokeFailedV1:
    return RevokeFailedV1(
        subject=request["id"],
        data=RevokeFailedData(
            request_id=request["id"],
            error_code="ThrottlingException",
            error_message="Rate exceeded",
            attempts=5,
            **_ids(request),
        ),
    )


def timed_out(request: dict[str, Any]) -> ApprovalTimedOutV1:
    return ApprovalTimedOutV1(
        subject=request["id"],
        data=ApprovalTimedOutData(request_id=request["id"], deadline=datetime.now(UTC)),
    )


async def status_of(svc: RequestService, request_id: str) -> dict[str, Any]:
    async with svc.client("dave") as admin:  # admins see every request
        answer = await admin.get(f"/v1/requests/{request_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def deliver(
    svc: RequestService, event: Event, *, expect: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Publish `event` to Kafka and wait until the request shows status `expect`."""
    await svc.publish(event)

    async def check() -> dict[str, Any]:
        body = await status_of(svc, event.subject)
        assert body["status"] == expect, body["status"]
        return body

    return await eventually(check, timeout=timeout)
