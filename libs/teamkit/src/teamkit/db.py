"""Engines, sessions and the naming convention every service's tables follow."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import Field
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from teamkit.settings import _Block

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Return a MetaData with the shared constraint naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseSettings(_Block):
    """Connection pool tuning shared by all services (the URL is per service)."""

    DB_POOL_SIZE: int = Field(default=10, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(default=10, ge=0, le=200)
    DB_STATEMENT_TIMEOUT_MS: int = Field(default=30_000, ge=0)


def normalise_url(url: str) -> str:
    """Accept `postgresql://` URLs and turn them into the asyncpg dialect SQLAlchemy needs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(url: str, settings: DatabaseSettings | None = None) -> AsyncEngine:
    """Create the service's one async engine (called from the lifespan, never at import)."""
    settings = settings or DatabaseSettings()
    connect_args: dict[str, object] = {}
    if settings.DB_STATEMENT_TIMEOUT_MS:
        connect_args["server_settings"] = {
            "statement_timeout": str(settings.DB_STATEMENT_TIMEOUT_MS)
        }
    return create_async_engine(
        normalise_url(url),
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses are built after it)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Open a session with one transaction that commits on success, rolls back on error."""
    async with sessionmaker() as session, session.begin():
        yield session
