"""Timers: approval expiry, and a burst of starts worked off at the limit in due order."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from lifecycle_service.repository import Tuple
from teamkit.clock import utc_now
from teamkit.events.common import AccountRef, PermissionSetRef, Requester
from teamkit.events.request import RequestSubmittedData, RequestSubmittedV1
from tests.harness.wait import eventually
from tests.lifecycle.conftest import Driver, window


async def _submit(driver: Driver, target: Tuple, *, deadline_in: float) -> UUID:
    request_id = uuid4()
    start, end = window(3600, 3600)
    await driver.send(
        RequestSubmittedV1(
            subject=str(request_id),
            data=RequestSubmittedData(
                request_id=request_id,
                requester=Requester(user_id=target.principal_id, username="alice", email=None),
                account=AccountRef(id=target.account_id, name="acct", ou_path=[]),
                permission_set=PermissionSetRef(arn=target.permission_set_arn, name="ps"),
                start=start,
                end=end,
                duration_minutes=60,
                justification="incident",
                approval_required=True,
                approvals_needed=1,
                approval_deadline=utc_now() + timedelta(seconds=deadline_in),
            ),
        )
    )
    return request_id


class TestApprovalExpiry:
    async def test_times_out_unless_decided_first(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        undecided, decided = next(tuples), next(tuples)
        late = await _submit(svc.driver, undecided, deadline_in=1.0)
        early = await _submit(svc.driver, decided, deadline_in=1.5)
        start, end = window(3600, 60)
        await svc.driver.approve(decided, start=start, end=end, request_id=early)

        timed_out = await svc.driver.wait_event(late, "approval.timed_out")
        assert timed_out["data"]["request_id"] == str(late)
        await svc.driver.wait_event(early, "grant.scheduled")

        async def expiry_cancelled() -> None:
            rows = await svc.driver.fetch(
                "SELECT state FROM timer WHERE request_id = $1 AND kind = 'approval_expiry'", early
            )
            assert [r["state"] for r in rows] == ["cancelled"]

        await eventually(expiry_cancelled)
        assert "approval.timed_out" not in await svc.driver.event_types(early)


class TestBurst:
    async def test_hundred_starts_at_once_worked_off_at_the_limit_in_due_order(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        limit = 40.0
        svc = await lifecycle_factory(IC_CALLS_PER_SECOND=limit)
        targets = [next(tuples) for _ in range(100)]
        base = utc_now() + timedelta(seconds=2)
        ids = []
        for i, target in enumerate(targets):
            start = base + timedelta(milliseconds=5 * i)
            ids.append(
                await svc.driver.approve(target, start=start, end=start + timedelta(hours=1))
            )
        await svc.driver.wait_event(ids[-1], "grant.scheduled")

        async def all_granted() -> None:
            rows = await svc.driver.fetch(
                "SELECT count(*) AS n FROM grant_record WHERE state = 'active'"
            )
            assert rows[0]["n"] == 100

        await eventually(all_granted, timeout=60, interval=0.5)
        failed = await svc.driver.fetch(
            "SELECT count(*) AS n FROM outbox_message WHERE payload->>'type' = 'grant.failed'"
        )
        assert failed[0]["n"] == 0
        calls = [c for c in svc.proxy.calls if "AccountAssignment" in c.operation]
        span = calls[-1].at - calls[0].at
        rate = (len(calls) - 1) / span
        # At the limit: never above it, and not far below it while the backlog lasts.
        assert rate <= limit * 1.05, rate
        assert rate >= limit * 0.8, rate
        # In due order: a create may only overtake one due earlier among those in flight at once.
        index = {
            (t.principal_id, t.account_id, t.permission_set_arn): i for i, t in enumerate(targets)
        }
        order = [
            index[(c.body["PrincipalId"], c.body["TargetId"], c.body["PermissionSetArn"])]
            for c in calls
            if c.operation == "CreateAccountAssignment"
        ]
        assert len(order) == 100
        slots = 10
        assert all(abs(position - due) <= slots for position, due in enumerate(order)), order
