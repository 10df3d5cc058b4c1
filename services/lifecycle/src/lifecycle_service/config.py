"""Settings of the lifecycle service: `LIFECYCLE_*` variables plus the shared blocks."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from teamkit.service_settings import ServiceSettings


class Settings(ServiceSettings):
    """The lifecycle service's settings (environment prefix `LIFECYCLE_`)."""

    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/team_lifecycle"
    PORT: int = 8003

    # Identity Center instance; looked up with sso-admin ListInstances when unset.
    INSTANCE_ARN: str | None = None
    # One token bucket for every Identity Center call of this process (AWS's default quota
    # for the assignment APIs is 20/s per account).
    IC_CALLS_PER_SECOND: float = Field(default=20.0, gt=0, le=10_000)
    IC_BURST: int = Field(default=1, ge=1, le=1_000)
    # Create/delete operations in flight at once (from the call until a terminal status).
    MAX_OUTSTANDING_OPERATIONS: int = Field(default=10, ge=1, le=100)
    # Polling of DescribeAccountAssignment{Creation,Deletion}Status.
    STATUS_POLL_SECONDS: float = Field(default=1.0, gt=0, le=60)
    STATUS_TIMEOUT_SECONDS: float = Field(default=300.0, gt=0, le=3_600)
    # Back-off of retryable AWS errors (throttling, conflict, internal, 5xx, network).
    RETRY_MAX_ATTEMPTS: int = Field(default=8, ge=1, le=50)
    RETRY_BASE_SECONDS: float = Field(default=0.2, gt=0, le=60)
    RETRY_MAX_SECONDS: float = Field(default=20.0, gt=0, le=600)
    # Fallback wake-up of the scheduler when no NOTIFY arrives (normally it sleeps until due).
    TIMER_POLL_SECONDS: float = Field(default=30.0, gt=0, le=3_600)
    TIMER_BATCH_SIZE: int = Field(default=500, ge=1, le=10_000)
    # Delay before a timer whose job crashed (unexpected error) is tried again.
    TIMER_RETRY_SECONDS: float = Field(default=5.0, gt=0, le=3_600)
    # Upper bound of one job transaction's statements (lock waits behind the same tuple).
    JOB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=600.0, gt=0, le=3_600)
    # Periodic reconciliation; 0 turns it off (POST /v1/reconciliations still works).
    RECONCILE_INTERVAL_SECONDS: float = Field(default=900.0, ge=0, le=86_400)
    # Whether background work (scheduler, AWS worker, reconciler) runs in this process.
    WORKERS_ENABLED: bool = True
