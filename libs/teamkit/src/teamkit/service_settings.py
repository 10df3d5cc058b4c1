"""The settings every service has; each service subclasses it with its own env prefix."""

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from teamkit.db import DatabaseSettings, normalise_url
from teamkit.settings import AwsSettings, KafkaSettings, OidcSettings, RuntimeSettings


class ServiceSettings(BaseSettings):
    """Per-service settings (`<SERVICE>_` prefix) plus the shared unprefixed blocks."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team"
    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=0, le=65535)
    MIGRATE_ON_START: bool = True
    MAX_BODY_BYTES: int = Field(default=1_048_576, ge=1024)
    OUTBOX_POLL_SECONDS: float = Field(default=1.0, gt=0)
    OUTBOX_BATCH_SIZE: int = Field(default=500, ge=1, le=10_000)
    OUTBOX_RETENTION_HOURS: int = Field(default=168, ge=1)
    # This service's own OAuth2 client, for calls to other services (client credentials).
    CLIENT_ID: str | None = None
    CLIENT_SECRET: str | None = None

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @field_validator("DATABASE_URL")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        return normalise_url(value)
