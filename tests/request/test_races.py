"""Concurrent deciders, approval against expiry, concurrent submissions: exactly one outcome."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from request_service.consumers import on_approval_timed_out
from teamkit import db
from tests.harness.policy_stub import PolicyStub
from tests.request.conftest import RequestService, submit_body
from tests.request.lifecycle_events import status_of, timed_out

NewPs = Callable[[], str]


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(svc: RequestService) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(svc.settings.DATABASE_URL)
    try:
        yield db.create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def submit(svc: RequestService, ps: str) -> dict[str, Any]:
    async with svc.client("alice") as alice:
        answer = await alice.post("/v1/requests", json=submit_body(ps))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def approve(svc: RequestService, who: str, request_id: str) -> Any:
    async with svc.client(who) as http:
        return await http.post(f"/v1/requests/{request_id}/approve")


async def test_two_approvers_at_once_quorum_one(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    for _ in range(3):
        request = await submit(svc, new_ps())
        answers = await asyncio.gather(
            approve(svc, "bob", request["id"]), approve(svc, "carol", request["id"])
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409).json()
        assert loser["current_status"] == "approved"
        types = await svc.types(request["id"])
        assert types.count("request.approved") == 1
        assert types.count("request.approval_recorded") == 1


async def test_three_approvers_at_once_quorum_two(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    policy_stub.approvers = {"bob", "carol", "dave"}
    policy_stub.approvals_needed = 2
    request = await submit(svc, new_ps())
    answers = await asyncio.gather(
        *(approve(svc, who, request["id"]) for who in ("bob", "carol", "dave"))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 409]
    final = await status_of(svc, request["id"])
    assert final["status"] == "approved"
    assert len(final["approvals"]) == 2
    types = await svc.types(request["id"])
    assert types.count("request.approved") == 1
    assert types.count("request.approval_recorded") == 2


async def test_approval_racing_expiry(
    svc: RequestService,
    policy_stub: PolicyStub,
    new_ps: NewPs,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    outcomes: set[str] = set()
    for _ in range(6):
        request = await submit(svc, new_ps())

        async def expire(request: dict[str, Any] = request) -> None:
            async with sessions() as session, session.begin():
                await on_approval_timed_out(session, timed_out(request))

        answer, _ = await asyncio.gather(approve(svc, "bob", request["id"]), expire())
        final = await status_of(svc, request["id"])
        types = await svc.types(request["id"])
        if answer.status_code == 200:
            assert final["status"] == "approved"
            assert "request.expired" not in types
        else:
            assert answer.status_code == 409
            assert answer.json()["current_status"] == "expired"
            assert final["status"] == "expired"
            assert final["approvals"] == []
            assert "request.approved" not in types
        assert types.count("request.approved") + types.count("request.expired") == 1
        outcomes.add(final["status"])
    assert outcomes <= {"approved", "expired"}


async def test_same_idempotency_key_at_once(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    body = submit_body(new_ps())
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    async with svc.client("alice") as alice:
        answers = await asyncio.gather(
            *(alice.post("/v1/requests", json=body, headers=headers) for _ in range(3))
        )
    assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_identical_submissions_at_once(
    svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
) -> None:
    body = submit_body(new_ps())
    async with svc.client("alice") as alice:
        answers = await asyncio.gather(*(alice.post("/v1/requests", json=body) for _ in range(3)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409], [a.text for a in answers]
    created = next(a for a in answers if a.status_code == 201).json()["id"]
    assert {a.json()["existing_request_id"] for a in answers if a.status_code == 409} == {created}
