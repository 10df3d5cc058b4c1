"""Settings of the request service: `REQUEST_*` variables plus the shared blocks."""

from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The request service's settings (environment prefix `REQUEST_`)."""

    model_config = SettingsConfigDict(env_prefix="REQUEST_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_request"
    PORT: int = 8001
