"""Catalogue events of one request, built as the producing services would emit them."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from teamkit.events import (
    AccessEndedData,
    AccessEndedV1,
    AccessGrantedData,
    AccessGrantedV1,
    AccountRef,
    Actor,
    Approver,
    Event,
    GrantFailedData,
    GrantFailedV1,
    GrantScheduledData,
    GrantScheduledV1,
    PermissionSetRef,
    RequestApprovalRecordedData,
    RequestApprovalRecordedV1,
    RequestApprovedData,
    RequestApprovedV1,
    RequestCancelledData,
    RequestCancelledV1,
    Requester,
    RequestRejectedData,
    RequestRejectedV1,
    RequestRevokeRequestedData,
    RequestRevokeRequestedV1,
    RequestStatus,
    RequestStatusChangedData,
    RequestStatusChangedV1,
    RequestSubmittedData,
    RequestSubmittedV1,
)

PS_ARN = "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-0123456789abcdef"


def actor(username: str) -> Actor:
    return Actor(user_id=f"uid-{username}", username=username, email=f"{username}@example.com")


@dataclass
class RequestStory:
    """A request and the clock of its events."""

    requester: str = "alice"
    approvers: tuple[str, ...] = ("bob",)
    account_id: str = "111111111111"
    account_name: str = "dev"
    permission_set: str = "AdministratorAccess"
    justification: str = "investigate incident"
    ticket: str | None = "INC-1"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    duration_minutes: int = 60
    request_id: UUID = field(default_factory=uuid4)

    @property
    def subject(self) -> str:
        return str(self.request_id)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.duration_minutes)

    def at(self, minutes: float) -> datetime:
        """A time relative to submission (submission = start - 30 min)."""
        return self.start - timedelta(minutes=30) + timedelta(minutes=minutes)

    def submitted(self, minutes: float = 0) -> RequestSubmittedV1:
        return RequestSubmittedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestSubmittedData(
                request_id=self.request_id,
                requester=Requester(
                    user_id=f"uid-{self.requester}",
                    username=self.requester,
                    email=f"{self.requester}@example.com",
                ),
                account=AccountRef(id=self.account_id, name=self.account_name),
                permission_set=PermissionSetRef(
                    arn=PS_ARN, name=self.permission_set, session_duration_minutes=60
                ),
                start=self.start,
                end=self.end,
                duration_minutes=self.duration_minutes,
                justification=self.justification,
                ticket=self.ticket,
                approval_required=bool(self.approvers),
                approvals_needed=1 if self.approvers else 0,
                approvers=[
                    Approver(user_id=f"uid-{a}", username=a, email=f"{a}@example.com")
                    for a in self.approvers
                ],
                approval_deadline=self.start,
            ),
        )

    def status(
        self,
        minutes: float,
        to: RequestStatus,
        frm: RequestStatus | None,
        reason: str | None = None,
    ) -> RequestStatusChangedV1:
        return RequestStatusChangedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestStatusChangedData(
                request_id=self.request_id, from_status=frm, to_status=to, reason=reason
            ),
        )

    def approval_recorded(self, minutes: float, by: str, comment: str) -> RequestApprovalRecordedV1:
        return RequestApprovalRecordedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestApprovalRecordedData(
                request_id=self.request_id,
                approver=actor(by),
                comment=comment,
                approvals_so_far=1,
                approvals_needed=1,
            ),
        )

    def approved(self, minutes: float, by: str) -> RequestApprovedV1:
        return RequestApprovedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestApprovedData(
                request_id=self.request_id,
                approved_by=[actor(by)],
                principal_id=f"uid-{self.requester}",
                account_id=self.account_id,
                permission_set_arn=PS_ARN,
                start=self.start,
                end=self.end,
            ),
        )

    def rejected(self, minutes: float, by: str, comment: str) -> RequestRejectedV1:
        return RequestRejectedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestRejectedData(request_id=self.request_id, by=actor(by), comment=comment),
        )

    def cancelled(self, minutes: float) -> RequestCancelledV1:
        return RequestCancelledV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestCancelledData(
                request_id=self.request_id, by=actor(self.requester), comment="not needed"
            ),
        )

    def scheduled(self, minutes: float) -> GrantScheduledV1:
        return GrantScheduledV1(
            subject=self.subject,
            time=self.at(minutes),
            data=GrantScheduledData(request_id=self.request_id, start=self.start, end=self.end),
        )

    def granted(self, minutes: float) -> AccessGrantedV1:
        return AccessGrantedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=AccessGrantedData(
                request_id=self.request_id,
                confirmed_at=self.at(minutes),
                aws_request_id="aws-req-1",
                principal_id=f"uid-{self.requester}",
                account_id=self.account_id,
                permission_set_arn=PS_ARN,
                end=self.end,
                assignment_action="created",
            ),
        )

    def grant_failed(self, minutes: float) -> GrantFailedV1:
        return GrantFailedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=GrantFailedData(
                request_id=self.request_id,
                error_code="AccessDeniedException",
                error_message="not allowed",
                retryable=False,
                attempts=3,
            ),
        )

    def revoke_requested(self, minutes: float, by: str, comment: str) -> RequestRevokeRequestedV1:
        return RequestRevokeRequestedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=RequestRevokeRequestedData(
                request_id=self.request_id,
                by=actor(by),
                role="approver",
                comment=comment,
                principal_id=f"uid-{self.requester}",
                account_id=self.account_id,
                permission_set_arn=PS_ARN,
            ),
        )

    def ended(
        self, minutes: float, reason: str = "expired", by: str | None = None
    ) -> AccessEndedV1:
        return AccessEndedV1(
            subject=self.subject,
            time=self.at(minutes),
            data=AccessEndedData(
                request_id=self.request_id,
                reason="revoked" if reason == "revoked" else "expired",
                assignment_action="removed",
                ended_at=self.at(minutes),
                principal_id=f"uid-{self.requester}",
                account_id=self.account_id,
                permission_set_arn=PS_ARN,
                revoked_by=actor(by) if by else None,
            ),
        )

    def happy_path_revoked(self) -> list[Event]:
        """Submitted, approved by the first approver, granted, revoked by that approver."""
        approver = self.approvers[0]
        return [
            self.submitted(0),
            self.status(0, RequestStatus.PENDING, None),
            self.approval_recorded(5, approver, "ok for the incident"),
            self.approved(5, approver),
            self.status(5, RequestStatus.APPROVED, RequestStatus.PENDING),
            self.scheduled(6),
            self.status(6, RequestStatus.SCHEDULED, RequestStatus.APPROVED),
            self.granted(30),
            self.status(30, RequestStatus.IN_PROGRESS, RequestStatus.SCHEDULED),
            self.revoke_requested(50, approver, "done early"),
            self.ended(51, "revoked", approver),
            self.status(51, RequestStatus.REVOKED, RequestStatus.IN_PROGRESS),
        ]
