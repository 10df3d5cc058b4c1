"""Settings of the lifecycle service: `LIFECYCLE_*` variables plus the shared blocks."""

from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The lifecycle service's settings (environment prefix `LIFECYCLE_`)."""

    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_lifecycle"
    PORT: int = 8003
