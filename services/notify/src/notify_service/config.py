"""Settings of the notify service: `NOTIFY_*` variables plus the shared blocks."""

from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The notify service's settings (environment prefix `NOTIFY_`)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_notify"
    PORT: int = 8004
