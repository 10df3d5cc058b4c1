"""The pure merge rules (no I/O): matching, merging and approver resolution."""

import pytest

from policy_service.evaluation import (
    Account,
    ApproverRule,
    EligibilityRule,
    PermissionSet,
    User,
    covers_account,
    entitlements_for,
    evaluate,
    merge,
)
from policy_service.schemas import PolicySettings
from teamkit.contracts.policy import EvaluationDecision, EvaluationRequest

ROOT, TOP, MID, LEAF = "r-root", "ou-top", "ou-mid", "ou-leaf"
LEAF_ACCOUNT = Account("111111111111", "leaf", LEAF, (ROOT, TOP, MID, LEAF))
MID_ACCOUNT = Account("222222222222", "mid", MID, (ROOT, TOP, MID))
RO = PermissionSet("arn:ro", "ReadOnly", 60)
ADMIN = PermissionSet("arn:admin", "Admin", 120)
ALICE = User("u-alice", "alice", "alice@example.com", frozenset({"g-users"}))
BOB = User("u-bob", "bob", "bob@example.com", frozenset({"g-approvers"}))
CAROL = User("u-carol", "carol", None, frozenset({"g-approvers"}))
USERS = {u.id: u for u in (ALICE, BOB, CAROL)}
MEMBERS = {"g-approvers": {"u-bob", "u-carol"}, "g-users": {"u-alice"}}
DEFAULTS = PolicySettings(ticket_required=False)


def rule(id_: str, **kw: object) -> EligibilityRule:
    values: dict[str, object] = {
        "permission_set_arns": frozenset({RO.arn}),
        "max_duration_minutes": 60,
        "group_ids": frozenset({"g-users"}),
        "ou_ids": frozenset({TOP}),
    }
    values.update(kw)
    return EligibilityRule(id=id_, **values)  # type: ignore[arg-type]


def decide(
    rules: list[EligibilityRule],
    approvers: list[ApproverRule],
    *,
    account: Account = LEAF_ACCOUNT,
    permission_set: PermissionSet = RO,
    user: User = ALICE,
    settings: PolicySettings = DEFAULTS,
    minutes: int = 30,
    ticket: str | None = None,
) -> EvaluationDecision:
    return evaluate(
        request=EvaluationRequest(
            user=user.username,
            account_id=account.id,
            permission_set=permission_set.arn,
            duration_minutes=minutes,
            ticket=ticket,
        ),
        user=user,
        account=account,
        permission_set=permission_set,
        eligibility_rules=rules,
        approver_rules=approvers,
        group_members=MEMBERS,
        users_by_id=USERS,
        settings=settings,
    )


class TestCoverage:
    def test_ou_covers_every_depth_unless_direct_children_only(self) -> None:
        assert covers_account(frozenset(), frozenset({TOP}), LEAF_ACCOUNT)
        assert covers_account(frozenset(), frozenset({ROOT}), LEAF_ACCOUNT)
        assert not covers_account(
            frozenset(), frozenset({TOP}), LEAF_ACCOUNT, direct_children_only=True
        )
        assert covers_account(
            frozenset(), frozenset({LEAF}), LEAF_ACCOUNT, direct_children_only=True
        )
        assert covers_account(frozenset({LEAF_ACCOUNT.id}), frozenset(), LEAF_ACCOUNT)
        assert not covers_account(frozenset(), frozenset({LEAF}), MID_ACCOUNT)


class TestMerge:
    def test_max_duration_is_the_largest_capped_by_the_global_max(self) -> None:
        limits = merge(
            [rule("a", max_duration_minutes=60), rule("b", max_duration_minutes=300)], DEFAULTS
        )
        assert limits.max_duration_minutes == 300
        capped = merge(
            [rule("b", max_duration_minutes=300)],
            PolicySettings(max_duration_minutes=120, default_duration_minutes=60),
        )
        assert capped.max_duration_minutes == 120

    @pytest.mark.parametrize(
        ("workflow", "waiver_allowed", "waives", "required"),
        [
            (True, True, [True, False], False),  # one matching policy waives: waived
            (True, True, [True, True], True),
            (True, False, [False], True),  # the global switch forbids waiving
            (False, True, [True], False),  # workflow off: nothing needs approval
        ],
    )
    def test_approval_required_unless_waived_and_waiving_allowed(
        self, workflow: bool, waiver_allowed: bool, waives: list[bool], required: bool
    ) -> None:
        settings = PolicySettings(
            approval_workflow_enabled=workflow, approval_waiver_allowed=waiver_allowed
        )
        rules = [rule(str(i), approval_required=r) for i, r in enumerate(waives)]
        assert merge(rules, settings).approval_required is required

    def test_ticket_required_by_settings_or_every_matching_policy(self) -> None:
        both = [rule("a", ticket_required=True), rule("b", ticket_required=True)]
        one = [rule("a", ticket_required=True), rule("b")]
        assert merge(both, DEFAULTS).ticket_required
        assert not merge(one, DEFAULTS).ticket_required
        assert merge(one, PolicySettings()).ticket_required  # global default: required

    def test_justification_must_match_one_pattern_unless_a_policy_has_none(self) -> None:
        assert (
            merge(
                [rule("a", justification_pattern="x"), rule("b")], DEFAULTS
            ).justification_patterns
            is None
        )
        assert merge([rule("a", justification_pattern="x")], DEFAULTS).justification_patterns == (
            "x",
        )

    def test_quorum_is_the_largest_of_matching_policies(self) -> None:
        approvers = [
            ApproverRule(
                "p1",
                ou_ids=frozenset({TOP}),
                group_ids=frozenset({"g-approvers"}),
                approvals_needed=2,
            ),
            ApproverRule(
                "p2", account_ids=frozenset({LEAF_ACCOUNT.id}), user_ids=frozenset({"u-alice"})
            ),
        ]
        decision = decide(
            [rule("a", approvals_needed=1)],
            approvers,
            user=User("u-x", "x", None, frozenset({"g-users"})),
        )
        assert decision.allowed, decision.reasons
        assert decision.approvals_needed == 2
        assert [a.username for a in decision.approvers] == ["alice", "bob", "carol"]


class TestDecision:
    def test_not_eligible_lists_every_reason(self) -> None:
        decision = decide(
            [rule("a", permission_set_arns=frozenset({"arn:other"}))],
            [],
            minutes=10_000,
            ticket=None,
            settings=PolicySettings(max_concurrent_grants=None),
        )
        assert {r.code for r in decision.reasons} == {
            "not_eligible",
            "duration_above_max",
            "ticket_missing",
        }
        assert not decision.allowed

    def test_requester_excluded_and_no_approver_is_a_denial(self) -> None:
        approvers = [ApproverRule("p", ou_ids=frozenset({ROOT}), user_ids=frozenset({"u-alice"}))]
        own = decide([rule("a")], approvers)
        assert [r.code for r in own.reasons] == ["no_approver"]
        assert own.approvers == []

    def test_permission_set_scope_of_approver_policies(self) -> None:
        approvers = [
            ApproverRule(
                "p",
                ou_ids=frozenset({MID}),
                permission_set_arns=frozenset({ADMIN.arn}),
                user_ids=frozenset({"u-bob"}),
            ),
            ApproverRule("q", ou_ids=frozenset({MID}), user_ids=frozenset({"u-carol"})),
        ]
        rules = [rule("a", permission_set_arns=frozenset({RO.arn, ADMIN.arn}))]
        assert [a.username for a in decide(rules, approvers).approvers] == ["carol"]
        assert [a.username for a in decide(rules, approvers, permission_set=ADMIN).approvers] == [
            "bob",
            "carol",
        ]

    def test_user_named_directly_matches(self) -> None:
        direct = rule(
            "a", group_ids=frozenset(), user_ids=frozenset({"u-alice"}), approval_required=False
        )
        assert decide([direct], []).allowed
        assert not decide([direct], [], user=BOB).allowed


def test_entitlements_merge_per_pair() -> None:
    offers = entitlements_for(
        user=ALICE,
        accounts=[LEAF_ACCOUNT, MID_ACCOUNT],
        permission_sets={RO.arn: RO, ADMIN.arn: ADMIN},
        eligibility_rules=[
            rule("a", max_duration_minutes=60),
            rule(
                "b",
                ou_ids=frozenset({LEAF}),
                max_duration_minutes=240,
                permission_set_arns=frozenset({RO.arn, ADMIN.arn}),
            ),
            rule("c", group_ids=frozenset({"g-approvers"}), ou_ids=frozenset({ROOT})),
        ],
        settings=DEFAULTS,
    )
    summary = {
        (a.name, p.name): (lim.max_duration_minutes, lim.policy_ids)
        for offer in offers
        for a in offer.accounts
        for p, lim in offer.options
    }
    assert len(offers) == 2  # leaf (rules a, b) and mid (rule a) differ
    assert summary == {
        ("leaf", "Admin"): (240, ("b",)),
        ("leaf", "ReadOnly"): (240, ("a", "b")),
        ("mid", "ReadOnly"): (60, ("a",)),
    }
