"""Event handlers of the notify service, keyed by (event type, version).

Handlers run in the consumer's transaction, which also claims the event id in the inbox. They
record pending deliveries (and the request snapshots later messages need); the delivery worker
sends them. `build_registry` binds the handlers to one process's settings and renderer.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import service
from notify_service.config import Settings
from notify_service.rendering import Renderer
from teamkit.events.envelope import Event
from teamkit.events.lifecycle import (
    AccessEndedV1,
    AccessGrantedV1,
    DriftRepairedV1,
    GrantFailedV1,
    GrantScheduledV1,
    RevokeFailedV1,
)
from teamkit.events.policy import SettingsUpdatedV1
from teamkit.events.request import (
    RequestApprovalRecordedV1,
    RequestApprovedV1,
    RequestCancelledV1,
    RequestExpiredV1,
    RequestRejectedV1,
    RequestRevokeRequestedV1,
    RequestSubmittedV1,
)
from teamkit.kafka import HandlerRegistry

#: Every event class that may cause a notification (see routing.MACHINE_EVENT_TYPES).
NOTIFYING_EVENTS: tuple[type[Event], ...] = (
    RequestSubmittedV1,
    RequestApprovalRecordedV1,
    RequestApprovedV1,
    RequestRejectedV1,
    RequestCancelledV1,
    RequestExpiredV1,
    RequestRevokeRequestedV1,
    GrantScheduledV1,
    AccessGrantedV1,
    AccessEndedV1,
    GrantFailedV1,
    RevokeFailedV1,
    DriftRepairedV1,
)


def build_registry(settings: Settings, renderer: Renderer) -> HandlerRegistry:
    """The handlers of one notify process."""
    registry = HandlerRegistry()

    async def on_notifying_event(session: AsyncSession, event: Event) -> None:
        await service.record_event(session, event=event, settings=settings, renderer=renderer)

    for cls in NOTIFYING_EVENTS:
        registry.on(cls)(on_notifying_event)

    @registry.on(SettingsUpdatedV1)
    async def on_settings_updated(session: AsyncSession, event: SettingsUpdatedV1) -> None:
        await service.apply_settings(session, event=event)

    return registry
