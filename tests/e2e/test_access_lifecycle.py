"""End to end: the whole access lifecycle across the five live services, over HTTP only.

Every scenario of issue 8 runs concurrently against one stack (real timers, 1-minute windows),
in one module-scoped fixture; each test then reports one scenario's outcome, and the last tests
check what spans all of them: moto's assignments, the audit trail and the notifications.
The lifecycle service is SIGKILLed and restarted in the middle of it all.
"""

import asyncio
import csv
import hashlib
import hmac
import io
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from notify_service.routing import MACHINE_EVENT_TYPES
from tests.e2e.conftest import E2E, OPS_EMAIL, SNS_TOPIC_ARN
from tests.harness.wait import eventually

pytestmark = pytest.mark.timeout(600)

SUBMITTED = ("request.submitted",)
AUTO_GRANTED = ("request.submitted", "request.approved", "grant.scheduled", "access.granted")
CREATED = ("grant.provisioning", "access.granted")
APPROVED_GRANTED = (
    "request.submitted",
    "request.approval_recorded",
    "request.approved",
    "grant.scheduled",
    "access.granted",
)
REVOKED = ("request.revoke_requested", "access.ended")
STANDING = ("frank", "team-a-staging", "PowerUser")
FAILING = ("carol", "team-b-dev", "PowerUser")
DENIED_MESSAGE = (
    "User: arn:aws:sts::123456789012:assumed-role/team-lifecycle/e2e is not authorized to "
    "perform: sso:CreateAccountAssignment"
)

Notice = tuple[str, str, str]  # (event type, channel, recipient)
#: Lifecycle events whose person-facing texts need notify's copy of `request.submitted`.
LIFECYCLE_TYPES = frozenset({"grant.scheduled", "access.granted", "access.ended", "grant.failed"})


def needs_snapshot(notice: Notice) -> bool:
    """A person's notice of a lifecycle event (may overtake its request.submitted)."""
    event_type, channel, recipient = notice
    return (
        event_type in LIFECYCLE_TYPES and channel in ("email", "slack") and recipient != OPS_EMAIL
    )


@dataclass
class Tracked:
    """A request some scenario made, and what must be true of it afterwards."""

    scenario: str
    request_id: str
    status: str
    timeline: tuple[str, ...]
    notices: tuple[Notice, ...] = ()


@dataclass
class Run:
    """Everything the scenarios did; `failures` holds each failed scenario's exception."""

    e2e: E2E
    webhook_id: str = ""
    tracked: list[Tracked] = field(default_factory=list)
    failures: dict[str, BaseException] = field(default_factory=dict)
    seconds: float = 0.0

    def track(
        self,
        scenario: str,
        request: dict[str, Any],
        status: str,
        timeline: Iterable[str],
        notices: Iterable[Notice] = (),
    ) -> str:
        """Remember a request with its expected end state; return its id."""
        request_id = str(request["id"])
        self.tracked.append(Tracked(scenario, request_id, status, tuple(timeline), tuple(notices)))
        return request_id

    def email(self, user: str) -> str:
        """A demo person's address (their email and Slack DM recipient)."""
        return self.e2e.directory.emails[user]

    def to(self, user: str, *events: str, slack: bool = True) -> list[Notice]:
        """The email (and Slack DM) notices `user` must have received for `events`."""
        channels = ("email", "slack") if slack else ("email",)
        return [(event, channel, self.email(user)) for event in events for channel in channels]

    def outcome(self, scenario: str) -> None:
        """Re-raise the scenario's failure in the test that reports it."""
        assert any(t.scenario == scenario for t in self.tracked) or scenario in self.failures, (
            f"scenario {scenario} never ran"
        )
        if scenario in self.failures:
            raise self.failures[scenario]


def at(value: str) -> datetime:
    """An RFC 3339 time from the API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def until(timestamp: str, margin: float = 2.0) -> None:
    """Sleep until a wall-clock time has passed: real timers are what is under test here."""
    await asyncio.sleep(max(0.0, at(timestamp).timestamp() + margin - time.time()))


# -- scenarios ------------------------------------------------------------------------------------


async def auto_approved(run: Run) -> None:
    e = run.e2e
    request = await e.submit("alice", "team-a-dev", "ReadOnly", minutes=1)
    assert request["status"] == "approved", request
    assert request["auto_approved"] is True
    assert request["approval_deadline"] is None
    rid = run.track(
        "auto",
        request,
        "ended",
        (*AUTO_GRANTED, "access.ended"),
        run.to("alice", "grant.scheduled", "access.granted", "access.ended"),
    )
    active = await e.wait_status(rid, "in_progress", timeout=90)
    assert at(active["granted_at"]) >= at(active["start"])
    assert await e.assigned("alice", "team-a-dev", "ReadOnly")
    ended = await e.wait_status(rid, "ended", timeout=150)
    assert at(ended["ended_at"]) >= at(ended["end"]), "access removed before the window closed"
    assert at(ended["ended_at"]) - at(ended["end"]) < timedelta(seconds=90)
    assert not await e.assigned("alice", "team-a-dev", "ReadOnly")
    grant = await e.grant(rid)
    assert (grant["state"], grant["end_reason"], grant["assignment_action"]) == (
        "ended",
        "expired",
        "removed",
    )
    # A create in flight when lifecycle is SIGKILLed (the crash scenario runs meanwhile) stays
    # `started`/`in_progress` in the timeline: the re-run job finds the assignment and adopts it.
    calls = [(c["operation"], c["status"]) for c in grant["aws_calls"]]
    assert [op for op, _ in calls][:1] == ["create"], calls
    assert calls[-1] == ("delete", "succeeded"), calls
    assert not [c for c in calls if c[1] == "failed"], calls


async def approval_flow(run: Run) -> None:
    e = run.e2e
    request = await e.submit("alice", "team-a-prod", "ReadOnly", minutes=1)
    assert request["status"] == "pending", request
    assert {a["username"] for a in request["approvers"]} == {"bob", "carol"}
    assert request["approvals_needed"] == 1
    rid = run.track(
        "approval",
        request,
        "ended",
        (*APPROVED_GRANTED, "access.ended"),
        [
            *run.to("bob", "request.submitted", "request.approved"),
            *run.to("carol", "request.submitted"),
            *run.to("alice", "request.submitted", "request.approved", "access.granted"),
            *run.to("alice", "access.ended"),
        ],
    )
    inbox = await e.pages("request", "/v1/approvals", "bob")
    assert rid in {item["id"] for item in inbox}

    async def bob_was_told_on_slack() -> None:
        dms = [
            r
            for r in e.recorder.calls("/api/chat.postMessage", ok_only=True)
            if r.json()["channel"] == e.slack_ids["bob"] and rid in r.body.decode()
        ]
        assert dms, "no Slack DM to bob about the request yet"

    await eventually(bob_was_told_on_slack, timeout=60, interval=0.5)
    approved = await e.act("approve", rid, "bob")
    assert approved["status"] == "approved", approved
    assert [a["approver"] for a in approved["approvals"]] == ["bob"]
    await e.wait_status(rid, "in_progress", timeout=90)
    assert await e.assigned("alice", "team-a-prod", "ReadOnly")
    await e.wait_status(rid, "ended", timeout=150)
    assert not await e.assigned("alice", "team-a-prod", "ReadOnly")


async def reject(run: Run) -> None:
    e = run.e2e
    request = await e.submit("frank", "team-a-prod", "ReadOnly", minutes=1)
    rid = run.track(
        "reject",
        request,
        "rejected",
        ("request.submitted", "request.rejected"),
        run.to("frank", "request.rejected"),
    )
    rejected = await e.act("reject", rid, "carol")
    assert rejected["status"] == "rejected", rejected
    late = await e.act("approve", rid, "bob", expect=409)
    assert late["current_status"] == "rejected"
    await eventually(
        lambda: e.call("GET", "lifecycle", f"/v1/grants/{rid}", "dave", expect=404), timeout=90
    )
    assert not await e.assigned("frank", "team-a-prod", "ReadOnly")


async def cancel(run: Run) -> None:
    e = run.e2e
    pending = await e.submit("frank", "team-b-prod", "ReadOnly", minutes=1)
    pending_id = run.track(
        "cancel",
        pending,
        "cancelled",
        ("request.submitted", "request.cancelled"),
        [*run.to("frank", "request.cancelled"), *run.to("bob", "request.cancelled")],
    )
    cancelled = await e.act("cancel", pending_id, "frank")
    assert cancelled["status"] == "cancelled", cancelled

    later = await e.submit("alice", "shared-nonprod", "PowerUser", minutes=1, start_in=600)
    later_id = run.track(
        "cancel",
        later,
        "cancelled",
        ("request.submitted", "request.approved", "grant.scheduled", "request.cancelled"),
        run.to("alice", "grant.scheduled", "request.cancelled"),
    )
    await e.wait_status(later_id, "scheduled", timeout=90)
    cancelled = await e.act("cancel", later_id, "alice")
    assert cancelled["status"] == "cancelled", cancelled

    async def timers_cancelled() -> None:
        grant = await e.grant(later_id)
        assert grant["state"] == "cancelled", grant["state"]
        assert {t["state"] for t in grant["timers"]} == {"cancelled"}, grant["timers"]

    await eventually(timers_cancelled, timeout=90, interval=0.5)
    assert not await e.assigned("frank", "team-b-prod", "ReadOnly")
    assert not await e.assigned("alice", "shared-nonprod", "PowerUser")


async def pending_expiry(run: Run, request_id: str) -> None:
    e = run.e2e
    expired = await e.wait_status(request_id, "expired", timeout=150)
    assert expired["approvals"] == []
    late = await e.act("approve", request_id, "bob", expect=409)
    assert late["current_status"] == "expired"
    assert not await e.assigned("frank", "shared-prod", "ReadOnly")


async def revoke_early(
    run: Run,
    scenario: str,
    requester: str,
    account: str,
    permission_set: str,
    revoker: str,
    *,
    approver: str | None = None,
) -> None:
    e = run.e2e
    request = await e.submit(requester, account, permission_set, minutes=30)
    timeline = APPROVED_GRANTED if approver else AUTO_GRANTED
    rid = run.track(
        scenario,
        request,
        "revoked",
        (*timeline, *REVOKED),
        run.to(requester, "access.granted", "access.ended"),
    )
    if approver:
        await e.act("approve", rid, approver)
    await e.wait_status(rid, "in_progress", timeout=90)
    assert await e.assigned(requester, account, permission_set)
    # Nobody outside the request revokes it: the auditor reads, never changes.
    await e.act("revoke", rid, "erin", expect=403)
    answer = await e.act("revoke", rid, revoker)
    assert answer["revoke_requested_at"] is not None
    assert answer["status"] == "in_progress"  # until lifecycle confirms the removal
    revoked = await e.wait_status(rid, "revoked", timeout=90)
    assert at(revoked["ended_at"]) < at(revoked["end"])
    assert not await e.assigned(requester, account, permission_set)
    grant = await e.grant(rid)
    assert (grant["state"], grant["end_reason"], grant["assignment_action"]) == (
        "revoked",
        "revoked",
        "removed",
    )


async def quorum(run: Run) -> None:
    e = run.e2e
    request = await e.submit("alice", "team-b-prod", "Admin", minutes=1)
    assert request["approvals_needed"] == 2, request
    assert {a["username"] for a in request["approvers"]} == {"bob", "carol", "dave"}
    rid = run.track(
        "quorum",
        request,
        "ended",
        (
            "request.submitted",
            "request.approval_recorded",
            "request.approval_recorded",
            "request.approved",
            "grant.scheduled",
            "access.granted",
            "access.ended",
        ),
        [("request.approval_recorded", "email", run.email("alice"))],
    )
    first = await e.act("approve", rid, "bob")
    assert first["status"] == "pending", first
    assert set(first["pending_approvers"]) == {"carol", "dave"}
    again = await e.act("approve", rid, "bob", expect=409)
    assert again["type"].endswith("already-decided"), again
    second = await e.act("approve", rid, "dave")
    assert second["status"] == "approved", second
    assert sorted(a["approver"] for a in second["approvals"]) == ["bob", "dave"]
    await e.wait_status(rid, "in_progress", timeout=90)
    assert await e.assigned("alice", "team-b-prod", "Admin")
    await e.wait_status(rid, "ended", timeout=150)
    assert not await e.assigned("alice", "team-b-prod", "Admin")


async def self_approval(run: Run) -> None:
    e = run.e2e
    own = await e.submit("bob", "team-a-prod", "Admin", minutes=1)
    assert {a["username"] for a in own["approvers"]} == {"carol"}, own["approvers"]
    own_id = run.track("self", own, "cancelled", ("request.submitted", "request.cancelled"))
    refused = await e.act("approve", own_id, "bob", expect=403)
    assert refused["type"].endswith("self-approval"), refused
    # An admin who is also a named approver may not approve their own request either.
    admins = await e.submit("dave", "team-b-prod", "Admin", minutes=1)
    assert {a["username"] for a in admins["approvers"]} == {"bob", "carol"}
    admins_id = run.track("self", admins, "cancelled", ("request.submitted", "request.cancelled"))
    refused = await e.act("approve", admins_id, "dave", expect=403)
    assert refused["type"].endswith("self-approval"), refused
    for request_id in (own_id, admins_id):
        found = await e.request(request_id)
        assert (found["status"], found["approvals"]) == ("pending", [])
    await e.act("cancel", own_id, "bob")
    await e.act("cancel", admins_id, "dave")
    assert not await e.assigned("bob", "team-a-prod", "Admin")
    assert not await e.assigned("dave", "team-b-prod", "Admin")


async def overlapping(run: Run) -> None:
    e = run.e2e
    first, second = await asyncio.gather(
        e.submit("frank", "shared-nonprod", "ReadOnly", minutes=1),
        e.submit("frank", "shared-nonprod", "ReadOnly", minutes=30),
    )
    first_id = run.track("overlap", first, "ended", (*AUTO_GRANTED, "access.ended"))
    second_id = run.track("overlap", second, "revoked", (*AUTO_GRANTED, *REVOKED))
    await asyncio.gather(
        e.wait_status(first_id, "in_progress", timeout=90),
        e.wait_status(second_id, "in_progress", timeout=90),
    )
    starts = {(await e.grant(r))["assignment_action"] for r in (first_id, second_id)}
    assert starts == {"created", "already_assigned"}, starts
    await e.wait_status(first_id, "ended", timeout=150)
    assert (await e.grant(first_id))["assignment_action"] == "kept_for_other_grant"
    assert (await e.request(second_id))["status"] == "in_progress"
    assert await e.assigned("frank", "shared-nonprod", "ReadOnly"), "the first end removed access"
    await e.act("revoke", second_id, "frank")
    await e.wait_status(second_id, "revoked", timeout=90)
    assert (await e.grant(second_id))["assignment_action"] == "removed"
    assert not await e.assigned("frank", "shared-nonprod", "ReadOnly")


async def standing_access(run: Run) -> None:
    e = run.e2e
    assert await e.assigned(*STANDING), "the standing assignment is missing before the request"
    request = await e.submit(*STANDING, minutes=1)
    rid = run.track("standing", request, "ended", (*AUTO_GRANTED, "access.ended"))
    await e.wait_status(rid, "in_progress", timeout=90)
    assert (await e.grant(rid))["assignment_action"] == "already_assigned"
    await e.wait_status(rid, "ended", timeout=150)
    grant = await e.grant(rid)
    assert grant["assignment_action"] == "kept_standing_access", grant
    assert not [c for c in grant["aws_calls"] if c["operation"] == "delete"]
    assert await e.assigned(*STANDING), "standing access was removed"


async def aws_failure(run: Run) -> None:
    e = run.e2e
    request = await e.submit(*FAILING, minutes=1)
    rid = run.track(
        "aws_failure",
        request,
        "error",
        (*AUTO_GRANTED[:-1], "grant.failed"),
        [
            *run.to("carol", "grant.failed"),
            ("grant.failed", "email", OPS_EMAIL),
            ("grant.failed", "sns", SNS_TOPIC_ARN),
        ],
    )
    failed = await e.wait_status(rid, "error", timeout=90)
    assert "AccessDeniedException" in failed["status_reason"], failed["status_reason"]
    assert "not authorized to perform" in failed["status_reason"]
    grant = await e.grant(rid)
    assert (grant["state"], grant["error_kind"], grant["error_code"]) == (
        "error",
        "grant",
        "AccessDeniedException",
    )
    assert DENIED_MESSAGE in grant["error_message"]
    # Not retryable: one call, and the end timer is cancelled with the grant.
    fault = e.proxy.target_faults[(e.directory.users["carol"], e.directory.accounts["team-b-dev"])]
    assert fault.used == 1
    assert [(c["operation"], c["error_code"]) for c in grant["aws_calls"]] == [
        ("create", "AccessDeniedException")
    ], grant["aws_calls"]
    assert all(t["state"] != "pending" for t in grant["timers"]), grant["timers"]
    assert not await e.assigned(*FAILING)


async def lifecycle_crash(run: Run) -> None:
    e = run.e2e
    active, revoke_active, scheduled, revoke_scheduled = await asyncio.gather(
        e.submit("dave", "team-a-dev", "ReadOnly", minutes=1),
        e.submit("dave", "team-b-dev", "ReadOnly", minutes=30),
        e.submit("dave", "team-a-dev", "PowerUser", minutes=1, start_in=30),
        e.submit("dave", "team-a-staging", "ReadOnly", minutes=1, start_in=600),
    )
    ended = (*AUTO_GRANTED, "access.ended")
    active_id = run.track("crash", active, "ended", ended)
    revoke_active_id = run.track("crash", revoke_active, "revoked", (*AUTO_GRANTED, *REVOKED))
    scheduled_id = run.track("crash", scheduled, "ended", ended)
    revoke_scheduled_id = run.track(
        "crash",
        revoke_scheduled,
        "revoked",
        ("request.submitted", "request.approved", "grant.scheduled", *REVOKED),
    )
    await asyncio.gather(
        e.wait_status(active_id, "in_progress", timeout=60),
        e.wait_status(revoke_active_id, "in_progress", timeout=60),
        e.wait_status(scheduled_id, "scheduled", timeout=60),
        e.wait_status(revoke_scheduled_id, "scheduled", timeout=60),
    )
    assert time.time() < at(scheduled["start"]).timestamp() - 2, "too slow: the start came first"
    await asyncio.to_thread(e.stack.kill, "lifecycle")
    try:
        # Revokes asked while lifecycle is dead wait in Kafka; the scheduled start passes.
        await e.act("revoke", revoke_active_id, "dave")
        await e.act("revoke", revoke_scheduled_id, "dave")
        await until(scheduled["start"])
        assert (await e.request(scheduled_id))["status"] == "scheduled"
        assert (await e.request(revoke_active_id))["status"] == "in_progress"
        assert await e.assigned("dave", "team-b-dev", "ReadOnly")
    finally:
        await asyncio.to_thread(e.stack.restart, "lifecycle")
    await asyncio.gather(
        e.wait_status(revoke_active_id, "revoked", timeout=90),
        e.wait_status(revoke_scheduled_id, "revoked", timeout=90),
        e.wait_status(scheduled_id, "in_progress", timeout=90),
    )
    assert not await e.assigned("dave", "team-b-dev", "ReadOnly")
    assert (await e.grant(revoke_scheduled_id))["assignment_action"] == "not_granted"
    assert await e.assigned("dave", "team-a-dev", "PowerUser")
    await asyncio.gather(
        e.wait_status(active_id, "ended", timeout=150),
        e.wait_status(scheduled_id, "ended", timeout=150),
    )
    for permission_set in ("ReadOnly", "PowerUser"):
        assert not await e.assigned("dave", "team-a-dev", permission_set)
    assert not await e.assigned("dave", "team-a-staging", "ReadOnly")


# -- setup and the concurrent run ---------------------------------------------------------------


async def put_settings(e: E2E, **changes: Any) -> None:
    current = (await e.call("GET", "policy", "/v1/settings", "dave")).json()
    version = current.pop("version")
    for key in ("updated_at", "updated_by"):
        current.pop(key, None)
    await e.call(
        "PUT",
        "policy",
        "/v1/settings",
        "dave",
        json_body={**current, **changes},
        headers={"If-Match": f'"{version}"'},
    )


async def prepare(run: Run) -> str:
    """Channels, a webhook, the quorum policy, standing access, the fault, the expiring request."""
    e = run.e2e
    await put_settings(
        e,
        email_enabled=True,
        slack_enabled=True,
        webhooks_enabled=True,
        sns_enabled=True,
        sns_topic_arn=SNS_TOPIC_ARN,
        pending_expiry_minutes=1,
    )
    webhook = await e.call(
        "POST",
        "notify",
        "/v1/webhooks",
        "dave",
        json_body={"url": e.recorder.webhook_url("e2e"), "event_types": list(MACHINE_EVENT_TYPES)},
        expect=201,
    )
    run.webhook_id = webhook.json()["id"]
    e.webhook_secret = webhook.json()["secret"]
    users = e.directory.users
    await e.call(
        "POST",
        "policy",
        "/v1/approver-policies",
        "dave",
        json_body={
            "name": "e2e: team-b-prod Admin needs 2 of bob, carol, dave",
            "account_ids": [e.directory.accounts["team-b-prod"]],
            "permission_set_arns": [e.directory.permission_sets["Admin"]],
            "approver_user_ids": [users["bob"], users["carol"], users["dave"]],
            "approvals_needed": 2,
        },
        expect=201,
    )
    # The pending expiry is snapshotted at submit: only this request gets one minute.
    expiring = await e.submit("frank", "shared-prod", "ReadOnly", minutes=1)
    assert expiring["status"] == "pending", expiring
    deadline = at(expiring["approval_deadline"]) - at(expiring["requested_at"])
    assert abs(deadline - timedelta(minutes=1)) < timedelta(seconds=5), deadline
    await put_settings(e, pending_expiry_minutes=180)
    expiring_id = run.track(
        "expiry",
        expiring,
        "expired",
        ("request.submitted", "approval.timed_out", "request.expired"),
        run.to("frank", "request.expired"),
    )
    user, account, permission_set = STANDING
    await e.sso.create_account_assignment(
        InstanceArn=e.instance_arn,
        TargetId=e.directory.accounts[account],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=e.directory.permission_sets[permission_set],
        PrincipalType="USER",
        PrincipalId=users[user],
    )
    e.proxy.fail_target(
        users[FAILING[0]],
        e.directory.accounts[FAILING[1]],
        "AccessDeniedException",
        DENIED_MESSAGE + " on resource: arn:aws:sso:::instance",
    )
    return expiring_id


async def guarded(run: Run, name: str, scenario: Callable[[], Awaitable[None]]) -> None:
    try:
        await scenario()
    except Exception as exc:  # noqa: BLE001 - reported by the scenario's own test
        run.failures[name] = exc


@pytest.fixture(scope="module")
async def run(e2e: E2E) -> Run:
    """Prepare, then run every scenario at once (about two minutes of real timers)."""
    result = Run(e2e)
    started = time.monotonic()
    expiring_id = await prepare(result)
    scenarios: dict[str, Callable[[], Awaitable[None]]] = {
        "auto": lambda: auto_approved(result),
        "approval": lambda: approval_flow(result),
        "reject": lambda: reject(result),
        "cancel": lambda: cancel(result),
        "expiry": lambda: pending_expiry(result, expiring_id),
        "revoke_requester": lambda: revoke_early(
            result, "revoke_requester", "alice", "team-a-staging", "ReadOnly", "alice"
        ),
        "revoke_approver": lambda: revoke_early(
            result,
            "revoke_approver",
            "alice",
            "team-a-prod-data",
            "ReadOnly",
            "carol",
            approver="bob",
        ),
        "revoke_admin": lambda: revoke_early(
            result, "revoke_admin", "frank", "team-b-dev", "ReadOnly", "dave"
        ),
        "quorum": lambda: quorum(result),
        "self": lambda: self_approval(result),
        "overlap": lambda: overlapping(result),
        "standing": lambda: standing_access(result),
        "aws_failure": lambda: aws_failure(result),
        "crash": lambda: lifecycle_crash(result),
    }
    await asyncio.gather(*(guarded(result, name, s) for name, s in scenarios.items()))
    result.seconds = time.monotonic() - started
    return result


# -- one test per scenario ----------------------------------------------------------------------


def test_auto_approved_request_is_granted_at_start_and_removed_at_end(run: Run) -> None:
    run.outcome("auto")


def test_approval_flow_notifies_the_approver_grants_and_ends(run: Run) -> None:
    run.outcome("approval")


def test_rejected_request_is_never_granted(run: Run) -> None:
    run.outcome("reject")


def test_cancel_while_pending_and_while_scheduled(run: Run) -> None:
    run.outcome("cancel")


def test_pending_request_expires(run: Run) -> None:
    run.outcome("expiry")


def test_early_revoke_by_the_requester(run: Run) -> None:
    run.outcome("revoke_requester")


def test_early_revoke_by_an_approver(run: Run) -> None:
    run.outcome("revoke_approver")


def test_early_revoke_by_an_admin(run: Run) -> None:
    run.outcome("revoke_admin")


def test_quorum_of_two_of_three_approvers(run: Run) -> None:
    run.outcome("quorum")


def test_self_approval_is_refused_even_for_an_admin_approver(run: Run) -> None:
    run.outcome("self")


def test_the_first_of_two_overlapping_grants_ending_keeps_access_for_the_second(run: Run) -> None:
    run.outcome("overlap")


def test_standing_access_survives_a_grant_over_it(run: Run) -> None:
    run.outcome("standing")


def test_a_grant_failing_in_aws_ends_in_error_with_the_reason(run: Run) -> None:
    run.outcome("aws_failure")


def test_lifecycle_killed_while_grants_are_scheduled_and_active_still_revokes(run: Run) -> None:
    run.outcome("crash")


# -- across all scenarios -----------------------------------------------------------------------


async def test_moto_holds_exactly_the_expected_assignments(run: Run) -> None:
    e = run.e2e
    assert await e.all_assignments() == {STANDING}
    # The reconciler agrees: nothing to repair anywhere.
    await e.call("POST", "lifecycle", "/v1/reconciliations", "dave", expect=202)

    async def finished() -> dict[str, Any]:
        report: dict[str, Any] = (
            await e.call("GET", "lifecycle", "/v1/reconciliations/latest", "dave")
        ).json()
        assert report["status"] == "finished", report
        return report

    report = await eventually(finished, timeout=60, interval=0.5)
    assert (report["repairs"], report["errors"]) == ([], [])
    assert await e.all_assignments() == {STANDING}


def _subsequence(wanted: tuple[str, ...], types: list[str]) -> bool:
    remaining = iter(types)
    return all(any(t == w for t in remaining) for w in wanted)


async def test_audit_shows_every_timeline_exports_it_and_the_chain_verifies(run: Run) -> None:
    e = run.e2e
    assert run.tracked

    async def timeline(tracked: Tracked) -> None:
        async def complete() -> None:
            answer = await e.call(
                "GET", "audit", f"/v1/audit/requests/{tracked.request_id}", "erin"
            )
            body = answer.json()
            events = sorted(body["events"], key=lambda ev: (ev["time"], ev["position"]))
            types = [ev["type"] for ev in events]
            assert body["request"]["status"] == tracked.status, (tracked, body["request"])
            assert _subsequence(tracked.timeline, types), (tracked, types)
            assert all(ev["known"] and ev["subject"] == tracked.request_id for ev in events)

        await eventually(complete, timeout=60, interval=0.5)

    await asyncio.gather(*(timeline(t) for t in run.tracked))

    # The CSV, read by the ticketing integration (client credentials, scope team.audit.read).
    answer = await e.call("GET", "audit", "/v1/audit/requests.csv", "ticketing")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(answer.text))}
    for tracked in run.tracked:
        row = rows[tracked.request_id]
        assert row["status"] == tracked.status, row
        assert row["justification"] == "e2e: investigate an incident"
    verified = (await e.call("GET", "audit", "/v1/audit/verify", "erin")).json()
    assert verified["ok"] is True, verified
    assert verified["first_break"] is None
    assert verified["count"] >= sum(len(t.timeline) for t in run.tracked)
    # Requesters and admins do not read the trail.
    await e.call("GET", "audit", "/v1/audit/verify", "dave", expect=403)


async def test_every_notification_is_delivered_once(run: Run) -> None:
    e = run.e2e
    deliveries: dict[str, list[dict[str, Any]]] = {}

    async def settled(tracked: Tracked) -> None:
        async def done() -> None:
            items = await e.pages(
                "notify", "/v1/deliveries", "dave", request_id=tracked.request_id, limit=200
            )
            unsettled = [d for d in items if d["status"] in ("pending", "sending")]
            assert not unsettled, unsettled
            sent = {(d["event_type"], d["channel"], d["recipient"]) for d in items}
            missing = [n for n in tracked.notices if n not in sent and not needs_snapshot(n)]
            assert not missing, (tracked, missing)
            deliveries[tracked.request_id] = items

        await eventually(done, timeout=60, interval=0.5)

    await asyncio.gather(*(settled(t) for t in run.tracked))
    everything = [d for items in deliveries.values() for d in items]
    assert everything
    assert [d for d in everything if d["status"] != "sent"] == []
    keys = Counter((d["event_id"], d["channel"], d["recipient"]) for d in everything)
    assert [k for k, n in keys.items() if n > 1] == []
    assert all(d["attempts"] >= 1 and d["provider_ref"] for d in everything)

    # Webhooks: every machine-facing event of every request reached the receiver exactly once,
    # signed with the subscription's secret.
    posts = e.recorder.calls("/hooks/e2e", ok_only=True)
    received = Counter(p.headers["x-team-event-id"] for p in posts)
    for post in posts:
        timestamp = post.headers["x-team-timestamp"]
        expected = hmac.new(
            e.webhook_secret.encode(), timestamp.encode() + b"." + post.body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(post.headers["x-team-signature"], "sha256=" + expected)
    webhook_events = {d["event_id"] for d in everything if d["channel"] == "webhook"}
    assert {d["recipient"] for d in everything if d["channel"] == "webhook"} == {run.webhook_id}
    assert [eid for eid, n in received.items() if n > 1] == []
    assert webhook_events <= set(received)
    for tracked in run.tracked:
        trail = (
            await e.call("GET", "audit", f"/v1/audit/requests/{tracked.request_id}", "erin")
        ).json()["events"]
        machine = {ev["event_id"] for ev in trail if ev["type"] in MACHINE_EVENT_TYPES}
        assert machine <= webhook_events, (tracked, machine - webhook_events)

    # Slack: one chat.postMessage per sent Slack delivery, none repeated.
    slack_sent = [d for d in everything if d["channel"] == "slack"]
    slack_posts = e.recorder.calls("/api/chat.postMessage", ok_only=True)
    assert len(slack_posts) == len(slack_sent)
    assert len({d["provider_ref"] for d in slack_sent}) == len(slack_sent)
    assert len(slack_sent) > 0
    assert run.seconds < 240, f"the scenarios took {run.seconds:.0f} s"


async def test_people_hear_of_every_lifecycle_event(run: Run) -> None:
    e = run.e2e
    missing: list[tuple[str, Notice]] = []
    for tracked in run.tracked:
        items = await e.pages(
            "notify", "/v1/deliveries", "dave", request_id=tracked.request_id, limit=200
        )
        sent = {(d["event_type"], d["channel"], d["recipient"]) for d in items}
        missing += [(tracked.scenario, n) for n in tracked.notices if n not in sent]
    assert missing == []
