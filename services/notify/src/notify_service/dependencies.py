"""Annotated dependencies of the notify API."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session from the lifespan's sessionmaker; the use case opens the transaction."""
    async with request.state.sessionmaker() as db_session:
        yield db_session


SessionDep = Annotated[AsyncSession, Depends(session)]
