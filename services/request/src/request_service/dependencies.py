"""FastAPI dependencies of the request service, as `Annotated` aliases."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from request_service.config import Settings
from request_service.policy_client import PolicyClient


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for one HTTP call; the use case opens (and commits) its own transactions."""
    sessionmaker = cast(async_sessionmaker[AsyncSession], request.state.sessionmaker)
    async with sessionmaker() as session:
        yield session


def get_policy(request: Request) -> PolicyClient:
    """The policy client created by the lifespan."""
    return cast(PolicyClient, request.state.extras["policy"])


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return cast(Settings, request.state.settings)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
PolicyDep = Annotated[PolicyClient, Depends(get_policy)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
