"""Alembic glue shared by every service: one env.py body, and upgrade-at-start."""

import asyncio
import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from teamkit.db import normalise_url


def alembic_config(script_location: Path, database_url: str) -> Config:
    """An Alembic config for one service's migrations folder and database."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(script_location: Path, database_url: str) -> None:
    """Apply every migration not yet applied (blocking; run it in a thread from async code)."""
    command.upgrade(alembic_config(script_location, database_url), "head")


async def upgrade_to_head_async(script_location: Path, database_url: str) -> None:
    """`upgrade_to_head` off the event loop (Alembic's env runs its own loop in the thread)."""
    await asyncio.to_thread(upgrade_to_head, script_location, database_url)


def _lock_key(script_location: str) -> int:
    return zlib.crc32(f"migrations:{script_location}".encode()) & 0x7FFFFFFF


def _run_sync(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, compare_type=True)
    # Replicas starting together migrate one at a time; the rest find nothing left to do.
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": _lock_key(context.config.get_main_option("script_location") or "")},
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


def run_env() -> None:
    """The whole body of a service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: run migrations through the service's CLI")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url))
