"""Settings of the request service: `REQUEST_*` variables plus the shared blocks."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The request service's settings (environment prefix `REQUEST_`)."""

    model_config = SettingsConfigDict(env_prefix="REQUEST_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_request"
    PORT: int = 8001
    #: Base URL of the policy service (`POST /v1/evaluations`, `POST /v1/approver-checks`).
    POLICY_URL: str = "http://127.0.0.1:8002"
    #: Whole-call timeout of one policy call; beyond it the caller gets 503 and nothing is stored.
    POLICY_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    #: How far in the past a requested start may lie (clock skew, slow clients); older is 422.
    START_GRACE_SECONDS: int = Field(default=300, ge=0, le=3600)
    #: How far ahead a window may start; later is 422 (bounds what timers must hold).
    MAX_START_AHEAD_DAYS: int = Field(default=90, ge=1, le=366)
