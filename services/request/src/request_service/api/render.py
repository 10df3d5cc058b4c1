"""Turn stored rows into the API's response models."""

from typing import Literal, cast
from uuid import UUID

from request_service.models import AccessRequest, RequestDecision
from request_service.pagination import encode_cursor
from request_service.schemas import (
    ApproverOut,
    DecisionOut,
    RequesterOut,
    RequestOut,
    RequestPage,
)
from teamkit.events.common import AccountRef, PermissionSetRef, RequestStatus


def request_out(row: AccessRequest, decisions: list[RequestDecision]) -> RequestOut:
    """The request as the API shows it, with its decisions and who may still decide."""
    status = RequestStatus(row.status)
    decided = {d.approver_username for d in decisions}
    pending = status is RequestStatus.PENDING
    return RequestOut(
        id=row.id,
        status=status,
        status_reason=row.status_reason,
        requester=RequesterOut(
            user_id=row.requester_user_id,
            username=row.requester_username,
            email=row.requester_email,
            time_zone=row.requester_time_zone,
        ),
        requested_by_client_id=row.requested_by_client_id,
        account=AccountRef(id=row.account_id, name=row.account_name, ou_path=row.account_ou_path),
        permission_set=PermissionSetRef(
            arn=row.permission_set_arn,
            name=row.permission_set_name,
            session_duration_minutes=row.session_duration_minutes,
        ),
        start=row.start_at,
        end=row.end_at,
        duration_minutes=row.duration_minutes,
        justification=row.justification,
        ticket=row.ticket,
        approval_required=row.approval_required,
        approvals_needed=row.approvals_needed,
        auto_approved=row.auto_approved,
        approvals=[
            DecisionOut(
                approver=d.approver_username,
                approver_user_id=d.approver_user_id,
                decision=cast(Literal["approved", "rejected"], d.decision),
                comment=d.comment,
                client_id=d.client_id,
                decided_at=d.decided_at,
            )
            for d in decisions
        ],
        approvers=[ApproverOut.model_validate(a) for a in row.approvers],
        pending_approvers=[
            name
            for name in row.approver_usernames
            if pending and name not in decided and name != row.requester_username
        ],
        matched_policy_ids=row.matched_policy_ids,
        approval_deadline=row.approval_deadline if pending else None,
        revoke_requested_at=row.revoke_requested_at,
        requested_at=row.created_at,
        approved_at=row.approved_at,
        scheduled_at=row.scheduled_at,
        granted_at=row.granted_at,
        ended_at=row.ended_at,
    )


def page_of(
    rows: list[AccessRequest], decisions: dict[UUID, list[RequestDecision]], limit: int
) -> RequestPage:
    """A page from `limit + 1` fetched rows: the extra row only says another page exists."""
    items = rows[:limit]
    next_cursor = encode_cursor((items[-1].created_at, items[-1].id)) if len(rows) > limit else None
    return RequestPage(
        items=[request_out(row, decisions[row.id]) for row in items], next_cursor=next_cursor
    )
