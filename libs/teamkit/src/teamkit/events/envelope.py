"""The one event envelope: CloudEvents 1.0 attribute names plus a schema version."""

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from teamkit.clock import utc_now


class EventData(BaseModel):
    """Base of every event payload: frozen, tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(BaseModel):
    """Envelope shared by every event. Subclasses pin `type`, `version`, `data` and `topic`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]

    specversion: str = "1.0"
    id: UUID = Field(default_factory=uuid4, description="Unique event id; the inbox dedupe key.")
    type: str
    version: int
    source: str = Field(description="The emitting service, e.g. `request`.")
    subject: str = Field(description="Aggregate id (request id or policy id); the Kafka key.")
    time: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str | None = None
    data: EventData

    @property
    def tag(self) -> str:
        """`type@version`, the discriminator of the catalogue unions."""
        return f"{self.type}@{self.version}"


class EnvelopeHead(BaseModel):
    """The envelope without its payload: enough to route, dedupe or dead-letter an event."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    type: str
    version: int = 1
    source: str = ""
    subject: str = ""
    time: datetime | None = None
    correlation_id: str | None = None


def event_tag(value: Any) -> str:
    """Discriminator for the catalogue unions, from a model or a raw dict."""
    if isinstance(value, dict):
        return f"{value.get('type')}@{value.get('version', 1)}"
    return f"{getattr(value, 'type', None)}@{getattr(value, 'version', None)}"
