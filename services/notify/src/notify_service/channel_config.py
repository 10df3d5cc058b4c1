"""Effective channel configuration: environment defaults overlaid by the policy settings.

The policy service's `settings.updated` carries the non-secret settings in `after`. Notify reads
the keys below from `after["notifications"]` when that is an object, else from `after` itself;
any other key is ignored, a key with a value of the wrong type is ignored (and logged), and a
key that is absent or null keeps the environment default; an empty string clears an optional
value. Secrets never come from here.
"""

from dataclasses import dataclass, fields, replace
from typing import Any

import structlog

from notify_service.config import Settings

log = structlog.get_logger(__name__)

#: Keys of `settings.updated.after` (or its `notifications` object) that notify honours.
BOOL_KEYS = ("email_enabled", "sns_enabled", "slack_enabled", "webhooks_enabled")
TEXT_KEYS = (
    "ses_sender",
    "ses_configuration_set",
    "sns_topic_arn",
    "slack_audit_channel",
    "ops_email",
    "app_base_url",
)
_MAX_TEXT = 500


@dataclass(frozen=True)
class ChannelConfig:
    """What the consumer and the delivery worker use to decide what to send, and from whom."""

    email_enabled: bool
    sns_enabled: bool
    slack_enabled: bool
    webhooks_enabled: bool
    ses_sender: str
    ses_configuration_set: str | None
    sns_topic_arn: str | None
    slack_audit_channel: str | None
    ops_email: str | None
    app_base_url: str

    def enabled(self, channel: str) -> bool:
        """True when `channel` (`email`, `sns`, `slack`, `webhook`) may send."""
        return {
            "email": self.email_enabled,
            "sns": self.sns_enabled and bool(self.sns_topic_arn),
            "slack": self.slack_enabled,
            "webhook": self.webhooks_enabled,
        }.get(channel, False)

    def public(self) -> dict[str, Any]:
        """The configuration as a plain dict (nothing here is secret)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def defaults(settings: Settings) -> ChannelConfig:
    """The configuration from the environment alone."""
    return ChannelConfig(
        email_enabled=settings.EMAIL_ENABLED,
        sns_enabled=settings.SNS_ENABLED,
        slack_enabled=settings.SLACK_ENABLED,
        webhooks_enabled=settings.WEBHOOKS_ENABLED,
        ses_sender=settings.SES_SENDER,
        ses_configuration_set=settings.SES_CONFIGURATION_SET,
        sns_topic_arn=settings.SNS_TOPIC_ARN,
        slack_audit_channel=settings.SLACK_AUDIT_CHANNEL,
        ops_email=settings.OPS_EMAIL,
        app_base_url=settings.APP_BASE_URL,
    )


def extract(after: dict[str, Any]) -> dict[str, Any]:
    """The notify keys of a `settings.updated` `after` document, type-checked."""
    source = after.get("notifications")
    if not isinstance(source, dict):
        source = after
    picked: dict[str, Any] = {}
    for key in BOOL_KEYS:
        if key in source:
            if isinstance(source[key], bool):
                picked[key] = source[key]
            else:
                log.warning("settings.ignored_value", key=key, reason="not a boolean")
    for key in TEXT_KEYS:
        value = source.get(key)
        if value is None:
            continue  # null or absent: the environment default stays in force
        if isinstance(value, str) and len(value) <= _MAX_TEXT:
            picked[key] = value  # an empty string clears an optional value
        else:
            log.warning("settings.ignored_value", key=key, reason="not a short string")
    return picked


def effective(settings: Settings, overrides: dict[str, Any] | None) -> ChannelConfig:
    """Environment defaults with the stored overrides applied."""
    config = defaults(settings)
    if not overrides:
        return config
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in BOOL_KEYS:
            values[key] = value
        elif key in TEXT_KEYS:
            values[key] = value or None
    # The sender and the link base cannot be cleared: they keep the environment's value.
    for required in ("ses_sender", "app_base_url"):
        if values.get(required) is None:
            values.pop(required, None)
    return replace(config, **values)
