import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from uuid import UUID, uuid4

import pytest
from pydantic import TypeAdapter, ValidationError

from teamkit.events import (
    EVENT_ADAPTERS_BY_TOPIC,
    EVENT_CLASSES,
    EVENT_TYPES_BY_TOPIC,
    LIFECYCLE_EVENTS,
    NOTIFY_EVENTS,
    POLICY_EVENTS,
    REQUEST_EVENTS,
    AccessEndedData,
    AccessEndedV1,
    AccessGrantedData,
    AccessGrantedV1,
    AccountRef,
    Actor,
    ApprovalTimedOutData,
    ApprovalTimedOutV1,
    Approver,
    ApproverPolicyCreatedData,
    ApproverPolicyCreatedV1,
    ApproverPolicyDeletedData,
    ApproverPolicyDeletedV1,
    ApproverPolicyUpdatedData,
    ApproverPolicyUpdatedV1,
    DirectoryCounts,
    DirectoryRefreshedData,
    DirectoryRefreshedV1,
    DriftRepairedData,
    DriftRepairedV1,
    EligibilityPolicyCreatedData,
    EligibilityPolicyCreatedV1,
    EligibilityPolicyDeletedData,
    EligibilityPolicyDeletedV1,
    EligibilityPolicyUpdatedData,
    EligibilityPolicyUpdatedV1,
    Event,
    GrantFailedData,
    GrantFailedV1,
    GrantProvisioningData,
    GrantProvisioningV1,
    GrantScheduledData,
    GrantScheduledV1,
    LifecycleEvent,
    NotificationDeliveredData,
    NotificationDeliveredV1,
    NotificationFailedData,
    NotificationFailedV1,
    NotifyEvent,
    PermissionSetRef,
    PolicyEvent,
    RequestApprovalRecordedData,
    RequestApprovalRecordedV1,
    RequestApprovedData,
    RequestApprovedV1,
    RequestCancelledData,
    RequestCancelledV1,
    Requester,
    RequestEvent,
    RequestExpiredData,
    RequestExpiredV1,
    RequestRejectedData,
    RequestRejectedV1,
    RequestRevokeRequestedData,
    RequestRevokeRequestedV1,
    RequestStatus,
    RequestStatusChangedData,
    RequestStatusChangedV1,
    RequestSubmittedData,
    RequestSubmittedV1,
    RevokeFailedData,
    RevokeFailedV1,
    SettingsUpdatedData,
    SettingsUpdatedV1,
    Topic,
    UnknownEventType,
    event_class_tag,
    event_tag,
    events_document,
    parse_event,
    parse_event_json,
)

REQUEST_ID = UUID("0b7f3c1e-8d5a-4c1b-9f0e-2a6d4e8b1c3f")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=90)
PRINCIPAL = "906702a4e1-1c4f9a3e-0d2b-4a61-8e55-3f0c7b9d2e11"
ACCOUNT = "123456789012"
PS_ARN = "arn:aws:sso:::permissionSet/ssoins-7223d2c2f7b1b2a3/ps-0a1b2c3d4e5f6a7b"

ALICE = Actor(user_id="u-alice", username="alice", email="alice@example.com")
BOB = Actor(user_id="u-bob", username="bob", email="bob@example.com")
ADMIN = Actor(user_id="u-root", username="root", email=None)
TICKETING = Actor(username="ticketing", client_id="ticketing")


def _request_events() -> list[Event]:
    subject = str(REQUEST_ID)
    return [
        RequestSubmittedV1(
            subject=subject,
            data=RequestSubmittedData(
                request_id=REQUEST_ID,
                requester=Requester(
                    user_id=PRINCIPAL,
                    username="carol",
                    email="carol@example.com",
                    time_zone="Europe/Paris",
                ),
                requested_by=TICKETING,
                account=AccountRef(id=ACCOUNT, name="prod", ou_path=["r-ab12", "ou-ab12-prod"]),
                permission_set=PermissionSetRef(
                    arn=PS_ARN, name="AdministratorAccess", session_duration_minutes=60
                ),
                start=START,
                end=END,
                duration_minutes=90,
                justification="INC-42: database failover",
                ticket="INC-42",
                approval_required=True,
                approvals_needed=2,
                approvers=[
                    Approver(user_id="u-alice", username="alice", email="alice@example.com"),
                    Approver(user_id="u-bob", username="bob", email=None),
                ],
                matched_policy_ids=["elig-1", "appr-7"],
                approval_deadline=START,
            ),
        ),
        RequestApprovalRecordedV1(
            subject=subject,
            data=RequestApprovalRecordedData(
                request_id=REQUEST_ID,
                approver=ALICE,
                comment="ok",
                approvals_so_far=1,
                approvals_needed=2,
            ),
        ),
        RequestApprovedV1(
            subject=subject,
            correlation_id="corr-1",
            data=RequestApprovedData(
                request_id=REQUEST_ID,
                approved_by=[ALICE, BOB],
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
                start=START,
                end=END,
            ),
        ),
        RequestRejectedV1(
            subject=subject,
            data=RequestRejectedData(request_id=REQUEST_ID, by=BOB, comment="not on call"),
        ),
        RequestCancelledV1(
            subject=subject,
            data=RequestCancelledData(request_id=REQUEST_ID, by=ALICE),
        ),
        RequestExpiredV1(
            subject=subject,
            data=RequestExpiredData(request_id=REQUEST_ID, approval_deadline=START),
        ),
        RequestRevokeRequestedV1(
            subject=subject,
            data=RequestRevokeRequestedData(
                request_id=REQUEST_ID,
                by=ADMIN,
                role="admin",
                comment="incident closed",
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
            ),
        ),
        RequestStatusChangedV1(
            subject=subject,
            data=RequestStatusChangedData(
                request_id=REQUEST_ID,
                from_status=RequestStatus.SCHEDULED,
                to_status=RequestStatus.ERROR,
                reason="ValidationException: permission set not provisioned",
            ),
        ),
    ]


def _policy_events() -> list[Event]:
    before = {"id": "elig-1", "max_duration_minutes": 60, "accounts": ["123456789012"]}
    after = {**before, "max_duration_minutes": 120}
    counts = DirectoryCounts(
        accounts=12, ous=4, permission_sets=6, users=40, groups=8, memberships=95
    )
    return [
        EligibilityPolicyCreatedV1(
            subject="elig-1",
            data=EligibilityPolicyCreatedData(
                actor=ADMIN, policy_id="elig-1", before=None, after=before
            ),
        ),
        EligibilityPolicyUpdatedV1(
            subject="elig-1",
            data=EligibilityPolicyUpdatedData(
                actor=ADMIN, policy_id="elig-1", before=before, after=after
            ),
        ),
        EligibilityPolicyDeletedV1(
            subject="elig-1",
            data=EligibilityPolicyDeletedData(
                actor=ADMIN, policy_id="elig-1", before=after, after=None
            ),
        ),
        ApproverPolicyCreatedV1(
            subject="appr-7",
            data=ApproverPolicyCreatedData(
                actor=TICKETING, policy_id="appr-7", before=None, after={"quorum": 2}
            ),
        ),
        ApproverPolicyUpdatedV1(
            subject="appr-7",
            data=ApproverPolicyUpdatedData(
                actor=ADMIN, policy_id="appr-7", before={"quorum": 2}, after={"quorum": 1}
            ),
        ),
        ApproverPolicyDeletedV1(
            subject="appr-7",
            data=ApproverPolicyDeletedData(
                actor=ADMIN, policy_id="appr-7", before={"quorum": 1}, after=None
            ),
        ),
        SettingsUpdatedV1(
            data=SettingsUpdatedData(
                actor=ADMIN,
                before={"approval_timeout_minutes": 60},
                after={"approval_timeout_minutes": 30},
            ),
        ),
        DirectoryRefreshedV1(
            data=DirectoryRefreshedData(
                counts=counts, duration_ms=812, ok=False, error="Throttling", requested_by=ADMIN
            ),
        ),
    ]


def _lifecycle_events() -> list[Event]:
    subject = str(REQUEST_ID)
    return [
        GrantScheduledV1(
            subject=subject,
            data=GrantScheduledData(
                request_id=REQUEST_ID, start=START, end=END, start_timer_id="1", end_timer_id="2"
            ),
        ),
        GrantProvisioningV1(
            subject=subject,
            data=GrantProvisioningData(
                request_id=REQUEST_ID,
                aws_request_id="c3a1d6b0-aws",
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
            ),
        ),
        AccessGrantedV1(
            subject=subject,
            data=AccessGrantedData(
                request_id=REQUEST_ID,
                confirmed_at=START + timedelta(seconds=3),
                aws_request_id="c3a1d6b0-aws",
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
                end=END,
            ),
        ),
        GrantFailedV1(
            subject=subject,
            data=GrantFailedData(
                request_id=REQUEST_ID,
                error_code="ThrottlingException",
                error_message="Rate exceeded",
                retryable=True,
                attempts=5,
            ),
        ),
        AccessEndedV1(
            subject=subject,
            data=AccessEndedData(
                request_id=REQUEST_ID,
                reason="revoked",
                assignment_action="kept_for_other_grant",
                ended_at=END - timedelta(minutes=30),
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
                revoked_by=ADMIN,
            ),
        ),
        RevokeFailedV1(
            subject=subject,
            data=RevokeFailedData(
                request_id=REQUEST_ID,
                error_code="AccessDeniedException",
                error_message="not authorized",
                attempts=1,
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
            ),
        ),
        ApprovalTimedOutV1(
            subject=subject,
            data=ApprovalTimedOutData(request_id=REQUEST_ID, deadline=START),
        ),
        DriftRepairedV1(
            subject=f"{PRINCIPAL}:{ACCOUNT}:{PS_ARN}",
            data=DriftRepairedData(
                principal_id=PRINCIPAL,
                account_id=ACCOUNT,
                permission_set_arn=PS_ARN,
                action="removed",
                detail="assignment present after its grant ended",
            ),
        ),
    ]


def _notify_events() -> list[Event]:
    source_event_id = uuid4()
    return [
        NotificationDeliveredV1(
            subject=str(REQUEST_ID),
            data=NotificationDeliveredData(
                source_event_id=source_event_id,
                source_event_type="request.approved",
                channel="email",
                recipient="carol@example.com",
                delivered_at=START,
            ),
        ),
        NotificationFailedV1(
            subject=str(REQUEST_ID),
            data=NotificationFailedData(
                source_event_id=source_event_id,
                source_event_type="request.approved",
                channel="webhook",
                recipient="wh-1",
                failed_at=START,
                error="HTTP 503",
                attempts=6,
            ),
        ),
    ]


SAMPLES: list[Event] = _request_events() + _policy_events() + _lifecycle_events() + _notify_events()
SAMPLE_IDS = [event.tag for event in SAMPLES]
UNIONS: dict[str, Any] = {
    Topic.REQUEST: RequestEvent,
    Topic.POLICY: PolicyEvent,
    Topic.LIFECYCLE: LifecycleEvent,
    Topic.NOTIFY: NotifyEvent,
}


def _union_tags(union: Any) -> dict[str, type[Event]]:
    members, *_ = get_args(union)
    tags: dict[str, type[Event]] = {}
    for member in get_args(members):
        cls, *metadata = get_args(member)
        (tag,) = metadata
        tags[tag.tag] = cls
    return tags


def test_every_declared_class_has_a_sample() -> None:
    assert sorted(SAMPLE_IDS) == sorted(EVENT_CLASSES)
    assert len(SAMPLE_IDS) == len(set(SAMPLE_IDS))


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_round_trips_through_json_and_parse_event(event: Event) -> None:
    raw = event.model_dump_json()

    parsed = parse_event(json.loads(raw))

    assert type(parsed) is type(event)
    assert parsed == event
    assert parse_event_json(raw) == event
    assert parse_event(event.model_dump(mode="json")) == event


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_topic_union_picks_the_declared_class(event: Event) -> None:
    adapter = EVENT_ADAPTERS_BY_TOPIC[event.topic]

    parsed = adapter.validate_json(event.model_dump_json())

    assert type(parsed) is type(event)
    assert parsed == event
    assert event_tag(event.model_dump(mode="json")) == event.tag


def test_named_adapters_are_the_topic_adapters() -> None:
    assert EVENT_ADAPTERS_BY_TOPIC == {
        Topic.REQUEST: REQUEST_EVENTS,
        Topic.POLICY: POLICY_EVENTS,
        Topic.LIFECYCLE: LIFECYCLE_EVENTS,
        Topic.NOTIFY: NOTIFY_EVENTS,
    }


def test_request_union_is_typed_for_consumers() -> None:
    approved = next(e for e in SAMPLES if isinstance(e, RequestApprovedV1))

    parsed = REQUEST_EVENTS.validate_python(approved.model_dump(mode="json"))

    assert isinstance(parsed, RequestApprovedV1)
    assert parsed.data.permission_set_arn == PS_ARN
    assert parsed.data.start == START


@pytest.mark.parametrize("topic", list(Topic))
def test_union_tags_match_the_classes_of_the_topic(topic: Topic) -> None:
    tags = _union_tags(UNIONS[topic])

    assert tags == {event_class_tag(cls): cls for cls in EVENT_TYPES_BY_TOPIC[topic]}


def test_every_event_is_published_on_a_declared_topic() -> None:
    assert set(EVENT_TYPES_BY_TOPIC) == set(Topic)
    for topic, classes in EVENT_TYPES_BY_TOPIC.items():
        for cls in classes:
            assert isinstance(cls.topic, Topic)
            assert cls.topic == topic


def test_tags_are_unique_across_topics() -> None:
    all_tags = [
        event_class_tag(cls) for classes in EVENT_TYPES_BY_TOPIC.values() for cls in classes
    ]

    assert len(all_tags) == len(set(all_tags))
    assert set(all_tags) == set(EVENT_CLASSES)


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_source_defaults_to_the_producing_service(event: Event) -> None:
    assert (
        event.source
        == {
            Topic.REQUEST: "request",
            Topic.POLICY: "policy",
            Topic.LIFECYCLE: "lifecycle",
            Topic.NOTIFY: "notify",
        }[Topic(event.topic)]
    )


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_type_names_are_noun_dot_past_verb(event: Event) -> None:
    noun, _, verb = event.type.partition(".")

    assert noun
    assert verb
    assert event.type == event.type.lower()
    assert event.version == 1


@pytest.mark.parametrize(
    "tag_fields",
    [
        {"type": "request.teleported", "version": 1},
        {"type": "request.approved", "version": 99},
        {"version": 1},
    ],
    ids=["unknown-type", "unknown-version", "no-type"],
)
def test_unknown_type_or_version_raises_unknown_event_type(tag_fields: dict[str, Any]) -> None:
    payload = SAMPLES[2].model_dump(mode="json")
    payload.pop("type")
    payload.update(tag_fields)

    with pytest.raises(UnknownEventType) as excinfo:
        parse_event(payload)

    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.tag == event_tag(payload)


def test_topic_union_rejects_an_unknown_tag() -> None:
    payload = SAMPLES[0].model_dump(mode="json") | {"version": 2}

    with pytest.raises(ValidationError):
        REQUEST_EVENTS.validate_python(payload)


def test_missing_version_means_version_one() -> None:
    event = SAMPLES[0]
    payload = event.model_dump(mode="json")
    del payload["version"]

    assert parse_event(payload) == event


def test_bad_payload_raises_validation_error() -> None:
    payload = SAMPLES[2].model_dump(mode="json")
    payload["data"]["start"] = "2026-03-02T09:00:00"  # naive: times must carry an offset

    with pytest.raises(ValidationError):
        parse_event(payload)


def test_missing_data_field_raises_validation_error() -> None:
    payload = SAMPLES[2].model_dump(mode="json")
    del payload["data"]["permission_set_arn"]

    with pytest.raises(ValidationError):
        parse_event(payload)


def test_parse_event_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_event_json("[1, 2]")


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_fields_added_by_newer_producers_are_ignored(event: Event) -> None:
    payload = event.model_dump(mode="json")
    payload["added_envelope_field"] = "x"
    payload["data"]["added_payload_field"] = {"nested": [1, 2]}

    parsed = parse_event(payload)

    assert parsed == event
    assert "added_payload_field" not in parsed.data.model_dump()


def test_nested_models_ignore_added_fields() -> None:
    payload = SAMPLES[0].model_dump(mode="json")
    payload["data"]["requester"]["pronouns"] = "she/her"
    payload["data"]["approvers"][0]["phone"] = "+33"

    parsed = parse_event(payload)

    assert parsed == SAMPLES[0]


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_events_and_payloads_are_frozen(event: Event) -> None:
    with pytest.raises(ValidationError):
        event.subject = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.data.foo = 1  # type: ignore[attr-defined]


def test_request_status_values_are_the_api_values() -> None:
    assert [status.value for status in RequestStatus] == [
        "pending",
        "approved",
        "scheduled",
        "in_progress",
        "ended",
        "revoked",
        "rejected",
        "cancelled",
        "expired",
        "error",
    ]


def test_events_document_is_deterministic() -> None:
    first = json.dumps(events_document(), indent=2)
    second = json.dumps(events_document(), indent=2)

    assert first == second
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True)


def test_events_document_contains_every_tag_with_its_topic() -> None:
    document = events_document()

    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for tag, cls in EVENT_CLASSES.items():
        schema = document["$defs"][tag]
        assert schema["x-topic"] == cls.topic
        assert schema["x-tag"] == tag
        assert schema["properties"]["type"]["const"] == cls.model_fields["type"].default
        assert "type" in schema["required"]
    assert sorted(ref["$ref"] for ref in document["oneOf"]) == sorted(
        f"#/$defs/{tag}" for tag in EVENT_CLASSES
    )
    assert document["x-topics"] == {
        str(topic): sorted(event_class_tag(cls) for cls in classes)
        for topic, classes in EVENT_TYPES_BY_TOPIC.items()
    }


def test_events_document_refs_all_resolve() -> None:
    document = events_document()
    refs: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("$ref"), str):
                refs.add(value["$ref"])
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(document)

    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in document["$defs"]


def test_events_document_is_json_serialisable() -> None:
    document = events_document()

    assert json.loads(json.dumps(document)) == document


def test_documented_union_schema_builds() -> None:
    # The per-topic unions must also render as JSON Schema (e.g. for AsyncAPI tooling).
    for union in UNIONS.values():
        assert TypeAdapter(union).json_schema()["oneOf"]


def test_events_document_validates_every_sample() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = events_document()
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)

    for event in SAMPLES:
        validator.validate(event.model_dump(mode="json"))
    unknown = SAMPLES[0].model_dump(mode="json") | {"type": "request.teleported"}
    assert not validator.is_valid(unknown)
