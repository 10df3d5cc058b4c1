"""Lifecycle events produced to Kafka move requests; duplicates and late events change nothing."""

import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from teamkit.events.topics import topic_name
from tests.harness.policy_stub import PolicyStub
from tests.harness.wait import eventually
from tests.request.conftest import RequestService, submit_body
from tests.request.lifecycle_events import (
    deliver,
    ended,
    grant_failed,
    granted,
    revoke_failed,
    scheduled,
    status_of,
    timed_out,
)

NewPs = Callable[[], str]


async def submit(svc: RequestService, ps: str) -> dict[str, Any]:
    async with svc.client("alice") as alice:
        answer = await alice.post("/v1/requests", json=submit_body(ps))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def moves(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [
        (e["data"]["from_status"], e["data"]["to_status"])
        for e in events
        if e["type"] == "request.status_changed"
    ]


async def test_grant_path_to_ended(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approval_required = False
    request = await submit(svc, new_ps())
    await deliver(svc, scheduled(request), expect="scheduled")
    running = await deliver(svc, granted(request), expect="in_progress")
    assert running["granted_at"] is not None
    assert running["scheduled_at"] is not None
    done = await deliver(svc, ended(request), expect="ended")
    assert done["ended_at"] is not None
    assert moves(await svc.outbox(request["id"])) == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "scheduled"),
        ("scheduled", "in_progress"),
        ("in_progress", "ended"),
    ]


async def test_revoke_confirmed_by_lifecycle(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approval_required = False
    request = await submit(svc, new_ps())
    await deliver(svc, scheduled(request), expect="scheduled")
    await deliver(svc, granted(request), expect="in_progress")
    async with svc.client("bob") as bob:  # bob is an approver of the request
        assert (await bob.post(f"/v1/requests/{request['id']}/revoke")).status_code == 200
    revoked = await deliver(svc, ended(request, "revoked"), expect="revoked")
    assert revoked["status_reason"] == "revoked; assignment removed"
    events = await svc.outbox(request["id"])
    revoke = next(e for e in events if e["type"] == "request.revoke_requested")
    assert revoke["data"]["role"] == "approver"


async def test_failures_carry_the_aws_error_and_retry_reschedules(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approval_required = False
    request = await submit(svc, new_ps())
    await deliver(svc, scheduled(request), expect="scheduled")
    failed = await deliver(svc, grant_failed(request), expect="error")
    assert "AccessDeniedException" in failed["status_reason"]
    retried = await deliver(svc, scheduled(request), expect="scheduled")
    assert retried["status_reason"] is None
    await deliver(svc, granted(request), expect="in_progress")
    stuck = await deliver(svc, revoke_failed(request), expect="error")
    assert "ThrottlingException" in stuck["status_reason"]
    error_move = [
        e for e in await svc.outbox(request["id"]) if e["type"] == "request.status_changed"
    ][-1]
    assert error_move["data"]["to_status"] == "error"
    assert "ThrottlingException" in error_move["data"]["reason"]


async def test_timeout_expires_only_pending(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    pending = await submit(svc, new_ps())
    await deliver(svc, timed_out(pending), expect="expired")
    events = await svc.outbox(pending["id"])
    assert events[-1]["type"] == "request.expired"
    assert events[-1]["data"]["approval_deadline"] is not None
    async with svc.client("bob") as bob:
        late = await bob.post(f"/v1/requests/{pending['id']}/approve")
    assert late.status_code == 409
    assert late.json()["current_status"] == "expired"

    policy_stub.approval_required = False
    approved = await submit(svc, new_ps())
    await svc.publish(timed_out(approved))
    # Per-key order: once the later grant.scheduled is applied, the timeout was seen before it.
    await deliver(svc, scheduled(approved), expect="scheduled")
    assert "request.expired" not in await svc.types(approved["id"])


async def test_duplicates_and_late_events_change_nothing(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approval_required = False
    request = await submit(svc, new_ps())
    first = scheduled(request)
    await deliver(svc, first, expect="scheduled")
    await svc.publish(first)  # redelivery of the same event id: inbox no-op
    await svc.publish(scheduled(request))  # a second grant.scheduled (new id): not applicable
    await deliver(svc, granted(request), expect="in_progress")
    await svc.publish(scheduled(request))  # late: would move backwards
    await svc.publish(granted(request))  # duplicate fact
    await deliver(svc, ended(request), expect="ended")
    await svc.publish(grant_failed(request))  # after a terminal status
    await svc.publish(timed_out(request))
    marker = await submit(svc, new_ps())  # a later request proves the consumer moved on
    await deliver(svc, scheduled(marker), expect="scheduled")

    async def settled() -> None:
        assert (await status_of(svc, request["id"]))["status"] == "ended"

    await eventually(settled)
    assert moves(await svc.outbox(request["id"])) == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "scheduled"),
        ("scheduled", "in_progress"),
        ("in_progress", "ended"),
    ]


async def test_events_reach_kafka_through_the_relay(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approval_required = False
    request = await submit(svc, new_ps())
    topic = topic_name("request.events", svc.settings.kafka.KAFKA_TOPIC_PREFIX)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=svc.settings.kafka.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:

        async def arrived() -> None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(json.loads(r.value) for r in records if r.key == request["id"].encode())
            assert [e["type"] for e in seen] == await svc.types(request["id"])
            assert len(seen) == 4

        await eventually(arrived, timeout=30)
    finally:
        await consumer.stop()
    assert seen[-1]["type"] == "request.approved"
