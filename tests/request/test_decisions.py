"""Approve, reject, cancel, revoke: quorum, separation of duties, live re-checks, roles."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.policy_stub import PolicyStub, user_id
from tests.request.conftest import RequestService, submit_body
from tests.request.lifecycle_events import deliver, granted, scheduled

NewPs = Callable[[], str]


async def submit(svc: RequestService, who: str, ps: str) -> dict[str, Any]:
    async with svc.client(who) as http:
        answer = await http.post("/v1/requests", json=submit_body(ps))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def act(
    svc: RequestService, who: str, request_id: str, action: str, body: Any = None, **kw: Any
) -> Any:
    async with svc.client(who, client=kw.get("client", False)) as http:
        return await http.post(f"/v1/requests/{request_id}/{action}", json=body)


class TestQuorum:
    async def test_two_of_three(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvers = {"bob", "carol", "dave"}
        policy_stub.approvals_needed = 2
        request = await submit(svc, "alice", new_ps())
        first = await act(svc, "bob", request["id"], "approve", {"comment": "ok"})
        assert first.status_code == 200
        assert first.json()["status"] == "pending"
        twice = await act(svc, "bob", request["id"], "approve")
        assert twice.status_code == 409
        second = await act(svc, "carol", request["id"], "approve")
        assert second.status_code == 200
        assert second.json()["status"] == "approved"
        assert second.json()["approved_at"] is not None
        third = await act(svc, "dave", request["id"], "approve")
        assert third.status_code == 409
        assert third.json()["current_status"] == "approved"

        events = await svc.outbox(request["id"])
        assert [e["type"] for e in events][2:] == [
            "request.approval_recorded",
            "request.approval_recorded",
            "request.status_changed",
            "request.approved",
        ]
        assert events[2]["data"]["approvals_so_far"] == 1
        assert events[2]["data"]["comment"] == "ok"
        assert events[3]["data"]["approvals_so_far"] == 2
        approved = events[-1]["data"]
        assert [a["username"] for a in approved["approved_by"]] == ["bob", "carol"]
        assert approved["approved_by"][0]["user_id"] == user_id("bob")
        assert approved["auto"] is False
        assert approved["principal_id"] == user_id("alice")

    async def test_one_rejection_rejects(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvals_needed = 2
        request = await submit(svc, "alice", new_ps())
        assert (await act(svc, "bob", request["id"], "approve")).status_code == 200
        rejected = await act(svc, "carol", request["id"], "reject", {"comment": "not now"})
        assert rejected.status_code == 200
        assert rejected.json()["status"] == "rejected"
        events = await svc.outbox(request["id"])
        assert [e["type"] for e in events][-2:] == ["request.status_changed", "request.rejected"]
        assert events[-1]["data"]["by"]["username"] == "carol"
        assert events[-1]["data"]["comment"] == "not now"
        assert (await act(svc, "bob", request["id"], "reject")).status_code == 409

    async def test_comment_required_by_settings(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.settings = policy_stub.settings.model_copy(update={"comments_required": True})
        request = await submit(svc, "alice", new_ps())
        missing = await act(svc, "bob", request["id"], "approve")
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["loc"] == [
            "body",
            "comment",
        ]
        assert (await act(svc, "bob", request["id"], "approve", {"comment": "fine"})).json()[
            "status"
        ] == "approved"


class TestSeparationOfDuties:
    async def test_admin_approver_cannot_approve_own(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvers = {"bob", "dave"}  # dave: admin *and* approver
        request = await submit(svc, "dave", new_ps())
        for action in ("approve", "reject"):
            answer = await act(svc, "dave", request["id"], action)
            assert answer.status_code == 403
            assert "your own request" in answer.json()["detail"]
        assert policy_stub.approver_checks == []  # refused before any policy call
        assert (await act(svc, "bob", request["id"], "approve")).json()["status"] == "approved"

    async def test_integration_cannot_self_approve_for_requester(
        self, svc: RequestService, new_ps: NewPs
    ) -> None:
        request = await submit(svc, "alice", new_ps())
        relayed = await act(
            svc, "ticketing", request["id"], "approve", {"on_behalf_of": "alice"}, client=True
        )
        assert relayed.status_code == 403

    async def test_live_recheck_after_approver_left(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approvals_needed = 2
        policy_stub.approvers = {"bob", "carol", "dave"}
        request = await submit(svc, "alice", new_ps())
        policy_stub.approvers = {"carol", "dave"}  # bob left the approver group
        answer = await act(svc, "bob", request["id"], "approve")
        assert answer.status_code == 403
        assert "not in the approver group" in answer.json()["detail"]
        check = policy_stub.approver_checks[-1]
        assert check.approver == "bob"
        assert check.requester == user_id("alice")
        async with svc.client("alice") as alice:
            shown = (await alice.get(f"/v1/requests/{request['id']}")).json()
        assert shown["approvals"] == []
        assert shown["status"] == "pending"

    async def test_integration_relays_a_real_approvers_decision(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        request = await submit(svc, "alice", new_ps())
        nobody = await act(svc, "ticketing", request["id"], "approve", {}, client=True)
        assert nobody.status_code == 422
        not_approver = await act(
            svc, "ticketing", request["id"], "approve", {"on_behalf_of": "erin"}, client=True
        )
        assert not_approver.status_code == 404  # erin could neither see nor decide it
        relayed = await act(
            svc, "ticketing", request["id"], "approve", {"on_behalf_of": "bob"}, client=True
        )
        assert relayed.status_code == 200
        assert relayed.json()["status"] == "approved"
        decision = relayed.json()["approvals"][0]
        assert decision["approver"] == "bob"
        assert decision["client_id"] == "ticketing"
        approved = (await svc.outbox(request["id"]))[-1]["data"]
        assert approved["approved_by"][0]["client_id"] == "ticketing"

    async def test_policy_down_at_decision_time_changes_nothing(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        request = await submit(svc, "alice", new_ps())
        policy_stub.down = True
        answer = await act(svc, "bob", request["id"], "approve")
        assert answer.status_code == 503
        policy_stub.down = False
        assert (await act(svc, "bob", request["id"], "approve")).json()["status"] == "approved"


class TestCancelRevoke:
    async def test_cancel_pending_by_requester_only(
        self, svc: RequestService, new_ps: NewPs
    ) -> None:
        request = await submit(svc, "alice", new_ps())
        assert (await act(svc, "bob", request["id"], "cancel")).status_code == 403
        answer = await act(svc, "alice", request["id"], "cancel", {"comment": "not needed"})
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelled"
        events = await svc.outbox(request["id"])
        assert [e["type"] for e in events][-2:] == ["request.status_changed", "request.cancelled"]
        assert events[-1]["data"]["comment"] == "not needed"
        again = await act(svc, "alice", request["id"], "cancel")
        assert again.status_code == 409
        assert again.json()["current_status"] == "cancelled"

    async def test_cancel_scheduled_and_revoke_running(
        self, svc: RequestService, policy_stub: PolicyStub, new_ps: NewPs
    ) -> None:
        policy_stub.approval_required = False
        one = await submit(svc, "alice", new_ps())
        await deliver(svc, scheduled(one), expect="scheduled")
        assert (await act(svc, "alice", one["id"], "cancel")).json()["status"] == "cancelled"

        two = await submit(svc, "alice", new_ps())
        await deliver(svc, scheduled(two), expect="scheduled")
        await deliver(svc, granted(two), expect="in_progress")
        cancel = await act(svc, "alice", two["id"], "cancel")
        assert cancel.status_code == 409
        assert "revoke it instead" in cancel.json()["detail"]
        revoke = await act(svc, "alice", two["id"], "revoke", {"comment": "done early"})
        assert revoke.status_code == 200
        assert revoke.json()["status"] == "in_progress"  # until lifecycle confirms
        assert revoke.json()["revoke_requested_at"] is not None
        again = await act(svc, "dave", two["id"], "revoke")
        assert again.status_code == 409
        event = (await svc.outbox(two["id"]))[-1]
        assert event["type"] == "request.revoke_requested"
        assert event["data"]["role"] == "requester"
        assert event["data"]["principal_id"] == user_id("alice")
        assert event["data"]["permission_set_arn"] == two["permission_set"]["arn"]

    async def test_revoke_pending_is_409(self, svc: RequestService, new_ps: NewPs) -> None:
        request = await submit(svc, "alice", new_ps())
        answer = await act(svc, "alice", request["id"], "revoke")
        assert answer.status_code == 409
        assert answer.json()["current_status"] == "pending"
        assert "cancel it instead" in answer.json()["detail"]


# -- role by endpoint -------------------------------------------------------------------------
# Who may do what on alice's request (bob and carol approve it; dave is admin, erin auditor,
# frank an unrelated user; "ticketing" an integration that did not submit it).
# Expected: status code for each action from the state each row names.
TABLE: list[tuple[str, str, str, int]] = [
    # (caller, action, from status, expected)
    ("alice", "get", "pending", 200),
    ("bob", "get", "pending", 200),
    ("dave", "get", "pending", 200),
    ("erin", "get", "pending", 200),
    ("frank", "get", "pending", 404),
    ("ticketing", "get", "pending", 404),
    ("alice", "cancel", "pending", 200),
    ("dave", "cancel", "pending", 200),
    ("bob", "cancel", "pending", 403),
    ("erin", "cancel", "pending", 403),
    ("frank", "cancel", "pending", 404),
    ("bob", "approve", "pending", 200),
    ("alice", "approve", "pending", 403),
    ("dave", "approve", "pending", 403),
    ("erin", "approve", "pending", 403),
    ("frank", "approve", "pending", 404),
    ("ticketing", "approve", "pending", 422),
    ("carol", "reject", "pending", 200),
    ("alice", "reject", "pending", 403),
    ("erin", "reject", "pending", 403),
    ("alice", "revoke", "in_progress", 200),
    ("bob", "revoke", "in_progress", 200),
    ("dave", "revoke", "in_progress", 200),
    ("erin", "revoke", "in_progress", 403),
    ("frank", "revoke", "in_progress", 404),
    ("ticketing", "revoke", "in_progress", 404),
]


@pytest.mark.parametrize(("caller", "action", "status", "expected"), TABLE)
async def test_authorization_table(
    svc: RequestService,
    policy_stub: PolicyStub,
    new_ps: NewPs,
    caller: str,
    action: str,
    status: str,
    expected: int,
) -> None:
    request = await submit(svc, "alice", new_ps())
    if status == "in_progress":
        assert (await act(svc, "bob", request["id"], "approve")).status_code == 200
        await deliver(svc, scheduled(request), expect="scheduled")
        await deliver(svc, granted(request), expect="in_progress")
    is_client = caller == "ticketing"
    async with svc.client(caller, client=is_client) as http:
        if action == "get":
            answer = await http.get(f"/v1/requests/{request['id']}")
        else:
            answer = await http.post(f"/v1/requests/{request['id']}/{action}", json={})
    assert answer.status_code == expected, answer.text
    if expected >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
