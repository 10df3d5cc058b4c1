"""Settings of the notify service: `NOTIFY_*` variables plus the shared blocks.

Channel switches and non-secret channel configuration here are only the defaults: the policy
service's `settings.updated` events override them at run time (see `channel_config.py`). Secrets
(the Slack bot token) come from the environment only and are never returned by any API.
"""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The notify service's settings (environment prefix `NOTIFY_`)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_notify"
    PORT: int = 8004

    # Channel switches (defaults until a settings.updated event says otherwise).
    EMAIL_ENABLED: bool = True
    SNS_ENABLED: bool = True
    SLACK_ENABLED: bool = False
    WEBHOOKS_ENABLED: bool = True

    # Non-secret channel configuration (defaults until a settings.updated event says otherwise).
    SES_SENDER: str = Field(default="team-notifications@example.com", max_length=320)
    SES_CONFIGURATION_SET: str | None = Field(default=None, max_length=64)
    SNS_TOPIC_ARN: str | None = Field(default=None, max_length=256)
    SLACK_AUDIT_CHANNEL: str | None = Field(default=None, max_length=80)
    OPS_EMAIL: str | None = Field(default=None, max_length=320)
    APP_BASE_URL: str = Field(default="http://127.0.0.1:8001", max_length=500)

    # Slack Web API endpoint and the bot token (a secret: environment only).
    SLACK_BASE_URL: str = "https://slack.com/api"
    SLACK_BOT_TOKEN: SecretStr | None = None

    # Delivery worker.
    MAX_ATTEMPTS: int = Field(default=5, ge=1, le=50)
    RETRY_BASE_SECONDS: float = Field(default=2.0, gt=0)
    RETRY_MAX_SECONDS: float = Field(default=300.0, gt=0)
    WORKER_BATCH_SIZE: int = Field(default=20, ge=1, le=500)
    WORKER_POLL_SECONDS: float = Field(default=1.0, gt=0)
    SEND_TIMEOUT_SECONDS: float = Field(default=15.0, gt=0)
    # A claimed delivery whose worker died is claimed again after this long.
    DELIVERY_LEASE_SECONDS: float = Field(default=120.0, gt=0)
    # SES readiness probe target when the identity exists but is not reported verified
    # (the SES mailbox simulator accepts mail without delivering it).
    SES_PROBE_RECIPIENT: str = "success@simulator.amazonses.com"
