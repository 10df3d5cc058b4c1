"""The trail on the real database: insert-only, and tampering found at its position."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from audit_service import chain, service
from tests.audit.conftest import record
from tests.audit.factories import RequestStory


async def seeded(engine: AsyncEngine, requests: int = 2) -> int:
    events = []
    for _ in range(requests):
        events += RequestStory().happy_path_revoked()
    await record(engine, events)
    return len(events)


async def as_superuser_without_triggers(engine: AsyncEngine, *statements: str) -> None:
    """Tamper as a superuser can: with the insert-only triggers switched off for the session."""
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(text(statement))


class TestInsertOnly:
    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_event SET type = 'x' WHERE position = 1",
            "DELETE FROM audit_event WHERE position = 1",
            "TRUNCATE audit_event",
        ],
    )
    async def test_service_role_cannot_change_rows(
        self, audit_engine: AsyncEngine, statement: str
    ) -> None:
        await seeded(audit_engine, 1)
        with pytest.raises(DBAPIError, match="audit_event is insert-only"):
            async with audit_engine.begin() as conn:
                await conn.execute(text(statement))
        result = await service.verify_chain(audit_engine, batch=100, signer=None)
        assert result.ok


class TestVerify:
    async def test_intact_chain_and_checkpoint(self, audit_engine: AsyncEngine) -> None:
        count = await seeded(audit_engine)
        signer = chain.Signer("HMAC-SHA256", "k", b"k" * 32)
        result = await service.verify_chain(audit_engine, batch=7, signer=signer)
        assert result.ok
        assert result.count == count
        assert result.first_break is None
        assert result.checkpoint is not None
        assert result.checkpoint["count"] == count
        assert result.checkpoint["head_hash"] == result.head_hash
        assert result.checkpoint["signature"]

    async def test_modified_row(self, audit_engine: AsyncEngine) -> None:
        await seeded(audit_engine)
        await as_superuser_without_triggers(
            audit_engine,
            "UPDATE audit_event SET body = replace(body, 'done early', 'never happened') "
            "WHERE position = 10",
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert not result.ok
        assert result.first_break is not None
        assert (result.first_break.position, result.first_break.reason) == (10, "hash_mismatch")
        assert result.count == 9
        assert result.checkpoint is None

    async def test_modified_indexed_column(self, audit_engine: AsyncEngine) -> None:
        await seeded(audit_engine)
        await as_superuser_without_triggers(
            audit_engine, "UPDATE audit_event SET subject = 'other' WHERE position = 5"
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert result.first_break is not None
        assert (result.first_break.position, result.first_break.reason) == (5, "body_mismatch")

    async def test_deleted_row(self, audit_engine: AsyncEngine) -> None:
        await seeded(audit_engine)
        await as_superuser_without_triggers(
            audit_engine, "DELETE FROM audit_event WHERE position = 7"
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert result.first_break is not None
        assert (result.first_break.position, result.first_break.reason) == (7, "position_gap")

    async def test_deleted_row_renumbered(self, audit_engine: AsyncEngine) -> None:
        # A careful tamperer also closes the gap; the next row's link still breaks.
        await seeded(audit_engine)
        await as_superuser_without_triggers(
            audit_engine,
            "DELETE FROM audit_event WHERE position = 7",
            "UPDATE audit_event SET position = position + 1000000 WHERE position > 7",
            "UPDATE audit_event SET position = position - 1000001 WHERE position > 1000000",
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert result.first_break is not None
        assert (result.first_break.position, result.first_break.reason) == (
            7,
            "prev_hash_mismatch",
        )

    async def test_inserted_row(self, audit_engine: AsyncEngine) -> None:
        await seeded(audit_engine)
        # A forged row at position 4 whose own hash is consistent with row 3.
        async with audit_engine.connect() as conn:
            prev = (
                await conn.execute(text("SELECT hash FROM audit_event WHERE position = 3"))
            ).scalar_one()
        body = chain.canonical_json({"id": "forged", "type": "request.approved", "subject": "x"})
        forged = chain.chain_hash(bytes(prev), body)
        columns = (
            "position, event_id, type, version, source, subject, recorded_at, topic, partition, "
            '"offset", known, body, prev_hash, hash'
        )
        values = (
            "4, 'forged', 'request.approved', 1, 'request', 'x', now(), 'request.events', 0, 0, "
            f"true, '{body}', '\\x{bytes(prev).hex()}', '\\x{forged.hex()}'"
        )
        forged_insert = f"INSERT INTO audit_event ({columns}) VALUES ({values})"  # noqa: S608
        await as_superuser_without_triggers(
            audit_engine,
            "UPDATE audit_event SET position = position + 1000000 WHERE position >= 4",
            "UPDATE audit_event SET position = position - 999999 WHERE position > 1000000",
            forged_insert,
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert result.first_break is not None
        # The forged row links to row 3; the original row 4 (now 5) no longer links to it.
        assert (result.first_break.position, result.first_break.reason) == (
            5,
            "prev_hash_mismatch",
        )

    async def test_inserted_garbage_row(self, audit_engine: AsyncEngine) -> None:
        await seeded(audit_engine)
        await as_superuser_without_triggers(
            audit_engine,
            "UPDATE audit_event SET position = position + 1000000 WHERE position >= 4",
            "UPDATE audit_event SET position = position - 999999 WHERE position > 1000000",
            "INSERT INTO audit_event (position, event_id, type, version, source, subject, "
            'recorded_at, topic, partition, "offset", known, body, prev_hash, hash) '
            "SELECT 4, 'forged', type, version, source, subject, recorded_at, topic, partition, "
            '"offset", known, body, prev_hash, hash FROM audit_event WHERE position = 3',
        )
        result = await service.verify_chain(audit_engine, batch=4, signer=None)
        assert result.first_break is not None
        assert result.first_break.position == 4


class TestCheckpointComparison:
    async def test_rewritten_tail_and_cut_end_are_found(self, audit_engine: AsyncEngine) -> None:
        count = await seeded(audit_engine)
        kept = await service.verify_chain(audit_engine, batch=10, signer=None)
        assert kept.checkpoint is not None
        mark = (count, bytes.fromhex(kept.checkpoint["head_hash"]))
        again = await service.verify_chain(audit_engine, batch=10, signer=None, checkpoint=mark)
        assert again.ok
        # Cut the last two rows: the rest of the chain is self-consistent.
        await as_superuser_without_triggers(
            audit_engine,
            f"DELETE FROM audit_event WHERE position > {count - 2}",  # noqa: S608
        )
        plain = await service.verify_chain(audit_engine, batch=10, signer=None)
        assert plain.ok  # nothing inside the trail shows the cut ...
        cut = await service.verify_chain(audit_engine, batch=10, signer=None, checkpoint=mark)
        assert cut.first_break is not None  # ... the kept checkpoint does
        assert (cut.first_break.position, cut.first_break.reason) == (count - 1, "head_mismatch")


class TestNothingIsDropped:
    async def test_oversized_unknown_event_is_stored_flagged(
        self, audit_engine: AsyncEngine
    ) -> None:
        odd = {
            "id": "9b0f8a9e-0000-4000-8000-000000000001",
            "type": "x" * 600,
            "version": 3,
            "source": "s" * 300,
            "subject": "k" * 400,
            "data": {"anything": ["goes", 1, None]},
        }
        await record(audit_engine, [odd])
        async with audit_engine.connect() as conn:
            row = (await conn.execute(text("SELECT type, known, flag FROM audit_event"))).one()
        assert (row.type, row.known) == ("x" * 600, False)
        assert row.flag.startswith("unknown event type")
        assert (await service.verify_chain(audit_engine, batch=10, signer=None)).ok
