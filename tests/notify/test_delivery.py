"""The notify service end to end: Kafka in, SES/SNS (moto), Slack and webhooks (recorder) out."""

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from teamkit.events.common import Actor
from teamkit.events.policy import SettingsUpdatedData, SettingsUpdatedV1
from tests.harness.http_recorder import HttpRecorder
from tests.harness.wait import eventually
from tests.notify import factories
from tests.notify.conftest import AUDIT_CHANNEL, Stack, StackFactory
from tests.teamkit.messaging_fixtures import read_topic

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notify.md"
INJECTION = "<script>alert(1)</script> <!channel> <https://evil.example|click here> & more"


def documented_verifier() -> Callable[..., bool]:
    """The verification snippet of docs/notify.md, executed as documented."""
    text = DOCS.read_text()
    match = re.search(r"<!-- verify-snippet -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/notify.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # noqa: S102 - our own documentation, run as a test
    verifier: Callable[..., bool] = namespace["verify_team_signature"]
    return verifier


async def create_webhook(stack: Stack, name: str, event_types: list[str]) -> dict[str, Any]:
    async with stack.admin() as client:
        answer = await client.post(
            "/v1/webhooks",
            json={"url": stack.recorder.webhook_url(name), "event_types": event_types},
        )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def delete_webhook(stack: Stack, webhook_id: str) -> None:
    async with stack.admin() as client:
        answer = await client.delete(f"/v1/webhooks/{webhook_id}")
    assert answer.status_code == 204, answer.text


def slack_posts(recorder: HttpRecorder, request_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in recorder.calls("/api/chat.postMessage", ok_only=True)
        if str(request_id) in r.body.decode()
    ]


class TestSubmittedEvent:
    async def test_every_channel_once_even_when_the_event_is_delivered_twice(
        self, shared: Stack
    ) -> None:
        hook = await create_webhook(shared, f"all-{uuid.uuid4().hex[:6]}", ["request.submitted"])
        event = factories.submitted(justification=INJECTION)
        data = event.data
        approver_email = data.approvers[0].email
        assert approver_email
        assert data.requester.email
        shared.recorder.add_slack_user(approver_email, "U0BOB")
        shared.recorder.add_slack_user(data.requester.email, "U0ALICE")

        await shared.producer.send(event)
        await shared.producer.send(event)  # a redelivery: same event id

        # email x2, slack x2 + audit channel, sns, webhook
        items = await shared.settled(data.request_id, expected=7)
        assert {i["status"] for i in items} == {"sent"}, items
        assert sorted((i["channel"], i["audience"]) for i in items) == [
            ("email", "approver"),
            ("email", "requester"),
            ("slack", "approver"),
            ("slack", "audit"),
            ("slack", "requester"),
            ("sns", "machine"),
            ("webhook", "machine"),
        ]

        # SES (moto): one mail per person, HTML with the injection escaped.
        approver_mail = await shared.moto.emails(approver_email)
        requester_mail = await shared.moto.emails(data.requester.email)
        assert len(approver_mail) == 1
        assert len(requester_mail) == 1
        mail = approver_mail[0]
        assert mail["source"] == shared.settings.SES_SENDER
        assert mail["subject"].startswith("Approval needed: alice requests ReadOnly")
        assert "<script>" not in mail["body"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail["body"]
        assert f"https://team.example.com/requests/{data.request_id}" in mail["body"]

        # SNS (moto): the event JSON with filterable attributes, once.
        published = await shared.moto.sns_messages(
            shared.settings.SNS_TOPIC_ARN or "", str(data.request_id)
        )
        assert len(published) == 1
        attributes = published[0][3]
        assert attributes["event_type"]["Value"] == "request.submitted"
        assert attributes["request_id"]["Value"] == str(data.request_id)
        assert f'"id":"{event.id}"' in published[0][1]

        # Slack: DMs to the looked-up users and the audit channel, mrkdwn-escaped.
        posts = slack_posts(shared.recorder, data.request_id)
        assert sorted(p["channel"] for p in posts) == sorted(["U0BOB", "U0ALICE", AUDIT_CHANNEL])
        dm = next(p for p in posts if p["channel"] == "U0BOB")
        section = dm["blocks"][1]["text"]["text"]
        assert "<!channel>" not in section
        assert "<https://evil" not in section
        assert "&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp; more" in section

        # Webhook: once, signed, verified with the documented snippet.
        calls = shared.recorder.calls(f"/hooks/{hook['url'].rsplit('/', 1)[1]}")
        assert len(calls) == 1
        call = calls[0]
        verify = documented_verifier()
        assert verify(
            hook["secret"],
            call.headers["x-team-timestamp"],
            call.headers["x-team-signature"],
            call.body,
        )
        assert not verify(
            "wrong-secret",
            call.headers["x-team-timestamp"],
            call.headers["x-team-signature"],
            call.body,
        )
        assert not verify(
            hook["secret"],
            call.headers["x-team-timestamp"],
            call.headers["x-team-signature"],
            call.body + b" ",
        )
        assert call.json()["event"]["id"] == str(event.id)
        assert call.json()["request"]["justification"] == INJECTION

        # Audit trail: one notification.delivered per delivery.
        messages = await read_topic(shared.settings.kafka, "notify.events", expect=7)
        delivered = [
            m
            for m in messages
            if m["type"] == "notification.delivered"
            and m["data"]["source_event_id"] == str(event.id)  # type: ignore[index]
        ]
        assert len(delivered) == 7
        await delete_webhook(shared, hook["id"])

    async def test_times_in_each_recipients_zone(self, shared: Stack) -> None:
        event = factories.submitted(time_zone="Asia/Tokyo")
        data = event.data
        await shared.producer.send(event)
        await shared.settled(data.request_id, expected=6)  # no webhook subscribed to this one
        assert data.requester.email
        assert data.approvers[0].email

        async def mails() -> tuple[dict[str, Any], dict[str, Any]]:
            mine = await shared.moto.emails(data.requester.email or "")
            theirs = await shared.moto.emails(data.approvers[0].email or "")
            assert mine
            assert theirs
            return mine[0], theirs[0]

        mine, theirs = await eventually(mails)
        assert "2026-12-10 18:00 JST (Asia/Tokyo)" in mine["body"]
        assert "Times are shown in Asia/Tokyo" in mine["body"]
        assert "2026-12-10 09:00 UTC" in theirs["body"]  # approvers' zone unknown: UTC, named


class TestRetries:
    async def test_slack_429_waits_for_retry_after_then_delivers(self, shared: Stack) -> None:
        event = factories.submitted(approvers=[])
        data = event.data
        shared.recorder.add_slack_user(data.requester.email or "", "U0SLOW")
        shared.recorder.fail_next("/api/chat.postMessage", 1, status=429, retry_after=1)
        await shared.producer.send(event)

        items = await shared.settled(data.request_id, expected=4)  # email, slack dm, audit, sns
        assert {i["status"] for i in items} == {"sent"}
        slack = [i for i in items if i["channel"] == "slack"]
        assert sorted(i["attempts"] for i in slack) == [1, 2]
        posts = [
            r
            for r in shared.recorder.calls("/api/chat.postMessage")
            if str(data.request_id) in r.body.decode()
        ]
        limited = next(r for r in posts if r.status == 429)
        # The same message, posted again once Slack's Retry-After (1 s) had passed.
        again = [
            r for r in posts if r.status == 200 and r.json()["channel"] == limited.json()["channel"]
        ]
        assert len(again) == 1
        assert again[0].at - limited.at >= 0.9

    async def test_webhook_500s_are_retried_until_delivered(self, shared: Stack) -> None:
        name = f"flaky-{uuid.uuid4().hex[:6]}"
        hook = await create_webhook(shared, name, ["request.approved"])
        shared.recorder.fail_next(f"/hooks/{name}", 2, status=500)
        submitted = factories.submitted(approvers=[])
        await shared.producer.send(submitted)
        await shared.producer.send(factories.approved(submitted))
        items = await shared.settled(submitted.data.request_id, expected=9)
        hook = next(i for i in items if i["channel"] == "webhook")
        assert hook["status"] == "sent"
        assert hook["attempts"] == 3
        assert [c.status for c in shared.recorder.calls(f"/hooks/{name}")] == [500, 500, 200]

    async def test_a_broken_channel_fails_alone_and_is_reported(self, shared: Stack) -> None:
        name = f"broken-{uuid.uuid4().hex[:6]}"
        hook = await create_webhook(shared, name, ["request.submitted"])
        shared.recorder.fail_next(f"/hooks/{name}", 1000, status=500)
        event = factories.submitted(approvers=[("carol", f"carol-{uuid.uuid4().hex[:6]}@x.io")])
        shared.recorder.add_slack_user(event.data.requester.email or "", "U0ALICE2")
        # carol has no Slack account: users_not_found is permanent, no retry.
        await shared.producer.send(event)

        items = await shared.settled(event.data.request_id, expected=7)
        await delete_webhook(shared, hook["id"])
        by_key = {(i["channel"], i["audience"]): i for i in items}
        webhook = by_key[("webhook", "machine")]
        assert webhook["status"] == "failed"
        assert webhook["attempts"] == shared.settings.MAX_ATTEMPTS
        assert webhook["last_error"] == "webhook: HTTP 500"
        carol = by_key[("slack", "approver")]
        assert carol["status"] == "failed"
        assert carol["attempts"] == 1
        assert "users_not_found" in carol["last_error"]
        others = [
            i for k, i in by_key.items() if k not in {("webhook", "machine"), ("slack", "approver")}
        ]
        assert {i["status"] for i in others} == {"sent"}

        messages = await read_topic(shared.settings.kafka, "notify.events", expect=1)
        failed = [
            m
            for m in messages
            if m["type"] == "notification.failed" and m["data"]["source_event_id"] == str(event.id)  # type: ignore[index]
        ]
        assert sorted(m["data"]["channel"] for m in failed) == ["slack", "webhook"]  # type: ignore[index]

        dead = await read_topic(shared.settings.kafka, "dead-letter.notify", expect=2)
        dead_here = [d for d in dead if d.get("event_id") == str(event.id)]
        assert sorted(d["channel"] for d in dead_here) == ["slack", "webhook"]  # type: ignore[type-var]

        failed_only = await shared.deliveries(
            request_id=str(event.data.request_id), status="failed"
        )
        assert len(failed_only) == 2


class TestLifecycleMessages:
    async def test_revocation_names_who_and_why_and_failures_reach_ops(self, shared: Stack) -> None:
        event = factories.submitted(approvers=[])
        email = event.data.requester.email or ""
        await shared.producer.send(event)
        await shared.producer.send(
            factories.revoke_requested(event, "Incident closed <b>early</b>")
        )
        # Lifecycle events come on another topic; in life they follow long after the request's.
        await shared.settled(event.data.request_id, expected=5)  # 4 for submitted, SNS for revoke
        await shared.producer.send(factories.access_ended(event, "revoked"))
        await shared.producer.send(factories.grant_failed(event))

        async def mails() -> list[dict[str, Any]]:
            found = await shared.moto.emails(email)
            assert len(found) == 3, [m["subject"] for m in found]
            return found

        found = await eventually(mails, timeout=30)
        revoked = next(m for m in found if m["subject"].startswith("Access revoked"))
        assert "revoked by dave (admin)" in revoked["body"]
        assert "Comment: Incident closed &lt;b&gt;early&lt;/b&gt;" in revoked["body"]
        ops = [
            i
            for i in await shared.deliveries(request_id=str(event.data.request_id))
            if i["audience"] == "ops"
        ]
        assert [(i["channel"], i["recipient"]) for i in ops] == [("email", "ops@example.com")]


class TestChannelSwitches:
    async def test_channels_switched_off_by_settings_send_nothing(
        self, stack_factory: StackFactory, recorder: HttpRecorder
    ) -> None:
        async with stack_factory.start(recorder) as stack:
            await create_webhook(stack, "off", ["request.submitted"])
            switch = SettingsUpdatedV1(
                data=SettingsUpdatedData(
                    actor=Actor(user_id="u-dave", username="dave"),
                    before={},
                    after={
                        "notifications": {
                            "slack_enabled": False,
                            "webhooks_enabled": False,
                            "sns_enabled": False,
                        }
                    },
                )
            )
            await stack.producer.send(switch)
            first = factories.submitted(approvers=[])

            # The policy topic is not ordered with the request topic: wait until the switch
            # is in force, proven by a request whose deliveries are email only.
            async def switched() -> None:
                probe = factories.submitted(approvers=[])
                await stack.producer.send(probe)
                items = await stack.settled(probe.data.request_id, expected=1, timeout=10)
                assert items[0]["channel"] == "email"

            await eventually(switched, timeout=40)
            await stack.producer.send(first)
            items = await stack.settled(first.data.request_id, expected=1)
            assert [(i["channel"], i["status"]) for i in items] == [("email", "sent")]
            # Probes sent before the switch took effect may have reached Slack and the hook.
            marks = (str(first.data.request_id), first.data.requester.email or "")
            assert not [r for r in recorder.requests if any(m in r.body.decode() for m in marks)]
            published = await stack.moto.sns_messages(
                stack.settings.SNS_TOPIC_ARN or "", str(first.data.request_id)
            )
            assert published == []


class TestRestart:
    async def test_a_restart_does_not_resend(
        self, stack_factory: StackFactory, recorder: HttpRecorder
    ) -> None:
        database_url = await stack_factory.new_database()
        kafka = stack_factory.kafka()
        event = factories.submitted(approvers=[])
        recorder.add_slack_user(event.data.requester.email or "", "U0RESTART")
        async with stack_factory.start(recorder, database_url=database_url, kafka=kafka) as first:
            await create_webhook(first, "restart", ["request.submitted"])
            await first.producer.send(event)
            before = await first.settled(event.data.request_id, expected=5)
        async with stack_factory.start(recorder, database_url=database_url, kafka=kafka) as second:
            await second.producer.send(event)  # redelivered after the restart
            marker = factories.submitted(approvers=[])
            await second.producer.send(marker)  # proves the new process consumes
            await second.settled(marker.data.request_id, expected=5)
            after = await second.settled(event.data.request_id, expected=5)
        assert [(i["id"], i["attempts"], i["sent_at"]) for i in after] == [
            (i["id"], i["attempts"], i["sent_at"]) for i in before
        ]
        hooked = [c for c in recorder.calls("/hooks/restart") if str(event.id) in c.body.decode()]
        assert len(hooked) == 1
        assert len(slack_posts(recorder, event.data.request_id)) == 2  # DM + audit channel
        assert len(await second.moto.emails(event.data.requester.email or "")) == 1


class TestReadiness:
    async def test_an_unverified_sender_keeps_the_service_not_ready(
        self, stack_factory: StackFactory, recorder: HttpRecorder
    ) -> None:
        sender = f"nobody-{uuid.uuid4().hex[:8]}@unverified.example"
        async with (
            stack_factory.start(recorder, SES_SENDER=sender, wait_until_ready=False) as stack,
            stack.admin() as client,
        ):
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            check = answer.json()["checks"]["ses_sender"]
            assert check["ok"] is False
            assert sender in check["error"]
            assert "verify" in check["error"].lower()


class TestReplicas:
    async def test_two_replicas_send_each_message_once(
        self, stack_factory: StackFactory, recorder: HttpRecorder
    ) -> None:
        database_url = await stack_factory.new_database()
        kafka = stack_factory.kafka()
        events = [factories.submitted(approvers=[]) for _ in range(12)]
        async with (
            stack_factory.start(recorder, database_url=database_url, kafka=kafka) as one,
            stack_factory.start(recorder, database_url=database_url, kafka=kafka) as two,
        ):
            await create_webhook(one, "replicas", ["request.submitted"])
            for n, event in enumerate(events):
                await (one if n % 2 else two).producer.send(event)
            for event in events:
                # email, slack DM (no Slack user: failed), audit channel, SNS, webhook
                await one.settled(event.data.request_id, expected=5, timeout=60)
            for event in events:
                assert len(await one.moto.emails(event.data.requester.email or "")) == 1
                hooked = [
                    c for c in recorder.calls("/hooks/replicas") if str(event.id) in c.body.decode()
                ]
                assert len(hooked) == 1
                assert len(slack_posts(recorder, event.data.request_id)) == 1  # audit channel
            # Both workers took part (SKIP LOCKED spread the rows), yet nothing went out twice.
            for replica in (one, two):
                async with replica.admin() as client:
                    worker = (await client.get("/readyz")).json()["checks"]["delivery_worker"]
                assert worker["sent"] > 0, worker


class TestOutOfOrder:
    async def test_a_lifecycle_event_before_its_submission_still_reaches_the_requester(
        self, shared: Stack
    ) -> None:
        submission = factories.submitted(approvers=[])
        ended = factories.access_ended(submission)
        requester = submission.data.requester.email
        assert requester
        shared.recorder.add_slack_user(requester, "U0LATE")

        # The lifecycle topic overtakes the request topic: the end arrives first...
        await shared.producer.send(ended)

        async def machine_notices_recorded() -> None:
            items = await shared.deliveries(request_id=str(submission.data.request_id))
            assert any(i["event_type"] == "access.ended" for i in items), items
            assert not any(i["recipient"] == requester for i in items), items

        await eventually(machine_notices_recorded, timeout=30)

        # ...and once the snapshot arrives, the requester hears of both.
        await shared.producer.send(submission)

        async def requester_told() -> None:
            items = await shared.deliveries(request_id=str(submission.data.request_id))
            mine = sorted(
                (i["event_type"], i["channel"]) for i in items if i["recipient"] == requester
            )
            assert mine == [
                ("access.ended", "email"),
                ("access.ended", "slack"),
                ("request.submitted", "email"),
                ("request.submitted", "slack"),
            ], items

        await eventually(requester_told, timeout=30)
