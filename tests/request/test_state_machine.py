"""The pure rules: unit cases plus a hypothesis state machine over random commands and facts."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from request_service import state_machine as sm
from request_service.errors import AlreadyDecided, InvalidTransition, NotAnApprover, SelfApproval
from request_service.state_machine import Fact, Snapshot
from teamkit.events.common import RequestStatus as S

PEOPLE = ["alice", "bob", "carol", "dave", "erin"]


def pending(needed: int = 2, requester: str = "alice") -> Snapshot:
    return Snapshot(status=S.PENDING, requester=requester, approvals_needed=needed)


class TestTables:
    def test_every_status_has_a_row_and_terminals_are_dead_ends(self) -> None:
        assert set(sm.ALLOWED) == set(S)
        for status in sm.TERMINAL:
            assert sm.ALLOWED[status] == frozenset()

    def test_fact_moves_are_allowed_moves(self) -> None:
        for sources, target in sm.FACT_MOVES.values():
            for source in sources:
                assert sm.can_move(source, target), (source, target)


class TestApprove:
    def test_quorum_two_of_three(self) -> None:
        one = sm.approve(pending(2), "bob", eligible=True)
        assert one.status is S.PENDING
        assert one.approvals == {"bob"}
        two = sm.approve(one, "carol", eligible=True)
        assert two.status is S.APPROVED
        with pytest.raises(InvalidTransition) as late:
            sm.approve(two, "dave", eligible=True)
        assert late.value.current_status == "approved"

    def test_self_approval_refused_first(self) -> None:
        with pytest.raises(SelfApproval):
            sm.approve(pending(), "alice", eligible=True)
        done = Snapshot(status=S.EXPIRED, requester="alice", approvals_needed=1)
        with pytest.raises(SelfApproval):
            sm.reject(done, "alice", eligible=True)

    def test_ineligible_and_twice(self) -> None:
        with pytest.raises(NotAnApprover):
            sm.approve(pending(), "erin", eligible=False)
        once = sm.approve(pending(2), "bob", eligible=True)
        with pytest.raises(AlreadyDecided):
            sm.approve(once, "bob", eligible=True)
        with pytest.raises(AlreadyDecided):
            sm.reject(once, "bob", eligible=True)

    def test_one_rejection_rejects(self) -> None:
        once = sm.approve(pending(3), "bob", eligible=True)
        assert sm.reject(once, "carol", eligible=True).status is S.REJECTED


class TestCancelRevokeFacts:
    def test_cancel_only_pending_or_scheduled(self) -> None:
        assert sm.cancel(pending()).status is S.CANCELLED
        scheduled = Snapshot(status=S.SCHEDULED, requester="a", approvals_needed=0)
        assert sm.cancel(scheduled).status is S.CANCELLED
        running = Snapshot(status=S.IN_PROGRESS, requester="a", approvals_needed=0)
        with pytest.raises(InvalidTransition, match="revoke it instead"):
            sm.cancel(running)

    def test_revoke_once(self) -> None:
        running = Snapshot(status=S.IN_PROGRESS, requester="a", approvals_needed=0)
        asked = sm.request_revoke(running)
        assert asked.revoke_requested
        assert asked.status is S.IN_PROGRESS
        with pytest.raises(InvalidTransition):
            sm.request_revoke(asked)
        with pytest.raises(InvalidTransition, match="cancel it instead"):
            sm.request_revoke(pending())

    def test_timeout_only_when_pending(self) -> None:
        assert sm.apply_fact(pending(), Fact.APPROVAL_TIMED_OUT) == pending().__class__(
            status=S.EXPIRED, requester="alice", approvals_needed=2
        )
        approved = Snapshot(status=S.APPROVED, requester="a", approvals_needed=1)
        assert sm.apply_fact(approved, Fact.APPROVAL_TIMED_OUT) is None

    def test_duplicate_and_late_facts_change_nothing(self) -> None:
        running = Snapshot(status=S.IN_PROGRESS, requester="a", approvals_needed=0)
        assert sm.apply_fact(running, Fact.GRANT_SCHEDULED) is None
        assert sm.apply_fact(running, Fact.ACCESS_GRANTED) is None
        ended = Snapshot(status=S.ENDED, requester="a", approvals_needed=0)
        for fact in Fact:
            assert sm.apply_fact(ended, fact) is None


class RequestLifecycle(RuleBasedStateMachine):
    """Random commands and lifecycle facts against one request; invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.state = pending(needed=2)
        self.eligible = {"bob", "carol", "dave"}
        self.history: list[S] = [S.PENDING]
        self.approvers_seen: set[str] = set()

    def _record(self, new: Snapshot | None) -> None:
        if new is None:
            return
        if new.status != self.state.status:
            assert sm.can_move(self.state.status, new.status)
            self.history.append(new.status)
        self.state = new

    @rule(who=st.sampled_from(PEOPLE), approve=st.booleans())
    def decide(self, who: str, approve: bool) -> None:
        eligible = who in self.eligible
        before = self.state
        try:
            new = (
                sm.approve(before, who, eligible=eligible)
                if approve
                else sm.reject(before, who, eligible=eligible)
            )
        except SelfApproval:
            assert who == before.requester
            return
        except NotAnApprover:
            assert not eligible
            return
        except InvalidTransition:
            assert before.status is not S.PENDING
            return
        except AlreadyDecided:
            assert who in before.approvals
            return
        assert who != before.requester
        assert eligible
        assert before.status is S.PENDING
        if approve:
            self.approvers_seen.add(who)
        self._record(new)

    @rule(who=st.sampled_from(PEOPLE))
    def leave_group(self, who: str) -> None:
        self.eligible.discard(who)

    @rule()
    def cancel(self) -> None:
        try:
            self._record(sm.cancel(self.state))
        except InvalidTransition:
            assert self.state.status not in sm.CANCELLABLE

    @rule()
    def revoke(self) -> None:
        try:
            self._record(sm.request_revoke(self.state))
        except InvalidTransition:
            assert self.state.status not in sm.REVOCABLE or self.state.revoke_requested

    @rule(fact=st.sampled_from(list(Fact)))
    def lifecycle(self, fact: Fact) -> None:
        self._record(sm.apply_fact(self.state, fact))

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        terminal_at = [i for i, s in enumerate(self.history) if s in sm.TERMINAL]
        if terminal_at:
            assert terminal_at[0] == len(self.history) - 1

    @invariant()
    def approvals_only_from_eligible_non_requesters(self) -> None:
        assert self.state.requester not in self.state.approvals
        assert self.state.approvals <= self.approvers_seen

    @invariant()
    def quorum_respected(self) -> None:
        if S.APPROVED in self.history:
            at = self.history.index(S.APPROVED)
            assert self.history[at - 1] is S.PENDING
            assert len(self.state.approvals) >= self.state.approvals_needed
        if self.state.status is S.PENDING:
            assert len(self.state.approvals) < self.state.approvals_needed


RequestLifecycle.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
TestRequestLifecycle = RequestLifecycle.TestCase
