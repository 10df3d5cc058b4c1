"""Catalogue events for notify tests, with unique request ids."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from teamkit.events.common import AccountRef, Actor, Approver, PermissionSetRef, Requester
from teamkit.events.lifecycle import AccessEndedData, AccessEndedV1, GrantFailedData, GrantFailedV1
from teamkit.events.request import (
    RequestApprovedData,
    RequestApprovedV1,
    RequestRevokeRequestedData,
    RequestRevokeRequestedV1,
    RequestSubmittedData,
    RequestSubmittedV1,
)

START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
PS_ARN = "arn:aws:sso:::permissionSet/ssoins-1/ps-readonly"


def submitted(
    *,
    request_id: UUID | None = None,
    justification: str = "Investigate incident INC-42",
    requester_email: str | None = None,
    time_zone: str | None = "Europe/Berlin",
    approvers: list[tuple[str, str]] | None = None,
    ticket: str | None = "INC-42",
) -> RequestSubmittedV1:
    request_id = request_id or uuid4()
    tag = request_id.hex[:8]
    approver_list = approvers if approvers is not None else [("bob", f"bob-{tag}@example.com")]
    return RequestSubmittedV1(
        subject=str(request_id),
        data=RequestSubmittedData(
            request_id=request_id,
            requester=Requester(
                user_id="u-alice",
                username="alice",
                email=requester_email or f"alice-{tag}@example.com",
                time_zone=time_zone,
            ),
            account=AccountRef(id="111122223333", name="team-a-prod"),
            permission_set=PermissionSetRef(arn=PS_ARN, name="ReadOnly"),
            start=START,
            end=START + timedelta(minutes=90),
            duration_minutes=90,
            justification=justification,
            ticket=ticket,
            approval_required=True,
            approvals_needed=1,
            approvers=[
                Approver(user_id=f"u-{name}", username=name, email=email)
                for name, email in approver_list
            ],
            approval_deadline=START - timedelta(hours=1),
        ),
    )


def approved(event: RequestSubmittedV1) -> RequestApprovedV1:
    d = event.data
    return RequestApprovedV1(
        subject=event.subject,
        data=RequestApprovedData(
            request_id=d.request_id,
            approved_by=[Actor(user_id="u-bob", username="bob")],
            principal_id=d.requester.user_id,
            account_id=d.account.id,
            permission_set_arn=d.permission_set.arn,
            start=d.start,
            end=d.end,
        ),
    )


def revoke_requested(event: RequestSubmittedV1, comment: str) -> RequestRevokeRequestedV1:
    d = event.data
    return RequestRevokeRequestedV1(
        subject=event.subject,
        data=RequestRevokeRequestedData(
            request_id=d.request_id,
            by=Actor(user_id="u-dave", username="dave"),
            role="admin",
            comment=comment,
            principal_id=d.requester.user_id,
            account_id=d.account.id,
            permission_set_arn=d.permission_set.arn,
        ),
    )


def access_ended(event: RequestSubmittedV1, reason: Any = "revoked") -> AccessEndedV1:
    d = event.data
    return AccessEndedV1(
        subject=event.subject,
        data=AccessEndedData(
            request_id=d.request_id,
            reason=reason,
            assignment_action="removed",
            ended_at=START + timedelta(minutes=30),
            principal_id=d.requester.user_id,
            account_id=d.account.id,
            permission_set_arn=d.permission_set.arn,
            revoked_by=Actor(user_id="u-dave", username="dave"),
        ),
    )


def grant_failed(event: RequestSubmittedV1) -> GrantFailedV1:
    return GrantFailedV1(
        subject=event.subject,
        data=GrantFailedData(
            request_id=event.data.request_id,
            error_code="AccessDeniedException",
            error_message="not allowed <b>",
            retryable=False,
            attempts=3,
        ),
    )
