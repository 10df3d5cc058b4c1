"""Tables of the policy service: the directory cache, the policies and the settings row.

A private declarative base (with the shared naming convention) keeps these tables out of any
metadata other services register in the same process.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from teamkit.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the policy service's tables."""

    metadata = new_metadata()


# -- directory cache (replaced as a whole by each good refresh) ---------------------------------


class DirectoryOu(Base):
    """An organizational unit, or the organization's root (`parent_id` None)."""

    __tablename__ = "directory_ou"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(String(128))
    # Ids from the root down to this OU itself (the root's path is [root id]).
    path: Mapped[list[str]] = mapped_column(JSONB)


class DirectoryAccount(Base):
    """An AWS account with its place in the OU tree."""

    __tablename__ = "directory_account"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[str] = mapped_column(String(128))
    # OU ids from the root down to the account's parent.
    ou_path: Mapped[list[str]] = mapped_column(JSONB)


class DirectoryPermissionSet(Base):
    """An Identity Center permission set."""

    __tablename__ = "directory_permission_set"

    arn: Mapped[str] = mapped_column(String(2048), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    session_duration_minutes: Mapped[int | None] = mapped_column(Integer)


class DirectoryUser(Base):
    """An Identity Center user."""

    __tablename__ = "directory_user"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))


class DirectoryGroup(Base):
    """An Identity Center group."""

    __tablename__ = "directory_group"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)


class DirectoryMembership(Base):
    """One user in one group."""

    __tablename__ = "directory_membership"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class DirectoryState(Base):
    """The one row describing the cache: where it came from and how the last refresh went."""

    __tablename__ = "directory_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_arn: Mapped[str | None] = mapped_column(String(2048))
    identity_store_id: Mapped[str | None] = mapped_column(String(64))
    root_id: Mapped[str | None] = mapped_column(String(128))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_ok: Mapped[bool | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)


# -- policies -----------------------------------------------------------------------------------


class EligibilityPolicyRow(Base):
    """Who may request which permission sets on which accounts, for how long."""

    __tablename__ = "eligibility_policy"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    user_ids: Mapped[list[str]] = mapped_column(JSONB)
    group_ids: Mapped[list[str]] = mapped_column(JSONB)
    account_ids: Mapped[list[str]] = mapped_column(JSONB)
    ou_ids: Mapped[list[str]] = mapped_column(JSONB)
    direct_children_only: Mapped[bool]
    permission_set_arns: Mapped[list[str]] = mapped_column(JSONB)
    max_duration_minutes: Mapped[int] = mapped_column(Integer)
    approval_required: Mapped[bool]
    ticket_required: Mapped[bool]
    approvals_needed: Mapped[int] = mapped_column(Integer)
    justification_pattern: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(256))
    updated_by: Mapped[str] = mapped_column(String(256))


class ApproverPolicyRow(Base):
    """Who approves requests for which accounts (and optionally which permission sets)."""

    __tablename__ = "approver_policy"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    account_ids: Mapped[list[str]] = mapped_column(JSONB)
    ou_ids: Mapped[list[str]] = mapped_column(JSONB)
    permission_set_arns: Mapped[list[str]] = mapped_column(JSONB)
    approver_user_ids: Mapped[list[str]] = mapped_column(JSONB)
    approver_group_ids: Mapped[list[str]] = mapped_column(JSONB)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(256))
    updated_by: Mapped[str] = mapped_column(String(256))


class PolicySettingsRow(Base):
    """The one settings row; `data` holds only what differs from the defaults' shape."""

    __tablename__ = "policy_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(256))
    demo_seeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- versions -----------------------------------------------------------------------------------


class DataVersion(Base):
    """A counter bumped (by triggers) in every transaction that changes what it names.

    `directory`: any directory table; `policy`: any policy or the settings. In-memory copies
    are keyed by these counters (`policy_service.cache`).
    """

    __tablename__ = "data_version"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
