"""Settings of the audit service: `AUDIT_*` variables plus the shared blocks."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The audit service's settings (environment prefix `AUDIT_`); see docs/audit.md."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_audit"
    PORT: int = 8005

    # Session activity (CloudTrail).
    ACTIVITY_BACKEND: Literal["lookup_events", "lake"] = "lookup_events"
    ACTIVITY_GRACE_MINUTES: int = Field(default=60, ge=0, le=1440)
    ACTIVITY_MAX_EVENTS: int = Field(default=1000, ge=1, le=10_000)
    CLOUDTRAIL_ENDPOINT_URL: str | None = None
    CLOUDTRAIL_REGION: str | None = None
    # LookupEvents reads the event history of the account of its credentials: with a role name,
    # the service assumes arn:aws:iam::<request account>:role/<name> for each lookup.
    CLOUDTRAIL_ROLE_NAME: str | None = Field(default=None, max_length=64, pattern=r"^[\w+=,.@-]+$")
    CLOUDTRAIL_LAKE_EVENT_DATA_STORE: str | None = None
    CLOUDTRAIL_LAKE_POLL_SECONDS: float = Field(default=1.0, gt=0, le=30)
    CLOUDTRAIL_LAKE_TIMEOUT_SECONDS: float = Field(default=120.0, gt=0, le=900)

    # Signed checkpoints of the trail: one of the two keys, or none (unsigned checkpoints).
    CHECKPOINT_HMAC_KEY: SecretStr | None = None
    CHECKPOINT_ED25519_PRIVATE_KEY: SecretStr | None = None
    CHECKPOINT_KEY_ID: str = "audit-checkpoint-1"

    # Streaming reads (verification) fetch this many rows per round trip.
    STREAM_BATCH_ROWS: int = Field(default=2000, ge=100, le=50_000)
    # Whole-table reads (CSV export, verification) outlive DB_STATEMENT_TIMEOUT_MS; 0 = none.
    STREAM_STATEMENT_TIMEOUT_MS: int = Field(default=3_600_000, ge=0)

    @model_validator(mode="after")
    def _one_checkpoint_key(self) -> "Settings":
        if self.CHECKPOINT_HMAC_KEY is not None and self.CHECKPOINT_ED25519_PRIVATE_KEY is not None:
            raise ValueError(
                "set AUDIT_CHECKPOINT_HMAC_KEY or AUDIT_CHECKPOINT_ED25519_PRIVATE_KEY, not both"
            )
        if self.ACTIVITY_BACKEND == "lake" and not self.CLOUDTRAIL_LAKE_EVENT_DATA_STORE:
            raise ValueError(
                "AUDIT_ACTIVITY_BACKEND=lake needs AUDIT_CLOUDTRAIL_LAKE_EVENT_DATA_STORE "
                "(the event data store ARN or id)"
            )
        return self
