"""Grant and revoke through Kafka, Identity Center (moto behind the fault proxy) and the ledger."""

from collections.abc import Iterator
from typing import Any

from lifecycle_service.repository import Tuple
from tests.harness.wait import eventually
from tests.lifecycle.conftest import (
    moto_assigned,
    moto_create,
    window,
)


class TestGrantPolling:
    async def test_polls_in_progress_to_succeeded_then_removes_at_end(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        svc.proxy.in_progress(3)
        start, end = window(0.5, 3.0)
        request_id = await svc.driver.approve(target, start=start, end=end)

        granted = await svc.driver.wait_event(request_id, "access.granted")
        assert granted["data"]["assignment_action"] == "created"
        assert granted["data"]["aws_request_id"]
        assert await moto_assigned(svc.moto_url, target) == 1
        # Three IN_PROGRESS polls, then the real SUCCEEDED answer.
        polls = svc.proxy.count("DescribeAccountAssignmentCreationStatus")
        assert polls >= 4
        ended = await svc.driver.wait_event(request_id, "access.ended")
        assert ended["data"]["reason"] == "expired"
        assert ended["data"]["assignment_action"] == "removed"
        assert await moto_assigned(svc.moto_url, target) == 0
        types = await svc.driver.event_types(request_id)
        assert types == ["grant.scheduled", "grant.provisioning", "access.granted", "access.ended"]
        # The end comes from the approved window, not from when the grant was confirmed.
        assert granted["data"]["end"].startswith(end.isoformat()[:19])

    async def test_polls_to_failed_surfaces_aws_reason(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        svc.proxy.in_progress(2, then="failed", reason="Permission set not provisioned: boom")
        start, end = window(0.2, 30.0)
        request_id = await svc.driver.approve(target, start=start, end=end)

        failed = await svc.driver.wait_event(request_id, "grant.failed")
        assert failed["data"]["error_message"] == "Permission set not provisioned: boom"
        assert failed["data"]["aws_request_id"]
        assert await svc.driver.state(request_id) == "error"
        assert await moto_assigned(svc.moto_url, target) == 0
        timers = await svc.driver.fetch(
            "SELECT kind, state FROM timer WHERE request_id = $1 ORDER BY id", request_id
        )
        assert [(t["kind"], t["state"]) for t in timers] == [
            ("start", "done"),
            ("end", "cancelled"),
        ]


class TestErrors:
    async def test_non_retryable_error_fails_at_once(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        svc.proxy.fail(
            "CreateAccountAssignment", "ValidationException", message="PrincipalId is invalid"
        )
        start, end = window(0.2, 30.0)
        request_id = await svc.driver.approve(target, start=start, end=end)

        failed = await svc.driver.wait_event(request_id, "grant.failed")
        assert failed["data"]["error_code"] == "ValidationException"
        assert failed["data"]["error_message"] == "PrincipalId is invalid"
        assert failed["data"]["retryable"] is False
        assert failed["data"]["attempts"] == 1
        assert svc.proxy.count("CreateAccountAssignment") == 1

    async def test_throttling_storm_is_absorbed(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        targets = [next(tuples) for _ in range(8)]
        svc.proxy.fail("CreateAccountAssignment", "ThrottlingException", times=12)
        svc.proxy.fail("ListAccountAssignments", "ConflictException", times=4)
        svc.proxy.fail(
            "DescribeAccountAssignmentCreationStatus",
            "InternalServerException",
            status=500,
            times=4,
        )
        start, end = window(0.3, 60.0)
        ids = [await svc.driver.approve(t, start=start, end=end) for t in targets]

        for request_id in ids:
            granted = await svc.driver.wait_event(request_id, "access.granted", timeout=60)
            assert granted["data"]["assignment_action"] == "created"
        for request_id in ids:
            assert "grant.failed" not in await svc.driver.event_types(request_id)
        for target in targets:
            assert await moto_assigned(svc.moto_url, target) == 1
        assert svc.proxy.count("CreateAccountAssignment", status=400) == 12


class TestLedger:
    async def test_overlapping_grants_keep_the_assignment(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        first = await svc.driver.approve(target, start=window(0.2, 0)[0], end=window(2.5, 0)[0])
        second = await svc.driver.approve(target, start=window(0.6, 0)[0], end=window(5.0, 0)[0])

        assert (await svc.driver.wait_event(first, "access.granted"))["data"][
            "assignment_action"
        ] == "created"
        assert (await svc.driver.wait_event(second, "access.granted"))["data"][
            "assignment_action"
        ] == "already_assigned"
        ended = await svc.driver.wait_event(first, "access.ended")
        assert ended["data"]["assignment_action"] == "kept_for_other_grant"
        assert await moto_assigned(svc.moto_url, target) == 1
        ended = await svc.driver.wait_event(second, "access.ended")
        assert ended["data"]["assignment_action"] == "removed"
        assert await moto_assigned(svc.moto_url, target) == 0
        assert svc.proxy.count("CreateAccountAssignment") == 1
        assert svc.proxy.count("DeleteAccountAssignment") == 1

    async def test_standing_access_is_never_deleted(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        await moto_create(svc.moto_url, target)
        start, end = window(0.2, 1.5)
        request_id = await svc.driver.approve(target, start=start, end=end)

        granted = await svc.driver.wait_event(request_id, "access.granted")
        assert granted["data"]["assignment_action"] == "already_assigned"
        assert granted["data"]["aws_request_id"] is None
        ended = await svc.driver.wait_event(request_id, "access.ended")
        assert ended["data"]["assignment_action"] == "kept_standing_access"
        assert await moto_assigned(svc.moto_url, target) == 1
        assert svc.proxy.count("CreateAccountAssignment") == 0
        assert svc.proxy.count("DeleteAccountAssignment") == 0


class TestRevoke:
    async def test_revoke_of_scheduled_grant_needs_no_aws_call(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        start, end = window(60.0, 60.0)
        request_id = await svc.driver.approve(target, start=start, end=end)
        await svc.driver.wait_event(request_id, "grant.scheduled")
        await svc.driver.revoke(request_id, target)

        ended = await svc.driver.wait_event(request_id, "access.ended")
        assert ended["data"]["reason"] == "revoked"
        assert ended["data"]["assignment_action"] == "not_granted"
        assert ended["data"]["revoked_by"]["username"] == "admin"
        assert await svc.driver.state(request_id) == "revoked"
        assert not [c for c in svc.proxy.calls if "AccountAssignment" in c.operation]
        pending = await svc.driver.fetch(
            "SELECT count(*) AS n FROM timer WHERE request_id = $1 AND state = 'pending'",
            request_id,
        )
        assert pending[0]["n"] == 0

    async def test_revoke_of_active_grant_removes_it_now(
        self, lifecycle_factory: Any, tuples: Iterator[Tuple]
    ) -> None:
        svc = await lifecycle_factory()
        target = next(tuples)
        start, end = window(0.2, 300.0)
        request_id = await svc.driver.approve(target, start=start, end=end)
        await svc.driver.wait_event(request_id, "access.granted")
        assert await moto_assigned(svc.moto_url, target) == 1
        await svc.driver.revoke(request_id, target)

        ended = await svc.driver.wait_event(request_id, "access.ended")
        assert ended["data"]["reason"] == "revoked"
        assert ended["data"]["assignment_action"] == "removed"
        assert ended["data"]["aws_request_id"]
        assert await moto_assigned(svc.moto_url, target) == 0

        async def end_timer_cancelled() -> None:
            rows = await svc.driver.fetch(
                "SELECT state FROM timer WHERE request_id = $1 AND kind = 'end'", request_id
            )
            assert [r["state"] for r in rows] == ["cancelled"]

        await eventually(end_timer_cancelled)
