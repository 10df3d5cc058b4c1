"""PostgreSQL for tests: the embedded server, or the one named by TEST_DATABASE_URL.

Each test that needs real commits gets a fresh database (unique name), migrated with a service's
real Alembic migrations, and dropped afterwards.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from devstack.postgres import start_postgres
from teamkit.db import normalise_url
from teamkit.migrations import upgrade_to_head_async

REPO = Path(__file__).resolve().parents[2]


def service_migrations(service: str) -> Path:
    """The migrations folder of one service package."""
    return REPO / "services" / service / "src" / f"{service}_service" / "migrations"


class PostgresForTests:
    """Creates and drops per-test databases on one server."""

    def __init__(self, admin_url: str) -> None:
        # admin_url: a libpq-style URL of a maintenance database.
        self.admin_url = admin_url

    def url(self, database: str) -> str:
        """The SQLAlchemy asyncpg URL of `database` on this server."""
        parts = urlsplit(self.admin_url)
        return normalise_url(urlunsplit(parts._replace(path=f"/{database}")))

    def dsn(self, database: str) -> str:
        """A plain asyncpg DSN of `database`."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    async def create(self, prefix: str = "t") -> str:
        """Create a uniquely named database; return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name

    async def drop(self, name: str) -> None:
        """Drop `name`, disconnecting whoever still uses it."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """The test PostgreSQL server (started once per session unless TEST_DATABASE_URL is set)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresForTests(external.replace("postgresql+asyncpg://", "postgresql://"))
        return
    # Not under pytest's basetemp: pytest prunes old numbered basetemps, and a concurrent run
    # would delete a live data directory.
    root = Path(tempfile.mkdtemp(prefix="team-pg-"))
    server = start_postgres(root / "data")
    try:
        yield PostgresForTests(server.libpq_url("postgres"))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


MigratedDb = Callable[[str], Awaitable[str]]


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_database(postgres: PostgresForTests) -> AsyncIterator[MigratedDb]:
    """Factory: a fresh database migrated with `service`'s migrations; returns its URL."""
    created: list[str] = []

    async def make(service: str) -> str:
        name = await postgres.create(service)
        created.append(name)
        url = postgres.url(name)
        await upgrade_to_head_async(service_migrations(service), url)
        return url

    yield make
    for name in created:
        await postgres.drop(name)
