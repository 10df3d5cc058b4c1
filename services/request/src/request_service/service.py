"""Use cases of the request service: one function, one transaction (with its outbox rows).

Calls to the policy service happen outside any transaction (never hold a row lock across a
network call); the rows are then re-read under `SELECT ... FOR UPDATE` and the pure rules of
`state_machine` decide. Every event is staged with `teamkit.outbox.add` in the transaction that
makes the change, so either both commit or neither does.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from request_service import repository, state_machine
from request_service.config import Settings
from request_service.errors import (
    DuplicatePending,
    IdempotencyConflict,
    NotAnApprover,
    PolicyDenied,
    PolicyRejectedInput,
    PolicyUnavailable,
    RequestNotFound,
)
from request_service.models import AccessRequest, RequestDecision
from request_service.policy_client import PolicyClient
from request_service.schemas import CommentBody, DecisionBody, SubmitRequest
from request_service.state_machine import Fact, Snapshot
from teamkit import outbox
from teamkit.auth import Principal
from teamkit.clock import utc_now
from teamkit.contracts.policy import (
    ApproverCheckRequest,
    DenialCode,
    EvaluationDecision,
    EvaluationRequest,
    RequestSettings,
)
from teamkit.events.common import (
    AccountRef,
    Actor,
    Approver,
    PermissionSetRef,
    Requester,
    RevokerRole,
)
from teamkit.events.common import RequestStatus as S
from teamkit.events.envelope import Event
from teamkit.events.request import (
    RequestApprovalRecordedData,
    RequestApprovalRecordedV1,
    RequestApprovedData,
    RequestApprovedV1,
    RequestCancelledData,
    RequestCancelledV1,
    RequestExpiredData,
    RequestExpiredV1,
    RequestRejectedData,
    RequestRejectedV1,
    RequestRevokeRequestedData,
    RequestRevokeRequestedV1,
    RequestStatusChangedData,
    RequestStatusChangedV1,
    RequestSubmittedData,
    RequestSubmittedV1,
)
from teamkit.problems import Forbidden, Unprocessable

log = structlog.get_logger(__name__)

SCOPE_WRITE = "team.requests.write"
SCOPE_APPROVE = "team.requests.approve"

#: Denial codes a caller can fix by changing the body (422), with the field concerned. Every
#: other code (not eligible, no approver, too many grants) is a 403.
INPUT_DENIALS: dict[DenialCode, str] = {
    DenialCode.UNKNOWN_ACCOUNT: "account_id",
    DenialCode.UNKNOWN_PERMISSION_SET: "permission_set",
    DenialCode.DURATION_ABOVE_MAX: "duration_minutes",
    DenialCode.TICKET_MISSING: "ticket",
    DenialCode.TICKET_MALFORMED: "ticket",
    DenialCode.JUSTIFICATION_MALFORMED: "justification",
}


@dataclass(frozen=True)
class Submitted:
    """The outcome of a submission: the request, and whether this call created it."""

    request: AccessRequest
    created: bool


# -- helpers -------------------------------------------------------------------------------------


def _field_error(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"body.{field}: {message}",
        errors=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


def _snapshot(request: AccessRequest, decisions: list[RequestDecision]) -> Snapshot:
    return Snapshot(
        status=S(request.status),
        requester=request.requester_username,
        approvals_needed=request.approvals_needed,
        approvals=frozenset(d.approver_username for d in decisions if d.decision == "approved"),
        rejected_by=next(
            (d.approver_username for d in decisions if d.decision == "rejected"), None
        ),
        revoke_requested=request.revoke_requested_at is not None,
    )


def _person_actor(principal: Principal, *, user_id: str | None = None) -> Actor:
    if principal.username is None:
        return Actor(
            username=principal.client_id or principal.subject, client_id=principal.client_id
        )
    return Actor(user_id=user_id, username=principal.username, email=principal.email)


def _decision_actor(decision: RequestDecision) -> Actor:
    return Actor(
        user_id=decision.approver_user_id,
        username=decision.approver_username,
        email=decision.approver_email,
        client_id=decision.client_id,
    )


def _status_changed_event(
    request: AccessRequest, from_status: S | None, to_status: S, reason: str | None = None
) -> RequestStatusChangedV1:
    return RequestStatusChangedV1(
        subject=str(request.id),
        data=RequestStatusChangedData(
            request_id=request.id, from_status=from_status, to_status=to_status, reason=reason
        ),
    )


async def _status_changed(
    session: AsyncSession,
    request: AccessRequest,
    from_status: S | None,
    to_status: S,
    reason: str | None = None,
) -> None:
    await outbox.add(session, _status_changed_event(request, from_status, to_status, reason))


def _approved_event(
    request: AccessRequest, approvers: list[Actor], *, auto: bool
) -> RequestApprovedV1:
    return RequestApprovedV1(
        subject=str(request.id),
        data=RequestApprovedData(
            request_id=request.id,
            approved_by=approvers,
            auto=auto,
            principal_id=request.requester_user_id,
            account_id=request.account_id,
            permission_set_arn=request.permission_set_arn,
            start=request.start_at,
            end=request.end_at,
        ),
    )


async def _approved(
    session: AsyncSession, request: AccessRequest, approvers: list[Actor], *, auto: bool
) -> None:
    await outbox.add(session, _approved_event(request, approvers, auto=auto))


def can_see(
    request: AccessRequest, principal: Principal, decided_by: set[str] | None = None
) -> bool:
    """Requester, its approvers (snapshot or deciders), admins, auditors, the submitting client."""
    if principal.is_admin or principal.is_auditor:
        return True
    if principal.username is not None:
        return (
            principal.username == request.requester_username
            or principal.username in request.approver_usernames
            or principal.username in (decided_by or set())
        )
    return principal.client_id is not None and principal.client_id == request.requested_by_client_id


def _comment_required(request: AccessRequest) -> bool:
    return bool(request.policy_settings.get("comments_required", False))


def _body_hash(body: SubmitRequest) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotency_owner(principal: Principal) -> str:
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    return f"user:{principal.subject}"


def _denial(decision: EvaluationDecision, *, on_behalf: bool) -> Forbidden | Unprocessable:
    input_fields = dict(INPUT_DENIALS)
    if on_behalf:
        # An integration named the user; for a person, an unknown self is not fixable by them.
        input_fields[DenialCode.UNKNOWN_USER] = "requested_for"
    reasons = [
        {"code": r.code.value, "detail": r.detail, "field": input_fields.get(r.code)}
        for r in decision.reasons
    ] or [{"code": "denied", "detail": "the policy service gave no reason", "field": None}]
    detail = "The policy service denied this request: " + "; ".join(
        r["detail"] or "" for r in reasons
    )
    if any(r["field"] for r in reasons):
        return PolicyRejectedInput(detail, reasons=reasons)
    return PolicyDenied(detail, reasons=reasons)


# -- submit --------------------------------------------------------------------------------------


def _requester_of(body: SubmitRequest, principal: Principal) -> tuple[str, bool]:
    """The user name the request is for, and whether it is submitted on their behalf."""
    if principal.username is not None:
        if body.requested_for is not None and body.requested_for != principal.username:
            raise Forbidden(
                "people submit requests for themselves; submitting on behalf of another user is "
                "for integrations with scope team.requests.write. Remove `requested_for`."
            )
        return principal.username, False
    if not principal.has_scope(SCOPE_WRITE):
        raise Forbidden(
            f"an integration needs scope {SCOPE_WRITE} to submit requests",
            required_scopes=[SCOPE_WRITE],
        )
    if body.requested_for is None:
        raise _field_error("requested_for", "integrations must name the user the request is for")
    return body.requested_for, True


async def submit_request(
    session: AsyncSession,
    *,
    body: SubmitRequest,
    principal: Principal,
    idempotency_key: str | None,
    policy: PolicyClient,
    settings: Settings,
) -> Submitted:
    """Evaluate and store a new request (pending, or approved when no approval is needed).

    Raises:
        Unprocessable: the start is out of range, or the policy rejected values of the body.
        PolicyDenied: the policy service said no (403, every reason listed).
        PolicyUnavailable: the policy service could not be asked; nothing was stored.
        DuplicatePending: the same access is already pending for this user.
        IdempotencyConflict: the key was used before with another body.
    """
    requester, on_behalf = _requester_of(body, principal)
    now = utc_now()
    start = body.start or now
    if start < now - timedelta(seconds=settings.START_GRACE_SECONDS):
        raise _field_error(
            "start",
            f"{start.isoformat()} is in the past (more than {settings.START_GRACE_SECONDS} s "
            "ago); omit `start` to begin now",
        )
    if start > now + timedelta(days=settings.MAX_START_AHEAD_DAYS):
        raise _field_error("start", f"must be within {settings.MAX_START_AHEAD_DAYS} days from now")
    owner = _idempotency_owner(principal)
    body_hash = _body_hash(body)

    async with session.begin():
        # One query: the active grants, and the earlier request with this key (if any).
        active, earlier = await repository.active_grants_and_earlier(
            session,
            requester_username=requester,
            now=now,
            idempotency=(owner, idempotency_key) if idempotency_key is not None else None,
        )
        if earlier is not None:
            return _replay(earlier, body_hash)

    decision = await policy.evaluate(
        EvaluationRequest(
            user=requester,
            account_id=body.account_id,
            permission_set=body.permission_set,
            duration_minutes=body.duration_minutes,
            ticket=body.ticket,
            justification=body.justification,
            active_grants=active,
        )
    )
    if not decision.allowed:
        raise _denial(decision, on_behalf=on_behalf)
    if decision.requester is None or decision.account is None or decision.permission_set is None:
        raise PolicyUnavailable(
            "the policy service allowed the request but did not say who, which account or which "
            "permission set; nothing was stored, retry shortly or tell an operator"
        )
    if on_behalf and not decision.settings.allow_requests_on_behalf:
        raise Forbidden(
            "the settings do not allow requests on behalf of other users; the user must submit "
            "the request themselves (an admin can change allow_requests_on_behalf)"
        )
    auto = (
        not decision.approval_required
        or decision.approvals_needed == 0
        or not decision.settings.approval_workflow_enabled
    )
    approvers = [a for a in decision.approvers if a.user_id != decision.requester.user_id]
    needed = 0 if auto else decision.approvals_needed
    if len(approvers) < needed:
        raise PolicyDenied(
            f"this request needs {needed} approval(s) but only {len(approvers)} approver(s) "
            "other than you exist; ask an admin to adjust the approver policies",
            reasons=[
                {"code": DenialCode.NO_APPROVER.value, "detail": "too few approvers", "field": None}
            ],
        )

    row = _new_row(
        body=body,
        decision=decision,
        approvers=approvers,
        needed=needed,
        start=start,
        now=now,
        principal=principal,
        on_behalf=on_behalf,
        idempotency=(owner, idempotency_key, body_hash),
    )
    events: list[Event] = [
        _submitted_event(row, approvers, principal if on_behalf else None),
        _status_changed_event(row, None, S.PENDING),
    ]
    if auto:
        snapshot = state_machine.auto_approve(_snapshot(row, []))
        row.status = snapshot.status.value
        row.auto_approved = True
        row.approved_at = now
        events += [
            _status_changed_event(row, S.PENDING, S.APPROVED, "no approval required"),
            _approved_event(row, [], auto=True),
        ]
    try:
        async with session.begin():
            # The row goes in already in its final status, with its events, in one statement.
            # No duplicate check first: the partial unique index is the check (below).
            await repository.insert_request(session, row, events)
    except IntegrityError:
        # A unique index refused the row: the same access is already pending, or a concurrent
        # submission used the same Idempotency-Key. Answer as if this call had come second.
        async with session.begin():
            if idempotency_key is not None:
                earlier = await repository.find_by_idempotency_key(
                    session, owner=owner, key=idempotency_key
                )
                if earlier is not None:
                    return _replay(earlier, body_hash)
            existing = await repository.find_pending_duplicate(
                session,
                requester_user_id=row.requester_user_id,
                account_id=row.account_id,
                permission_set_arn=row.permission_set_arn,
            )
        if existing is not None:
            raise _duplicate(existing) from None
        raise
    log.info("request.submitted", request_id=str(row.id), status=row.status, auto=auto)
    return Submitted(row, True)


def _replay(earlier: AccessRequest, body_hash: str) -> Submitted:
    if earlier.body_hash != body_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different body; use a new key for a "
            "new request, or resend the original body",
            existing_request_id=str(earlier.id),
        )
    return Submitted(earlier, False)


def _duplicate(existing: AccessRequest) -> DuplicatePending:
    return DuplicatePending(
        f"an identical request ({existing.id}) is already pending for this user, account and "
        "permission set; wait for its decision or cancel it",
        existing_request_id=str(existing.id),
    )


def _new_row(
    *,
    body: SubmitRequest,
    decision: EvaluationDecision,
    approvers: list[Approver],
    needed: int,
    start: datetime,
    now: datetime,
    principal: Principal,
    on_behalf: bool,
    idempotency: tuple[str, str | None, str],
) -> AccessRequest:
    # submit_request checked these; the asserts narrow the types.
    assert decision.requester is not None  # noqa: S101
    assert decision.account is not None  # noqa: S101
    assert decision.permission_set is not None  # noqa: S101
    owner, key, body_hash = idempotency
    requester_settings: RequestSettings = decision.settings
    return AccessRequest(
        id=uuid.uuid4(),
        status=S.PENDING.value,
        requester_user_id=decision.requester.user_id,
        requester_username=decision.requester.username,
        requester_email=decision.requester.email,
        requester_time_zone=decision.requester.time_zone
        or (principal.claims.get("zoneinfo") if not on_behalf else None),
        requested_by_client_id=principal.client_id if on_behalf else None,
        account_id=decision.account.id,
        account_name=decision.account.name,
        account_ou_path=list(decision.account.ou_path),
        permission_set_arn=decision.permission_set.arn,
        permission_set_name=decision.permission_set.name,
        session_duration_minutes=decision.permission_set.session_duration_minutes,
        start_at=start,
        end_at=start + timedelta(minutes=body.duration_minutes),
        duration_minutes=body.duration_minutes,
        justification=body.justification,
        ticket=body.ticket,
        approval_required=needed > 0,
        approvals_needed=needed,
        auto_approved=False,
        approvers=[a.model_dump(mode="json") for a in approvers],
        approver_usernames=[a.username for a in approvers],
        matched_policy_ids=list(decision.matched_policy_ids),
        max_duration_minutes=decision.max_duration_minutes,
        policy_settings=requester_settings.model_dump(mode="json"),
        approval_deadline=(
            now + timedelta(minutes=requester_settings.pending_expiry_minutes) if needed else None
        ),
        created_at=now,
        updated_at=now,
        idempotency_owner=owner if key is not None else None,
        idempotency_key=key,
        body_hash=body_hash,
    )


def _submitted_event(
    row: AccessRequest, approvers: list[Approver], integration: Principal | None
) -> RequestSubmittedV1:
    return RequestSubmittedV1(
        subject=str(row.id),
        data=RequestSubmittedData(
            request_id=row.id,
            requester=Requester(
                user_id=row.requester_user_id,
                username=row.requester_username,
                email=row.requester_email,
                time_zone=row.requester_time_zone,
            ),
            requested_by=_person_actor(integration) if integration else None,
            account=AccountRef(
                id=row.account_id, name=row.account_name, ou_path=row.account_ou_path
            ),
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
            approvers=approvers,
            matched_policy_ids=row.matched_policy_ids,
            approval_deadline=row.approval_deadline,
        ),
    )


# -- reads ---------------------------------------------------------------------------------------


async def get_visible_request(
    session: AsyncSession, *, request_id: UUID, principal: Principal
) -> tuple[AccessRequest, list[RequestDecision]]:
    """The request and its decisions, if the caller may see it (404 otherwise)."""
    async with session.begin():
        row = await repository.get_request(session, request_id)
        if row is None:
            raise _not_found(request_id)
        decisions = (await repository.decisions_of(session, [row.id]))[row.id]
    if not can_see(row, principal, {d.approver_username for d in decisions}):
        raise _not_found(request_id)
    return row, decisions


def _not_found(request_id: UUID) -> RequestNotFound:
    return RequestNotFound(
        f"no request {request_id} that you can see; check the id (you see your own requests, "
        "those you approve, or all as an admin or auditor)"
    )


# -- decisions -----------------------------------------------------------------------------------


def _decider_of(principal: Principal, body: DecisionBody) -> str:
    if principal.username is not None:
        if body.on_behalf_of is not None and body.on_behalf_of != principal.username:
            raise Forbidden(
                "people decide for themselves; `on_behalf_of` is for integrations with scope "
                f"{SCOPE_APPROVE}. Remove it."
            )
        return principal.username
    if not principal.has_scope(SCOPE_APPROVE):
        raise Forbidden(
            f"an integration needs scope {SCOPE_APPROVE} to relay decisions",
            required_scopes=[SCOPE_APPROVE],
        )
    if body.on_behalf_of is None:
        raise _field_error(
            "on_behalf_of",
            "integrations must name the approver whose decision they relay; the decision is "
            "checked as that person's",
        )
    return body.on_behalf_of


async def decide_request(
    session: AsyncSession,
    *,
    request_id: UUID,
    principal: Principal,
    body: DecisionBody,
    approve: bool,
    policy: PolicyClient,
) -> tuple[AccessRequest, list[RequestDecision]]:
    """Approve or reject a pending request, after a live approver check with the policy service.

    Raises:
        SelfApproval: the decider is the requester (whatever their roles).
        NotAnApprover: the live check says the decider may not decide this request.
        InvalidTransition: the request is no longer pending (409, `current_status`).
        AlreadyDecided: the decider approved before.
    """
    decider = _decider_of(principal, body)
    async with session.begin():
        row = await repository.get_request(session, request_id)
        if row is None:
            raise _not_found(request_id)
        decisions = (await repository.decisions_of(session, [row.id]))[row.id]
    visible = can_see(row, principal, {d.approver_username for d in decisions})
    # Separation of duties first: no policy call can make a self-decision acceptable.
    action = "approve" if approve else "reject"
    state_machine.check_not_self(_snapshot(row, decisions), decider, action=action)

    check = await policy.check_approver(
        ApproverCheckRequest(
            approver=decider,
            requester=row.requester_user_id,
            account_id=row.account_id,
            permission_set_arn=row.permission_set_arn,
        )
    )
    state_machine.check_not_self(
        _snapshot(row, decisions),
        decider,
        action=action,
        same_user=check.approver is not None and check.approver.user_id == row.requester_user_id,
    )
    if not check.allowed and not visible:
        raise _not_found(request_id)
    # Only after the caller is known to see the request: a 422 must not confirm that it exists.
    if _comment_required(row) and not (body.comment and body.comment.strip()):
        raise _field_error("comment", "the settings require a comment with every decision")

    now = utc_now()
    async with session.begin():
        locked = await repository.lock_request(session, request_id)
        if locked is None:
            raise _not_found(request_id)
        row = locked
        decisions = (await repository.decisions_of(session, [row.id]))[row.id]
        before = _snapshot(row, decisions)
        try:
            after = (
                state_machine.approve(before, decider, eligible=check.allowed)
                if approve
                else state_machine.reject(before, decider, eligible=check.allowed)
            )
        except NotAnApprover as exc:
            raise NotAnApprover(f"{exc.detail}. The policy service says: {check.detail}") from None
        decision = RequestDecision(
            request_id=row.id,
            approver_username=decider,
            approver_user_id=check.approver.user_id if check.approver else None,
            approver_email=check.approver.email if check.approver else None,
            client_id=principal.client_id,
            requester_username=row.requester_username,
            decision="approved" if approve else "rejected",
            comment=body.comment,
            decided_at=now,
        )
        await repository.add_decision(session, decision)
        decisions.append(decision)
        actor = _decision_actor(decision)
        row.updated_at = now
        if approve:
            await outbox.add(
                session,
                RequestApprovalRecordedV1(
                    subject=str(row.id),
                    data=RequestApprovalRecordedData(
                        request_id=row.id,
                        approver=actor,
                        comment=body.comment,
                        approvals_so_far=len(after.approvals),
                        approvals_needed=max(row.approvals_needed, 1),
                    ),
                ),
            )
        if after.status != before.status:
            row.status = after.status.value
            await _status_changed(session, row, before.status, after.status)
            if after.status is S.APPROVED:
                row.approved_at = now
                await _approved(
                    session,
                    row,
                    [_decision_actor(d) for d in decisions if d.decision == "approved"],
                    auto=False,
                )
            else:
                await outbox.add(
                    session,
                    RequestRejectedV1(
                        subject=str(row.id),
                        data=RequestRejectedData(
                            request_id=row.id, by=actor, comment=body.comment or ""
                        ),
                    ),
                )
    log.info(
        "request.decided",
        request_id=str(row.id),
        approver=decider,
        approve=approve,
        status=row.status,
    )
    return row, decisions


# -- cancel and revoke ---------------------------------------------------------------------------


async def cancel_request(
    session: AsyncSession, *, request_id: UUID, principal: Principal, body: CommentBody
) -> tuple[AccessRequest, list[RequestDecision]]:
    """Withdraw a pending or scheduled request (requester, admin, or the submitting client)."""
    now = utc_now()
    async with session.begin():
        row = await repository.lock_request(session, request_id)
        if row is None:
            raise _not_found(request_id)
        decisions = (await repository.decisions_of(session, [row.id]))[row.id]
        if not can_see(row, principal, {d.approver_username for d in decisions}):
            raise _not_found(request_id)
        is_requester = (
            principal.username is not None and principal.username == row.requester_username
        )
        is_submitter = (
            principal.client_id is not None
            and principal.client_id == row.requested_by_client_id
            and principal.has_scope(SCOPE_WRITE)
        )
        if not (is_requester or principal.is_admin or is_submitter):
            raise Forbidden(
                "only the requester (or an admin) can cancel a request; approvers reject it instead"
            )
        before = _snapshot(row, decisions)
        after = state_machine.cancel(before)
        row.status = after.status.value
        row.updated_at = now
        by = _person_actor(principal, user_id=row.requester_user_id if is_requester else None)
        await _status_changed(session, row, before.status, after.status)
        await outbox.add(
            session,
            RequestCancelledV1(
                subject=str(row.id),
                data=RequestCancelledData(request_id=row.id, by=by, comment=body.comment),
            ),
        )
    return row, decisions


async def revoke_request(
    session: AsyncSession, *, request_id: UUID, principal: Principal, body: CommentBody
) -> tuple[AccessRequest, list[RequestDecision]]:
    """Ask lifecycle to end a scheduled or running grant early (status stays until it confirms).

    Allowed to the requester, any approver of the request, and admins.
    """
    now = utc_now()
    async with session.begin():
        row = await repository.lock_request(session, request_id)
        if row is None:
            raise _not_found(request_id)
        decisions = (await repository.decisions_of(session, [row.id]))[row.id]
        deciders = {d.approver_username for d in decisions}
        if not can_see(row, principal, deciders):
            raise _not_found(request_id)
        role: RevokerRole
        if principal.username is not None and principal.username == row.requester_username:
            role = "requester"
        elif principal.username is not None and (
            principal.username in row.approver_usernames or principal.username in deciders
        ):
            role = "approver"
        elif principal.is_admin:
            role = "admin"
        else:
            raise Forbidden(
                "only the requester, an approver of this request or an admin can revoke it"
            )
        if _comment_required(row) and not (body.comment and body.comment.strip()):
            raise _field_error("comment", "the settings require a comment when revoking")
        state_machine.request_revoke(_snapshot(row, decisions))
        row.revoke_requested_at = now
        row.revoke_requested_by = principal.username
        row.updated_at = now
        await outbox.add(
            session,
            RequestRevokeRequestedV1(
                subject=str(row.id),
                data=RequestRevokeRequestedData(
                    request_id=row.id,
                    by=_person_actor(
                        principal, user_id=row.requester_user_id if role == "requester" else None
                    ),
                    role=role,
                    comment=body.comment,
                    principal_id=row.requester_user_id,
                    account_id=row.account_id,
                    permission_set_arn=row.permission_set_arn,
                ),
            ),
        )
    return row, decisions


# -- lifecycle facts (run inside the consumer's transaction) -------------------------------------


async def apply_lifecycle_fact(
    session: AsyncSession,
    *,
    request_id: UUID,
    fact: Fact,
    at: datetime,
    reason: str | None = None,
) -> bool:
    """Move the request as lifecycle reports; False when the fact no longer applies.

    Runs in the consumer's transaction (which also claims the event id in the inbox), so a
    redelivered event is never applied twice; a late or repeated fact of another id is ignored
    by the state machine.
    """
    row = await repository.lock_request(session, request_id)
    if row is None:
        log.warning("lifecycle.unknown_request", request_id=str(request_id), fact=fact.value)
        return False
    decisions = (await repository.decisions_of(session, [row.id]))[row.id]
    before = _snapshot(row, decisions)
    after = state_machine.apply_fact(before, fact)
    if after is None:
        log.info(
            "lifecycle.fact_ignored",
            request_id=str(request_id),
            fact=fact.value,
            status=before.status.value,
        )
        return False
    row.status = after.status.value
    row.updated_at = utc_now()
    if after.status is S.SCHEDULED:
        row.scheduled_at = at
        row.status_reason = None
    elif after.status is S.IN_PROGRESS:
        row.granted_at = at
    elif after.status in (S.ENDED, S.REVOKED):
        row.ended_at = at
        row.status_reason = reason
    elif after.status in (S.ERROR, S.EXPIRED):
        row.status_reason = reason
    await _status_changed(session, row, before.status, after.status, reason)
    if after.status is S.EXPIRED:
        await outbox.add(
            session,
            RequestExpiredV1(
                subject=str(row.id),
                data=RequestExpiredData(
                    request_id=row.id,
                    approval_deadline=row.approval_deadline,
                    approvals_so_far=len(before.approvals),
                ),
            ),
        )
    log.info(
        "request.status_changed",
        request_id=str(row.id),
        from_status=before.status.value,
        to_status=after.status.value,
    )
    return True
