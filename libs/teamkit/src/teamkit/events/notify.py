"""Events of the notify service, on `notify.events`.

The subject (Kafka key) is the subject of the event that caused the notification (the request
id), so a request's notifications stay in order with each other. Released classes are never
edited: add an optional field, or declare a `...V2` beside the V1.
"""

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from teamkit.events.common import NotificationChannel
from teamkit.events.envelope import Event, EventData
from teamkit.events.topics import Topic

_SOURCE = "notify"
_SOURCE_DESCRIPTION = "The emitting service."
_SUBJECT_DESCRIPTION = "The subject of the source event (the request id); the Kafka key."


class NotificationDeliveredData(EventData):
    """One message delivered for one (event, channel, recipient)."""

    source_event_id: UUID = Field(description="`id` of the event the message is about.")
    source_event_type: str = Field(description="`type` of that event, e.g. `request.approved`.")
    channel: NotificationChannel
    recipient: str = Field(
        description="Email address, SNS topic ARN, Slack user or channel id, or webhook id."
    )
    delivered_at: AwareDatetime


class NotificationDeliveredV1(Event):
    """A notification reached its channel (accepted by SES, SNS, Slack or the webhook)."""

    topic: ClassVar[str] = Topic.NOTIFY
    type: Literal["notification.delivered"] = "notification.delivered"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: NotificationDeliveredData


class NotificationFailedData(EventData):
    """One message given up on after retries; it went to the dead-letter topic."""

    source_event_id: UUID = Field(description="`id` of the event the message is about.")
    source_event_type: str = Field(description="`type` of that event, e.g. `request.approved`.")
    channel: NotificationChannel
    recipient: str = Field(
        description="Email address, SNS topic ARN, Slack user or channel id, or webhook id."
    )
    failed_at: AwareDatetime = Field(description="When the last attempt failed.")
    error: str = Field(description="The last error, without secrets.")
    attempts: int = Field(ge=1)


class NotificationFailedV1(Event):
    """A notification could not be delivered after bounded retries."""

    topic: ClassVar[str] = Topic.NOTIFY
    type: Literal["notification.failed"] = "notification.failed"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_SUBJECT_DESCRIPTION)
    data: NotificationFailedData
