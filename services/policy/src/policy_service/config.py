"""Settings of the policy service: `POLICY_*` variables plus the shared blocks."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The policy service's settings (environment prefix `POLICY_`)."""

    model_config = SettingsConfigDict(env_prefix="POLICY_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_policy"
    PORT: int = 8002
    # Seconds between two scheduled directory refreshes; 0 turns the schedule off (on demand only).
    DIRECTORY_REFRESH_SECONDS: float = Field(default=900.0, ge=0)
    # Refresh once as soon as the service starts (readiness waits for a good copy).
    DIRECTORY_REFRESH_ON_START: bool = True
    # Concurrent AWS calls of one refresh (Organizations and Identity Center throttle per account).
    DIRECTORY_CONCURRENCY: int = Field(default=8, ge=1, le=64)
    # Which Identity Center instance to read when the account holds several; None = the first.
    SSO_INSTANCE_ARN: str | None = None
    # How a signed-in person's token maps to an Identity Center user.
    USER_MATCH: Literal["username", "email"] = "username"
    # Approver checks ask Identity Center for the approver's current groups (cache on failure).
    APPROVER_CHECK_LIVE: bool = True
    # Seed the demo policies after the first good refresh when no policy exists yet.
    SEED_DEMO: bool = False
