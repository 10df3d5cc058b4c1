"""Shared settings blocks, read from unprefixed environment variables.

Each service declares its own prefixed `Settings` (e.g. `REQUEST_DATABASE_URL`) and embeds these
blocks, so one `KAFKA_BOOTSTRAP_SERVERS` or `OIDC_ISSUER` configures every service alike.
"""

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Block(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class KafkaSettings(_Block):
    """Broker connection and client tuning shared by producers and consumers."""

    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:9092"
    KAFKA_TOPIC_PREFIX: str = ""
    # Tansu (dev and tests) rejects aiokafka's InitProducerId v0, so this stays off there;
    # correctness never depends on it (outbox + inbox), production may turn it on.
    KAFKA_ENABLE_IDEMPOTENCE: bool = False
    KAFKA_SESSION_TIMEOUT_MS: int = Field(default=10_000, ge=1_000)
    KAFKA_HEARTBEAT_INTERVAL_MS: int = Field(default=3_000, ge=100)
    KAFKA_TOPIC_PARTITIONS: int = Field(default=6, ge=1)
    # How long the broker may hold a fetch open waiting for data: the floor of hop latency.
    KAFKA_FETCH_MAX_WAIT_MS: int = Field(default=100, ge=0, le=10_000)
    KAFKA_CONSUMER_MAX_RETRIES: int = Field(default=5, ge=0)
    KAFKA_CONSUMER_RETRY_BACKOFF_MS: int = Field(default=200, ge=0)


class OidcSettings(_Block):
    """Bearer-token validation against one OIDC issuer."""

    OIDC_ISSUER: str = "http://127.0.0.1:8900"
    OIDC_AUDIENCE: str = "team"
    OIDC_ALGORITHMS: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256"])
    OIDC_LEEWAY_SECONDS: int = Field(default=30, ge=0, le=300)
    # Unknown-kid refreshes of the JWKS are rate limited so forged kids cannot hammer the issuer.
    OIDC_JWKS_MIN_REFRESH_SECONDS: float = Field(default=10.0, ge=0)
    OIDC_JWKS_CACHE_SECONDS: float = Field(default=3600.0, ge=0)
    OIDC_USERNAME_CLAIM: str = "preferred_username"
    OIDC_GROUPS_CLAIM: str = "groups"
    TEAM_ADMIN_GROUP: str = "TEAM-Admins"
    TEAM_AUDITOR_GROUP: str = "TEAM-Auditors"

    @field_validator("OIDC_ALGORITHMS")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(f"only asymmetric algorithms are accepted, not {bad or 'none'}")
        return value


class AwsSettings(_Block):
    """AWS client construction; an endpoint URL points every client at moto or a proxy."""

    AWS_REGION: str = "us-east-1"
    AWS_ENDPOINT_URL: str | None = None
    AWS_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    AWS_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    AWS_READ_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)


class RuntimeSettings(_Block):
    """Process-wide switches: dev mode and logging."""

    TEAM_DEV_MODE: bool = False
    LOG_FORMAT: Literal["json", "console"] = "json"
    LOG_LEVEL: str = "INFO"
