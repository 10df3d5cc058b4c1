"""The service consuming all four topics via Tansu: projection, duplicates, order, raw events."""

import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from teamkit.events import (
    NotificationDeliveredData,
    NotificationDeliveredV1,
    RequestStatus,
    Topic,
)
from teamkit.settings import KafkaSettings, OidcSettings
from tests.audit.conftest import audit_settings, bearer, publish, running_audit
from tests.audit.factories import RequestStory
from tests.harness.oidc import RunningIssuer
from tests.harness.wait import eventually

S = RequestStatus


async def test_projection_after_duplicates_and_out_of_order_events(
    audit_url: str,
    kafka_settings: KafkaSettings,
    oidc_settings: OidcSettings,
    oidc_issuer: RunningIssuer,
    producer: AIOKafkaProducer,
) -> None:
    revoked = RequestStory(requester="alice", approvers=("bob",), ticket="INC-42")
    story = revoked.happy_path_revoked()
    submitted, pending, recorded, approved, s_approved = story[:5]
    scheduled, s_scheduled, granted, s_progress, revoke, ended, s_revoked = story[5:]
    cancelled = RequestStory(requester="carol", approvers=("bob",))
    unknown_type: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "request.teleported",
        "version": 1,
        "source": "request",
        "subject": revoked.subject,
        "time": revoked.at(52).isoformat(),
        "data": {"where": "=cmd|' /C calc'!A0"},
    }
    unknown_version = {**approved.model_dump(mode="json"), "id": str(uuid.uuid4()), "version": 9}
    bad_payload = {**approved.model_dump(mode="json"), "id": str(uuid.uuid4()), "data": {}}
    delivered = NotificationDeliveredV1(
        subject=revoked.subject,
        data=NotificationDeliveredData(
            source_event_id=approved.id,
            source_event_type=approved.type,
            channel="email",
            recipient="alice@example.com",
            delivered_at=revoked.at(6),
        ),
    )

    async with running_audit(audit_settings(audit_url, kafka_settings, oidc_settings)) as client:
        # Lifecycle's topic runs ahead of the request topic: the end lands before the start.
        for event in (ended, granted, scheduled):
            await publish(producer, kafka_settings, event)
        for event in (submitted, pending, recorded, approved, approved, s_approved):
            await publish(producer, kafka_settings, event)  # `approved` twice: same event id
        # The same approval re-sent with a new id, and the statuses out of order.
        again = revoked.approval_recorded(5, "bob", "ok for the incident")
        for event in (s_revoked, revoke, again, s_progress, s_scheduled):
            await publish(producer, kafka_settings, event)
        # A cancelled request whose late scheduling must not regress it.
        for event in (
            cancelled.submitted(0),
            cancelled.approved(5, "bob"),
            cancelled.cancelled(6),
            cancelled.status(6, S.CANCELLED, S.APPROVED),
            cancelled.scheduled(7),
            cancelled.status(7, S.SCHEDULED, S.APPROVED),
        ):
            await publish(producer, kafka_settings, event)
        await publish(producer, kafka_settings, delivered)
        await publish(producer, kafka_settings, unknown_type, topic=Topic.REQUEST)
        await publish(producer, kafka_settings, unknown_version, topic=Topic.REQUEST)
        await publish(producer, kafka_settings, bad_payload, topic=Topic.REQUEST)

        auditor = bearer(oidc_issuer.token_for("erin"))
        distinct = 12 + 1 + 6 + 1 + 3  # duplicate id stored once

        async def all_recorded() -> dict[str, Any]:
            response = await client.get("/v1/audit/verify", headers=auditor)
            body: dict[str, Any] = response.json()
            if body["count"] != distinct:
                page = await client.get("/v1/audit/events", params={"limit": 100}, headers=auditor)
                seen = [
                    (e["type"], e["version"], e["flag"] is not None) for e in page.json()["items"]
                ]
                raise AssertionError(f"{body['count']} of {distinct} recorded: {seen}")
            return body

        verification = await eventually(all_recorded, timeout=60)
        assert verification["ok"] is True

        timeline = (
            await client.get(f"/v1/audit/requests/{revoked.request_id}", headers=auditor)
        ).json()
        request = timeline["request"]
        assert request["status"] == "revoked"
        assert request["requester_username"] == "alice"
        assert request["account_id"] == revoked.account_id
        assert request["ticket"] == "INC-42"
        assert request["decisions"] == [
            {
                "username": "bob",
                "email": "bob@example.com",
                "decision": "approved",
                "comment": "ok for the incident",
                "at": revoked.at(5).isoformat().replace("+00:00", "Z"),
            }
        ]
        assert request["revoked_by"] == "bob"
        assert request["revoke_comment"] == "done early"
        assert request["granted_at"] is not None
        assert request["ended_at"] is not None
        types = [e["type"] for e in timeline["events"]]
        assert types.count("request.approved") == 3  # once stored + unknown version + bad payload
        assert "request.teleported" in types

        other = (
            await client.get(f"/v1/audit/requests/{cancelled.request_id}", headers=auditor)
        ).json()
        assert other["request"]["status"] == "cancelled"
        assert other["request"]["scheduled_at"] is not None

        flagged = (
            await client.get("/v1/audit/events", params={"flagged": "true"}, headers=auditor)
        ).json()["items"]
        assert {(e["type"], e["version"]) for e in flagged} == {
            ("request.teleported", 1),
            ("request.approved", 9),
            ("request.approved", 1),
        }
        assert all(not e["known"] and e["flag"] for e in flagged)
        teleported = next(e for e in flagged if e["type"] == "request.teleported")
        assert teleported["data"] == unknown_type["data"]

        notify_rows = (
            await client.get("/v1/audit/events", params={"source": "notify"}, headers=auditor)
        ).json()["items"]
        assert [e["type"] for e in notify_rows] == ["notification.delivered"]
        assert notify_rows[0]["topic"] == kafka_settings.KAFKA_TOPIC_PREFIX + "notify.events"
