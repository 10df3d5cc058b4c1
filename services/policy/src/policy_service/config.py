"""Settings of the policy service: `POLICY_*` variables plus the shared blocks."""

from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The policy service's settings (environment prefix `POLICY_`)."""

    model_config = SettingsConfigDict(env_prefix="POLICY_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_policy"
    PORT: int = 8002
