"""Settings of the audit service: `AUDIT_*` variables plus the shared blocks."""

from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The audit service's settings (environment prefix `AUDIT_`)."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_audit"
    PORT: int = 8005
