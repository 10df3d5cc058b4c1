"""Small models and vocabularies shared by several event payloads.

These are part of released event schemas: change them only additively (a new optional field).
"""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RequestStatus(StrEnum):
    """Status of an access request (API values, DESIGN §2)."""

    PENDING = "pending"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    REVOKED = "revoked"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ERROR = "error"


RevokerRole = Literal["requester", "approver", "admin"]
"""The capacity in which someone ended a grant early."""

AccessEndReason = Literal["expired", "revoked"]
"""Why access ended: the window closed, or someone revoked it early."""

AssignmentEndAction = Literal[
    "removed", "kept_for_other_grant", "kept_standing_access", "not_granted"
]
"""What happened to the Identity Center account assignment when a grant ended."""

NotificationChannel = Literal["email", "sns", "slack", "webhook"]
"""A delivery channel of the notify service."""


class EventPart(BaseModel):
    """Base of the small models nested in payloads: frozen and tolerant of added fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Actor(EventPart):
    """Who did something: a signed-in user or an integration (OAuth2 client)."""

    user_id: str | None = Field(
        default=None, description="Identity Center user id; None for an integration client."
    )
    username: str = Field(
        description="User name as shown to people; for an integration, its client name or id."
    )
    email: str | None = None
    client_id: str | None = Field(
        default=None, description="OAuth2 client id when an integration acted; else None."
    )


class Requester(EventPart):
    """The Identity Center user who will receive the access."""

    user_id: str = Field(description="Identity Center user id: the assignment's principal id.")
    username: str
    email: str | None = Field(description="None when Identity Center holds no email for the user.")
    time_zone: str | None = Field(
        default=None, description="IANA time zone (e.g. `Europe/Paris`) for rendering times."
    )


class Approver(EventPart):
    """One person who may approve a request, resolved from the approver policies."""

    user_id: str = Field(description="Identity Center user id.")
    username: str
    email: str | None = Field(description="None when Identity Center holds no email for the user.")


class AccountRef(EventPart):
    """An AWS account as seen when the event was produced."""

    id: str = Field(description="12-digit AWS account id.")
    name: str
    ou_path: list[str] = Field(
        default_factory=list,
        description="Ids of the organizational units from the root down to the account's parent.",
    )


class PermissionSetRef(EventPart):
    """An Identity Center permission set as seen when the event was produced."""

    arn: str
    name: str
    session_duration_minutes: int | None = Field(
        default=None, ge=1, description="The permission set's own session duration, if set."
    )


class DirectoryCounts(EventPart):
    """How many items of each kind the directory cache holds after a refresh."""

    accounts: int = Field(ge=0)
    ous: int = Field(ge=0, description="Organizational units, the root included.")
    permission_sets: int = Field(ge=0)
    users: int = Field(ge=0)
    groups: int = Field(ge=0)
    memberships: int = Field(ge=0, description="Group memberships (user, group) pairs.")
