"""The catalogue: one discriminated union and `TypeAdapter` per topic, and a lookup by tag.

A tag is `type@version` (e.g. `request.approved@1`). To add a version, declare the new class
in its service module, add it to its topic's union and to `EVENT_TYPES_BY_TOPIC`; the tests
check that both agree.
"""

import json
from typing import Annotated, Any

from pydantic import Discriminator, Tag, TypeAdapter
from pydantic.json_schema import models_json_schema

from teamkit.events.envelope import Event, event_tag
from teamkit.events.lifecycle import (
    AccessEndedV1,
    AccessGrantedV1,
    ApprovalTimedOutV1,
    DriftRepairedV1,
    GrantFailedV1,
    GrantProvisioningV1,
    GrantScheduledV1,
    RevokeFailedV1,
)
from teamkit.events.notify import NotificationDeliveredV1, NotificationFailedV1
from teamkit.events.policy import (
    ApproverPolicyCreatedV1,
    ApproverPolicyDeletedV1,
    ApproverPolicyUpdatedV1,
    DirectoryRefreshedV1,
    EligibilityPolicyCreatedV1,
    EligibilityPolicyDeletedV1,
    EligibilityPolicyUpdatedV1,
    SettingsUpdatedV1,
)
from teamkit.events.request import (
    RequestApprovalRecordedV1,
    RequestApprovedV1,
    RequestCancelledV1,
    RequestExpiredV1,
    RequestRejectedV1,
    RequestRevokeRequestedV1,
    RequestStatusChangedV1,
    RequestSubmittedV1,
)
from teamkit.events.topics import Topic

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

RequestEvent = Annotated[
    Annotated[RequestSubmittedV1, Tag("request.submitted@1")]
    | Annotated[RequestApprovalRecordedV1, Tag("request.approval_recorded@1")]
    | Annotated[RequestApprovedV1, Tag("request.approved@1")]
    | Annotated[RequestRejectedV1, Tag("request.rejected@1")]
    | Annotated[RequestCancelledV1, Tag("request.cancelled@1")]
    | Annotated[RequestExpiredV1, Tag("request.expired@1")]
    | Annotated[RequestRevokeRequestedV1, Tag("request.revoke_requested@1")]
    | Annotated[RequestStatusChangedV1, Tag("request.status_changed@1")],
    Discriminator(event_tag),
]
"""Any event of `request.events`."""

PolicyEvent = Annotated[
    Annotated[EligibilityPolicyCreatedV1, Tag("eligibility_policy.created@1")]
    | Annotated[EligibilityPolicyUpdatedV1, Tag("eligibility_policy.updated@1")]
    | Annotated[EligibilityPolicyDeletedV1, Tag("eligibility_policy.deleted@1")]
    | Annotated[ApproverPolicyCreatedV1, Tag("approver_policy.created@1")]
    | Annotated[ApproverPolicyUpdatedV1, Tag("approver_policy.updated@1")]
    | Annotated[ApproverPolicyDeletedV1, Tag("approver_policy.deleted@1")]
    | Annotated[SettingsUpdatedV1, Tag("settings.updated@1")]
    | Annotated[DirectoryRefreshedV1, Tag("directory.refreshed@1")],
    Discriminator(event_tag),
]
"""Any event of `policy.events`."""

LifecycleEvent = Annotated[
    Annotated[GrantScheduledV1, Tag("grant.scheduled@1")]
    | Annotated[GrantProvisioningV1, Tag("grant.provisioning@1")]
    | Annotated[AccessGrantedV1, Tag("access.granted@1")]
    | Annotated[GrantFailedV1, Tag("grant.failed@1")]
    | Annotated[AccessEndedV1, Tag("access.ended@1")]
    | Annotated[RevokeFailedV1, Tag("revoke.failed@1")]
    | Annotated[ApprovalTimedOutV1, Tag("approval.timed_out@1")]
    | Annotated[DriftRepairedV1, Tag("drift.repaired@1")],
    Discriminator(event_tag),
]
"""Any event of `lifecycle.events`."""

NotifyEvent = Annotated[
    Annotated[NotificationDeliveredV1, Tag("notification.delivered@1")]
    | Annotated[NotificationFailedV1, Tag("notification.failed@1")],
    Discriminator(event_tag),
]
"""Any event of `notify.events`."""

REQUEST_EVENTS: TypeAdapter[RequestEvent] = TypeAdapter(RequestEvent)
POLICY_EVENTS: TypeAdapter[PolicyEvent] = TypeAdapter(PolicyEvent)
LIFECYCLE_EVENTS: TypeAdapter[LifecycleEvent] = TypeAdapter(LifecycleEvent)
NOTIFY_EVENTS: TypeAdapter[NotifyEvent] = TypeAdapter(NotifyEvent)

EVENT_TYPES_BY_TOPIC: dict[str, tuple[type[Event], ...]] = {
    Topic.REQUEST: (
        RequestSubmittedV1,
        RequestApprovalRecordedV1,
        RequestApprovedV1,
        RequestRejectedV1,
        RequestCancelledV1,
        RequestExpiredV1,
        RequestRevokeRequestedV1,
        RequestStatusChangedV1,
    ),
    Topic.POLICY: (
        EligibilityPolicyCreatedV1,
        EligibilityPolicyUpdatedV1,
        EligibilityPolicyDeletedV1,
        ApproverPolicyCreatedV1,
        ApproverPolicyUpdatedV1,
        ApproverPolicyDeletedV1,
        SettingsUpdatedV1,
        DirectoryRefreshedV1,
    ),
    Topic.LIFECYCLE: (
        GrantScheduledV1,
        GrantProvisioningV1,
        AccessGrantedV1,
        GrantFailedV1,
        AccessEndedV1,
        RevokeFailedV1,
        ApprovalTimedOutV1,
        DriftRepairedV1,
    ),
    Topic.NOTIFY: (NotificationDeliveredV1, NotificationFailedV1),
}
"""Every event class, by the topic it is published on, in catalogue order."""

EVENT_ADAPTERS_BY_TOPIC: dict[str, TypeAdapter[Any]] = {
    Topic.REQUEST: REQUEST_EVENTS,
    Topic.POLICY: POLICY_EVENTS,
    Topic.LIFECYCLE: LIFECYCLE_EVENTS,
    Topic.NOTIFY: NOTIFY_EVENTS,
}
"""The union adapter of each topic."""


# The name is part of the shared contract (consumers catch it), hence no `Error` suffix.
class UnknownEventType(ValueError):
    """No event class is declared for this `type@version`."""

    def __init__(self, tag: str) -> None:
        super().__init__(f"unknown event type@version {tag!r}; known: {', '.join(EVENT_CLASSES)}")
        self.tag = tag


def event_class_tag(cls: type[Event]) -> str:
    """Return the `type@version` tag an event class pins."""
    return f"{cls.model_fields['type'].default}@{cls.model_fields['version'].default}"


def _index(by_topic: dict[str, tuple[type[Event], ...]]) -> dict[str, type[Event]]:
    classes: dict[str, type[Event]] = {}
    for topic, members in by_topic.items():
        for cls in members:
            tag = event_class_tag(cls)
            if tag in classes:
                raise RuntimeError(f"event tag {tag!r} is declared twice")
            if cls.topic != topic:
                raise RuntimeError(f"{cls.__name__} is listed under {topic!r}, not {cls.topic!r}")
            classes[tag] = cls
    return classes


EVENT_CLASSES: dict[str, type[Event]] = _index(EVENT_TYPES_BY_TOPIC)
"""Every event class by its `type@version` tag."""


def parse_event(payload: dict[str, Any]) -> Event:
    """Validate a decoded event (envelope + data) into its declared class.

    Raises:
        UnknownEventType: no class is declared for the payload's `type@version`.
        pydantic.ValidationError: the payload does not match that class.
    """
    tag = event_tag(payload)
    cls = EVENT_CLASSES.get(tag)
    if cls is None:
        raise UnknownEventType(tag)
    return cls.model_validate(payload)


def parse_event_json(raw: str | bytes) -> Event:
    """Decode a JSON event (e.g. a Kafka record value) and validate it like `parse_event`.

    Raises:
        ValueError: the input is not a JSON object (`json.JSONDecodeError` is one).
        UnknownEventType: no class is declared for the payload's `type@version`.
        pydantic.ValidationError: the payload does not match that class.
    """
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("an event must be a JSON object")
    return parse_event(payload)


def events_document() -> dict[str, Any]:
    """Return the JSON Schema (2020-12) of every event, written to `openapi/events.json`.

    `$defs` holds one schema per event tag (with its `x-topic`) and the shared payload models;
    `oneOf` accepts any event; `x-topics` lists the tags of each topic. Keys are sorted, so
    the output is stable and diffable.
    """
    classes = sorted(EVENT_CLASSES.items())
    refs, top = models_json_schema(
        [(cls, "validation") for _, cls in classes], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    for tag, cls in classes:
        name = refs[(cls, "validation")]["$ref"].removeprefix("#/$defs/")
        schema = defs.pop(name)
        # `type` is the discriminator: a payload without it is never accepted.
        schema["required"] = sorted({*schema.get("required", ()), "type"})
        schema["x-topic"] = str(cls.topic)
        schema["x-tag"] = tag
        defs[tag] = schema
    document: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "TEAM events",
        "description": (
            "Every event of the TEAM services: a CloudEvents 1.0 style envelope plus a schema "
            "`version`; `$defs` is keyed by `type@version`."
        ),
        "oneOf": [{"$ref": f"#/$defs/{tag}"} for tag, _ in classes],
        "$defs": defs,
        "x-topics": {
            str(topic): sorted(event_class_tag(cls) for cls in members)
            for topic, members in EVENT_TYPES_BY_TOPIC.items()
        },
    }
    return _sorted(document)


def _sorted(value: dict[str, Any]) -> dict[str, Any]:
    """Return `value` with the keys of every nested dict in sorted order (lists keep theirs)."""
    return {key: _sorted_value(value[key]) for key in sorted(value)}


def _sorted_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _sorted(value)
    if isinstance(value, list):
        return [_sorted_value(item) for item in value]
    return value
