"""API models of the policy service (its OpenAPI contract).

The evaluation and approver-check models are shared with callers and live in
`teamkit.contracts.policy`; this module holds the rest. Sizes are bounded everywhere.
"""

import re
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from teamkit.contracts.policy import RequestSettings
from teamkit.events.common import AccountRef, DirectoryCounts, PermissionSetRef, Requester

T = TypeVar("T")

MAX_MINUTES = 60 * 24 * 366
MAX_LIST = 200
MAX_POLICIES_PER_DOCUMENT = 2000

AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
DirectoryId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PermissionSetArn = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


def _check_pattern(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _unique(values: list[str]) -> list[str]:
    # Order kept, duplicates dropped: a repeated id is harmless, not an error.
    return list(dict.fromkeys(values))


class _Input(BaseModel):
    # Unknown fields are refused so a typo (or a secret pasted into settings) never passes silently.
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


# -- policies -----------------------------------------------------------------------------------


class EligibilityPolicyIn(_Input):
    """Who may request which permission sets on which accounts, for how long, under what terms."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    user_ids: list[DirectoryId] = Field(
        default_factory=list, max_length=MAX_LIST, description="Identity Center user ids."
    )
    group_ids: list[DirectoryId] = Field(
        default_factory=list, max_length=MAX_LIST, description="Identity Center group ids."
    )
    account_ids: list[AccountId] = Field(default_factory=list, max_length=MAX_LIST)
    ou_ids: list[DirectoryId] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="OU (or root) ids; an OU covers every account below it at any depth.",
    )
    direct_children_only: bool = Field(
        default=False,
        description="When true, an OU covers only the accounts placed directly in it.",
    )
    permission_set_arns: list[PermissionSetArn] = Field(min_length=1, max_length=MAX_LIST)
    max_duration_minutes: int = Field(ge=1, le=MAX_MINUTES)
    approval_required: bool = True
    ticket_required: bool = False
    approvals_needed: int = Field(
        default=1, ge=1, le=20, description="Quorum of distinct approvers."
    )
    justification_pattern: str | None = Field(
        default=None,
        max_length=500,
        description="Regular expression the justification must contain.",
    )

    _dedupe = field_validator(
        "user_ids", "group_ids", "account_ids", "ou_ids", "permission_set_arns"
    )(_unique)
    _pattern = field_validator("justification_pattern")(_check_pattern)

    @model_validator(mode="after")
    def _who_and_where(self) -> "EligibilityPolicyIn":
        if not self.user_ids and not self.group_ids:
            raise ValueError("name at least one principal in user_ids or group_ids")
        if not self.account_ids and not self.ou_ids:
            raise ValueError("name at least one target in account_ids or ou_ids")
        return self


class ApproverPolicyIn(_Input):
    """Who approves requests for which accounts (inherited down the OU tree)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    account_ids: list[AccountId] = Field(default_factory=list, max_length=MAX_LIST)
    ou_ids: list[DirectoryId] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="OU (or root) ids; the policy covers every account below, at any depth.",
    )
    permission_set_arns: list[PermissionSetArn] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Restrict the policy to these permission sets; empty means all.",
    )
    approver_user_ids: list[DirectoryId] = Field(default_factory=list, max_length=MAX_LIST)
    approver_group_ids: list[DirectoryId] = Field(default_factory=list, max_length=MAX_LIST)
    approvals_needed: int = Field(default=1, ge=1, le=20)

    _dedupe = field_validator(
        "account_ids", "ou_ids", "permission_set_arns", "approver_user_ids", "approver_group_ids"
    )(_unique)

    @model_validator(mode="after")
    def _who_and_where(self) -> "ApproverPolicyIn":
        if not self.approver_user_ids and not self.approver_group_ids:
            raise ValueError(
                "name at least one approver in approver_user_ids or approver_group_ids"
            )
        if not self.account_ids and not self.ou_ids:
            raise ValueError("name at least one target in account_ids or ou_ids")
        return self


class _Stored(BaseModel):
    id: UUID
    version: int = Field(description="Increments on every change; send it back as If-Match.")
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str


class EligibilityPolicy(EligibilityPolicyIn, _Stored):
    """An eligibility policy as stored."""

    model_config = ConfigDict(extra="ignore")


class ApproverPolicy(ApproverPolicyIn, _Stored):
    """An approver policy as stored."""

    model_config = ConfigDict(extra="ignore")


class EligibilityPolicyUpdate(EligibilityPolicyIn):
    """A full replacement; `version` (or an If-Match header) must name the current version."""

    version: int | None = Field(default=None, ge=1)


class ApproverPolicyUpdate(ApproverPolicyIn):
    """A full replacement; `version` (or an If-Match header) must name the current version."""

    version: int | None = Field(default=None, ge=1)


class EligibilityPolicyExport(EligibilityPolicyIn):
    """An eligibility policy in the export document; a missing id creates a new policy."""

    id: UUID | None = None


class ApproverPolicyExport(ApproverPolicyIn):
    """An approver policy in the export document; a missing id creates a new policy."""

    id: UUID | None = None


class PolicyDocument(_Input):
    """The whole policy set as one JSON document (for GitOps)."""

    format_version: Literal[1] = 1
    eligibility_policies: list[EligibilityPolicyExport] = Field(
        default_factory=list, max_length=MAX_POLICIES_PER_DOCUMENT
    )
    approver_policies: list[ApproverPolicyExport] = Field(
        default_factory=list, max_length=MAX_POLICIES_PER_DOCUMENT
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> "PolicyDocument":
        lists: list[tuple[str, list[UUID | None]]] = [
            ("eligibility_policies", [p.id for p in self.eligibility_policies]),
            ("approver_policies", [p.id for p in self.approver_policies]),
        ]
        for kind, ids in lists:
            seen: set[UUID] = set()
            for index, policy_id in enumerate(ids):
                if policy_id is not None and policy_id in seen:
                    raise ValueError(f"{kind}[{index}].id {policy_id} appears twice")
                if policy_id is not None:
                    seen.add(policy_id)
        return self


class ImportResult(BaseModel):
    """What an import changed."""

    created: int
    updated: int
    deleted: int
    unchanged: int


# -- settings -----------------------------------------------------------------------------------


class PolicySettings(_Input):
    """Settings of the whole system, kept by the policy service. Never holds secrets."""

    approval_workflow_enabled: bool = Field(
        default=True, description="Master switch: when off, no request needs approval."
    )
    approval_waiver_allowed: bool = Field(
        default=True,
        description="Whether an eligibility policy may waive approval (approval_required=false).",
    )
    max_duration_minutes: int = Field(default=540, ge=1, le=MAX_MINUTES)
    default_duration_minutes: int = Field(default=60, ge=1, le=MAX_MINUTES)
    pending_expiry_minutes: int = Field(default=180, ge=1, le=MAX_MINUTES)
    comments_required: bool = Field(
        default=True, description="Approve, reject and revoke need a comment."
    )
    ticket_required: bool = True
    ticket_pattern: str | None = Field(default=None, max_length=500)
    admin_group: str = Field(default="TEAM-Admins", min_length=1, max_length=256)
    auditor_group: str = Field(default="TEAM-Auditors", min_length=1, max_length=256)
    email_enabled: bool = True
    sns_enabled: bool = False
    slack_enabled: bool = False
    webhooks_enabled: bool = False
    ses_sender: str | None = Field(default=None, max_length=320)
    sns_topic_arn: str | None = Field(default=None, max_length=2048)
    slack_audit_channel: str | None = Field(default=None, max_length=256)
    max_concurrent_grants: int | None = Field(default=None, ge=1, le=1000)
    allow_requests_on_behalf: bool = False

    _pattern = field_validator("ticket_pattern")(_check_pattern)

    @model_validator(mode="after")
    def _default_within_max(self) -> "PolicySettings":
        if self.default_duration_minutes > self.max_duration_minutes:
            raise ValueError(
                f"default_duration_minutes {self.default_duration_minutes} is above "
                f"max_duration_minutes {self.max_duration_minutes}"
            )
        return self

    def request_settings(self) -> RequestSettings:
        """The part a request snapshots with its decision."""
        return RequestSettings(
            approval_workflow_enabled=self.approval_workflow_enabled,
            comments_required=self.comments_required,
            ticket_required=self.ticket_required,
            pending_expiry_minutes=self.pending_expiry_minutes,
            max_concurrent_grants=self.max_concurrent_grants,
            allow_requests_on_behalf=self.allow_requests_on_behalf,
        )


class SettingsView(PolicySettings):
    """The settings with their version (send it back as If-Match or `version`)."""

    model_config = ConfigDict(extra="ignore")

    version: int
    updated_at: datetime | None = None
    updated_by: str | None = None


class SettingsUpdate(PolicySettings):
    """A full replacement of the settings."""

    version: int | None = Field(default=None, ge=1)


# -- directory ----------------------------------------------------------------------------------


class OuView(BaseModel):
    """An organizational unit (or the root, whose `parent_id` is null)."""

    id: str
    name: str
    parent_id: str | None
    path: list[str] = Field(description="Ids from the root down to this OU itself.")


class AccountView(BaseModel):
    """An account with its OU path."""

    id: str
    name: str
    email: str | None
    status: str | None
    parent_id: str
    ou_path: list[str] = Field(description="OU ids from the root down to the account's parent.")


class PermissionSetView(BaseModel):
    """A permission set."""

    arn: str
    name: str
    description: str | None
    session_duration_minutes: int | None


class UserView(BaseModel):
    """An Identity Center user."""

    id: str
    username: str
    email: str | None
    display_name: str | None


class GroupView(BaseModel):
    """An Identity Center group."""

    id: str
    name: str


class DirectoryStatus(BaseModel):
    """Where the directory cache stands."""

    ok: bool = Field(description="True when a good copy exists and the last refresh succeeded.")
    refreshed_at: datetime | None = Field(description="When the copy in use was read from AWS.")
    last_attempt_at: datetime | None
    last_error: str | None
    last_duration_ms: int | None
    instance_arn: str | None
    identity_store_id: str | None
    counts: DirectoryCounts
    refreshing: bool = Field(default=False, description="A refresh is running in this replica.")


class RefreshResult(BaseModel):
    """The outcome of one refresh."""

    ok: bool
    duration_ms: int
    counts: DirectoryCounts
    error: str | None = None


# -- entitlements -------------------------------------------------------------------------------


class EntitlementOption(BaseModel):
    """One permission set that may be requested, with the merged limits."""

    permission_set: PermissionSetRef
    max_duration_minutes: int
    approval_required: bool
    ticket_required: bool
    policy_ids: list[str]


class Entitlement(BaseModel):
    """Accounts offering the same permission sets on the same terms (one entry per such group)."""

    accounts: list[AccountRef]
    permission_sets: list[EntitlementOption]


class Entitlements(BaseModel):
    """Everything the caller may request, in one answer."""

    user: Requester
    items: list[Entitlement] = Field(
        description="Every account appears once, grouped with the accounts that offer the same "
        "permission sets on the same terms."
    )
    default_duration_minutes: int
    settings: RequestSettings
