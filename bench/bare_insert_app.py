"""A bare FastAPI + asyncpg single-insert endpoint: the baseline beside `POST /v1/requests`.

No auth, no policy call, no outbox: parse a body like a submission, insert one row with one
asyncpg statement (autocommit), answer 201. `python -m bench.bare_insert_app --port P` with
`BARE_DATABASE_URL` (a `postgresql://` DSN) in the environment.
"""

import argparse
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

DDL = """
CREATE TABLE IF NOT EXISTS bare_item (
    id uuid PRIMARY KEY,
    account_id text NOT NULL,
    permission_set text NOT NULL,
    duration_minutes integer NOT NULL,
    justification text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = (
    "INSERT INTO bare_item (id, account_id, permission_set, duration_minutes, justification) "
    "VALUES ($1, $2, $3, $4, $5)"
)


class Item(BaseModel):
    """The fields of a submission the baseline stores."""

    account_id: str = Field(pattern=r"^\d{12}$")
    permission_set: str = Field(min_length=1, max_length=2048)
    duration_minutes: int = Field(ge=1)
    justification: str = Field(min_length=1, max_length=2000)


class Created(BaseModel):
    """The stored row's id."""

    id: uuid.UUID


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One asyncpg pool (the size of the request service's SQLAlchemy pool) and the table."""
    dsn = os.environ["BARE_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    async with pool.acquire() as conn:
        await conn.execute(DDL)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(title="bare insert", lifespan=lifespan)


@app.post("/items", status_code=201)
async def create_item(item: Item, request: Request) -> Created:
    """Insert one row."""
    item_id = uuid.uuid4()
    pool: asyncpg.Pool = request.app.state.pool
    await pool.execute(
        INSERT,
        item_id,
        item.account_id,
        item.permission_set,
        item.duration_minutes,
        item.justification,
    )
    return Created(id=item_id)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive."""
    return {"status": "ok"}


def main() -> None:
    """Serve on 127.0.0.1:PORT under uvicorn, one process, like a service."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_insert_app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
