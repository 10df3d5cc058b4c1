"""API request and response models of the notify service (the OpenAPI contract)."""

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints, field_validator

from notify_service.routing import MACHINE_EVENT_TYPES

T = TypeVar("T")

DeliveryChannel = Literal["email", "sns", "slack", "webhook"]
DeliveryStatus = Literal["pending", "sending", "sent", "failed", "skipped"]
WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=2000, allowed_schemes=["http", "https"])
]


class Page(BaseModel, Generic[T]):
    """One keyset page; pass `next_cursor` back as `cursor` for the next one (null: no more)."""

    items: list[T]
    next_cursor: str | None


class DeliveryFilters(BaseModel):
    """Filters of `GET /v1/deliveries`."""

    request_id: UUID | None = None
    channel: DeliveryChannel | None = None
    status: DeliveryStatus | None = None
    event_id: UUID | None = None


class DeliveryOut(BaseModel):
    """One message to one recipient on one channel, and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: UUID = Field(description="The event the message is about.")
    event_type: str
    request_id: UUID | None
    channel: DeliveryChannel
    recipient: str = Field(
        description="Email address, SNS topic ARN, Slack audit channel or the person's email "
        "(DM), or webhook id."
    )
    audience: str = Field(
        description="`requester`, `approver`, `ops`, `audit` (Slack channel) or `machine`."
    )
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = Field(description="Why the last attempt failed (no secrets).")
    provider_ref: str | None = Field(
        description="SES/SNS message id, Slack message ts, or the webhook's HTTP status."
    )
    created_at: datetime
    sent_at: datetime | None


def _check_event_types(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(MACHINE_EVENT_TYPES))
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; choose from "
            f"{', '.join(MACHINE_EVENT_TYPES)}"
        )
    return value


class WebhookCreate(BaseModel):
    """A new webhook subscription."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl = Field(description="Where events are POSTed (http or https).")
    event_types: list[str] = Field(
        min_length=1,
        max_length=len(MACHINE_EVENT_TYPES),
        description="Event types to deliver: " + ", ".join(MACHINE_EVENT_TYPES) + ".",
    )
    description: str | None = Field(default=None, max_length=200)
    enabled: bool = True

    _event_types = field_validator("event_types")(_check_event_types)


class WebhookUpdate(BaseModel):
    """Changes to a webhook subscription; omitted fields stay. The secret never changes."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=len(MACHINE_EVENT_TYPES)
    )
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_event_types(value)


class WebhookOut(BaseModel):
    """A webhook subscription as the API shows it: never with its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    """The created subscription with its signing secret: shown this once, store it now."""

    secret: str = Field(
        description="HMAC-SHA256 signing secret. Shown only in this answer; it cannot be read "
        "again. Verify `X-Team-Signature` with it (see docs/notify.md)."
    )
