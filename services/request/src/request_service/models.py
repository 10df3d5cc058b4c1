"""Tables of the request service: the requests and the approvers' decisions.

A private declarative base (with the shared naming convention) keeps these tables out of any
metadata other services register in the same process. API payloads and events never reuse them.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from teamkit.db import new_metadata
from teamkit.events.common import RequestStatus

STATUS_VALUES = ", ".join(f"'{status.value}'" for status in RequestStatus)


class Base(DeclarativeBase):
    """Declarative base of the request service's tables."""

    metadata = new_metadata()


class AccessRequest(Base):
    """One request for one permission set on one account, with its policy decision snapshot."""

    __tablename__ = "access_request"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="status_known"),
        CheckConstraint("approvals_needed >= 0", name="approvals_needed_non_negative"),
        CheckConstraint("end_at > start_at", name="window_positive"),
        # The race-proof form of "one pending request per (user, account, permission set)".
        Index(
            "uq_access_request_one_pending",
            "requester_user_id",
            "account_id",
            "permission_set_arn",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        # An Idempotency-Key is scoped to whoever sent it.
        Index(
            "uq_access_request_idempotency",
            "idempotency_owner",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_access_request_requester_page", "requester_username", "created_at", "id"),
        Index("ix_access_request_client_page", "requested_by_client_id", "created_at", "id"),
        Index("ix_access_request_approvers", "approver_usernames", postgresql_using="gin"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    requester_user_id: Mapped[str] = mapped_column(String(256))
    requester_username: Mapped[str] = mapped_column(String(256))
    requester_email: Mapped[str | None] = mapped_column(String(320))
    requester_time_zone: Mapped[str | None] = mapped_column(String(64))
    # Set when an integration submitted on the requester's behalf.
    requested_by_client_id: Mapped[str | None] = mapped_column(String(256))
    account_id: Mapped[str] = mapped_column(String(12))
    account_name: Mapped[str] = mapped_column(String(256))
    account_ou_path: Mapped[list[str]] = mapped_column(JSONB)
    permission_set_arn: Mapped[str] = mapped_column(String(2048))
    permission_set_name: Mapped[str] = mapped_column(String(256))
    session_duration_minutes: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    justification: Mapped[str] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(256))
    approval_required: Mapped[bool] = mapped_column(Boolean)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    auto_approved: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Decision snapshot: approvers (Approver dicts), their user names (inbox index), policies,
    # limits and the settings in force at submit time.
    approvers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    approver_usernames: Mapped[list[str]] = mapped_column(ARRAY(String(256)))
    matched_policy_ids: Mapped[list[str]] = mapped_column(JSONB)
    max_duration_minutes: Mapped[int | None] = mapped_column(Integer)
    policy_settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    approval_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_reason: Mapped[str | None] = mapped_column(Text)
    revoke_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_requested_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    granted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_owner: Mapped[str | None] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    body_hash: Mapped[str | None] = mapped_column(String(64))


class RequestDecision(Base):
    """One approver's approval or rejection of a request (at most one per approver)."""

    __tablename__ = "request_decision"
    __table_args__ = (
        UniqueConstraint("request_id", "approver_username", name="uq_request_decision_approver"),
        # DESIGN §6: separation of duties checked again by the database.
        CheckConstraint("approver_username <> requester_username", name="not_self"),
        CheckConstraint("decision IN ('approved', 'rejected')", name="decision_known"),
        Index("ix_request_decision_approver", "approver_username", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[UUID] = mapped_column(ForeignKey("access_request.id", ondelete="CASCADE"))
    approver_username: Mapped[str] = mapped_column(String(256))
    approver_user_id: Mapped[str | None] = mapped_column(String(256))
    approver_email: Mapped[str | None] = mapped_column(String(320))
    # The integration that relayed this person's decision, if any.
    client_id: Mapped[str | None] = mapped_column(String(256))
    requester_username: Mapped[str] = mapped_column(String(256))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
