"""Pure rendering, routing and config logic (no peers needed)."""

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from notify_service.channel_config import effective, extract
from notify_service.channels import classify_aws_error, parse_retry_after, sign
from notify_service.config import Settings
from notify_service.consumers import NOTIFYING_EVENTS
from notify_service.rendering import (
    Renderer,
    format_duration,
    format_time,
    message_context,
    slack_escape,
)
from notify_service.routing import AUDIENCES, MACHINE_EVENT_TYPES, people
from notify_service.worker import backoff_seconds
from tests.notify import factories

INJECTION = "<script>alert(1)</script> <!channel> <https://evil.example|click> & *bold*"
renderer = Renderer()


def context_for(event: Any, audience: str, tz: str | None, snapshot: Any = None) -> dict[str, Any]:
    return message_context(
        event=event,
        snapshot=snapshot,
        revoke=None,
        audience=audience,
        recipient_name="Alice",
        time_zone=tz,
        app_base_url="https://team.example.com/",
    )


class TestFormatting:
    def test_time_in_zone_always_names_the_zone(self) -> None:
        moment = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
        assert format_time(moment, "Europe/Berlin") == "2026-12-10 10:00 CET (Europe/Berlin)"
        assert format_time(moment, "Asia/Tokyo") == "2026-12-10 18:00 JST (Asia/Tokyo)"
        assert format_time(moment, None) == "2026-12-10 09:00 UTC"
        assert format_time(moment, "Not/AZone") == "2026-12-10 09:00 UTC"

    def test_duration(self) -> None:
        assert format_duration(90) == "1 h 30 min"
        assert format_duration(45) == "45 min"
        assert format_duration(120) == "2 h"

    def test_slack_escape(self) -> None:
        assert slack_escape("a & <b> <!here>") == "a &amp; &lt;b&gt; &lt;!here&gt;"


class TestTemplates:
    def test_every_event_and_audience_has_a_template_that_renders(self) -> None:
        event = factories.submitted()
        for event_type, audiences in AUDIENCES.items():
            for audience in audiences:
                assert renderer.has_template(event_type, audience), (event_type, audience)
        # A representative of each data shape renders on every channel.
        for sample in (
            event,
            factories.approved(event),
            factories.access_ended(event),
            factories.grant_failed(event),
        ):
            for audience in AUDIENCES[sample.type]:
                name = renderer.template_name(sample.type, audience)
                ctx = context_for(sample, audience, "Europe/Berlin", event.data)
                mail = renderer.email(name, ctx)
                assert mail.subject
                assert "\n" not in mail.subject
                assert "team-a-prod (111122223333)" in mail.text
                assert renderer.slack(name, ctx).blocks

    def test_html_and_slack_escape_user_input_text_does_not(self) -> None:
        event = factories.submitted(justification=INJECTION)
        ctx = context_for(event, "approver", "Europe/Berlin", event.data)
        name = renderer.template_name("request.submitted", "approver")
        mail = renderer.email(name, ctx)
        assert "<script>" not in mail.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
        assert INJECTION in mail.text
        slack = renderer.slack(name, ctx)
        section = slack.blocks[1]["text"]["text"]
        assert "<!channel>" not in section
        assert "<https://evil" not in section
        assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; *bold*" in section
        # Layout markup itself is kept.
        assert "*Justification:*" in section

    def test_times_in_recipient_zone(self) -> None:
        event = factories.submitted(time_zone="Asia/Tokyo")
        name = renderer.template_name("request.submitted", "requester")
        text = renderer.email(name, context_for(event, "requester", "Asia/Tokyo", event.data)).text
        assert "2026-12-10 18:00 JST (Asia/Tokyo)" in text
        text = renderer.email(name, context_for(event, "approver", None, event.data)).text
        assert "2026-12-10 09:00 UTC" in text
        assert "Times are shown in UTC" in text


class TestRouting:
    def test_submitted_tells_approvers_and_requester(self) -> None:
        event = factories.submitted(approvers=[("bob", "bob@x.example"), ("carol", "c@x.example")])
        told = people("request.submitted", event.data, ops_email=None)
        assert [(p.audience, p.email) for p in told] == [
            ("approver", "bob@x.example"),
            ("approver", "c@x.example"),
            ("requester", event.data.requester.email),
        ]
        assert told[2].time_zone == "Europe/Berlin"

    def test_failure_tells_ops_even_without_snapshot(self) -> None:
        assert [p.audience for p in people("grant.failed", None, ops_email="ops@x.example")] == [
            "ops"
        ]

    def test_every_machine_event_type_has_a_handler(self) -> None:
        assert {cls.model_fields["type"].default for cls in NOTIFYING_EVENTS} == set(
            MACHINE_EVENT_TYPES
        )


class TestChannelConfig:
    def test_settings_event_overrides_env_defaults(self) -> None:
        settings = Settings(SNS_TOPIC_ARN="arn:aws:sns:us-east-1:1:t")
        values = extract({"notifications": {"slack_enabled": True, "email_enabled": "yes"}})
        config = effective(settings, values)
        assert config.slack_enabled is True
        assert config.email_enabled is True  # a non-boolean is ignored
        assert effective(settings, extract({"sns_topic_arn": ""})).enabled("sns") is False

    def test_policy_settings_document_with_nulls_keeps_env_values(self) -> None:
        settings = Settings(SNS_TOPIC_ARN="arn:aws:sns:us-east-1:1:t", SES_SENDER="a@b.example")
        after = {
            "email_enabled": True,
            "sns_enabled": True,
            "ses_sender": None,
            "sns_topic_arn": None,
            "max_duration_minutes": 540,
        }
        config = effective(settings, extract(after))
        assert config.sns_topic_arn == "arn:aws:sns:us-east-1:1:t"
        assert config.ses_sender == "a@b.example"
        assert config.enabled("sns")


class TestDeliveryRules:
    def test_signature_matches_documented_construction(self) -> None:
        import hashlib
        import hmac

        expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert sign("s3cret", "1700000000", "{}") == "sha256=" + expected

    @pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), (None, None), ("soon", None)])
    def test_retry_after(self, value: str | None, seconds: float | None) -> None:
        assert parse_retry_after(value) == seconds

    def test_ses_throttling_retries_rejection_does_not(self) -> None:
        def error(code: str, status: int) -> ClientError:
            response: Any = {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
            return ClientError(response, "SendEmail")

        assert classify_aws_error(error("TooManyRequestsException", 429)).retryable
        assert classify_aws_error(error("Throttling", 400)).retryable
        assert not classify_aws_error(error("MessageRejected", 400)).retryable
        assert classify_aws_error(error("InternalFailure", 500)).retryable

    def test_backoff_honours_retry_after_and_caps(self) -> None:
        assert backoff_seconds(1, base=2, cap=300, retry_after=7) == 7
        assert backoff_seconds(30, base=2, cap=300) <= 360
        assert 1.6 <= backoff_seconds(1, base=2, cap=300) <= 2.4
