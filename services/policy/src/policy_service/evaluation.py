"""Pure evaluation rules: which policies match, how matches merge, who approves. No I/O.

Merge rules when several policies match (docs/policy.md repeats them):

- eligible if ANY eligibility policy matches (user or one of their groups, account directly or
  through an OU, permission set);
- max duration = the LARGEST max among matching policies, capped by the global max;
- approval is required unless the workflow is off, or a matching policy waives it AND the
  settings allow waiving;
- a ticket is required when the settings require one or EVERY matching policy does;
- a justification must match at least one matching policy's pattern (none set = anything);
- approvals needed = the LARGEST quorum among the matching approver policies and the matching
  eligibility policies;
- approvers = the union over every approver policy whose target is the account or any ancestor
  OU (and whose permission-set scope includes the permission set), minus the requester;
- approval required but fewer distinct approvers than the quorum is a denial.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from policy_service.schemas import PolicySettings
from teamkit.contracts.policy import (
    DenialCode,
    DenialReason,
    EvaluationDecision,
    EvaluationRequest,
)
from teamkit.events.common import AccountRef, Approver, PermissionSetRef, Requester


@dataclass(frozen=True)
class User:
    """A directory user with the ids of their groups."""

    id: str
    username: str
    email: str | None
    group_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Account:
    """An account and the OU ids from the root down to its parent."""

    id: str
    name: str
    parent_id: str
    ou_path: tuple[str, ...]


@dataclass(frozen=True)
class PermissionSet:
    """A permission set."""

    arn: str
    name: str
    session_duration_minutes: int | None = None


@dataclass(frozen=True)
class EligibilityRule:
    """An eligibility policy reduced to what matching and merging need."""

    id: str
    permission_set_arns: frozenset[str]
    max_duration_minutes: int
    user_ids: frozenset[str] = frozenset()
    group_ids: frozenset[str] = frozenset()
    account_ids: frozenset[str] = frozenset()
    ou_ids: frozenset[str] = frozenset()
    direct_children_only: bool = False
    approval_required: bool = True
    ticket_required: bool = False
    approvals_needed: int = 1
    justification_pattern: str | None = None


@dataclass(frozen=True)
class ApproverRule:
    """An approver policy reduced to what matching needs."""

    id: str
    account_ids: frozenset[str] = frozenset()
    ou_ids: frozenset[str] = frozenset()
    permission_set_arns: frozenset[str] = frozenset()  # empty: every permission set
    user_ids: frozenset[str] = frozenset()
    group_ids: frozenset[str] = frozenset()
    approvals_needed: int = 1


@dataclass(frozen=True)
class Limits:
    """The merged terms of the matching eligibility policies."""

    policy_ids: tuple[str, ...]
    max_duration_minutes: int | None
    approval_required: bool
    ticket_required: bool
    approvals_needed: int
    justification_patterns: tuple[str, ...] | None = field(default=None)

    @property
    def eligible(self) -> bool:
        """True when at least one policy matched."""
        return bool(self.policy_ids)


def principal_matches(rule: EligibilityRule, user: User) -> bool:
    """The user is named, or is in a named group."""
    return user.id in rule.user_ids or not rule.group_ids.isdisjoint(user.group_ids)


def covers_account(
    account_ids: frozenset[str],
    ou_ids: frozenset[str],
    account: Account,
    *,
    direct_children_only: bool = False,
) -> bool:
    """The account is a target itself, or lies below a target OU (directly, if so restricted)."""
    if account.id in account_ids:
        return True
    if direct_children_only:
        return account.parent_id in ou_ids
    return not ou_ids.isdisjoint(account.ou_path)


def eligibility_matches(
    rule: EligibilityRule, user: User, account: Account, permission_set_arn: str
) -> bool:
    """One eligibility policy allows this user this permission set on this account."""
    return (
        permission_set_arn in rule.permission_set_arns
        and principal_matches(rule, user)
        and covers_account(
            rule.account_ids, rule.ou_ids, account, direct_children_only=rule.direct_children_only
        )
    )


def approver_rule_matches(rule: ApproverRule, account: Account, permission_set_arn: str) -> bool:
    """The approver policy covers the account (inherited from any ancestor OU) and the set."""
    in_scope = not rule.permission_set_arns or permission_set_arn in rule.permission_set_arns
    return in_scope and covers_account(rule.account_ids, rule.ou_ids, account)


def merge(matches: Sequence[EligibilityRule], settings: PolicySettings) -> Limits:
    """Merge the terms of the matching eligibility policies (rules in the module docstring)."""
    if not matches:
        return Limits(
            policy_ids=(),
            max_duration_minutes=None,
            approval_required=settings.approval_workflow_enabled,
            ticket_required=settings.ticket_required,
            approvals_needed=1 if settings.approval_workflow_enabled else 0,
        )
    waived = settings.approval_waiver_allowed and any(not r.approval_required for r in matches)
    approval_required = settings.approval_workflow_enabled and not waived
    patterns = [r.justification_pattern for r in matches]
    return Limits(
        policy_ids=tuple(sorted(r.id for r in matches)),
        max_duration_minutes=min(
            max(r.max_duration_minutes for r in matches), settings.max_duration_minutes
        ),
        approval_required=approval_required,
        ticket_required=settings.ticket_required or all(r.ticket_required for r in matches),
        approvals_needed=max(r.approvals_needed for r in matches) if approval_required else 0,
        justification_patterns=None
        if any(p is None for p in patterns)
        else tuple(p for p in patterns if p is not None),
    )


def approver_ids(
    rules: Iterable[ApproverRule], group_members: Mapping[str, Iterable[str]]
) -> set[str]:
    """Every user named by the rules, directly or through a group."""
    ids: set[str] = set()
    for rule in rules:
        ids.update(rule.user_ids)
        for group_id in rule.group_ids:
            ids.update(group_members.get(group_id, ()))
    return ids


def group_ids_of(rules: Iterable[ApproverRule]) -> set[str]:
    """The approver groups the rules name (what to load memberships for)."""
    return {group_id for rule in rules for group_id in rule.group_ids}


def evaluate(
    *,
    request: EvaluationRequest,
    user: User | None,
    account: Account | None,
    permission_set: PermissionSet | None,
    eligibility_rules: Sequence[EligibilityRule],
    approver_rules: Sequence[ApproverRule],
    group_members: Mapping[str, Iterable[str]],
    users_by_id: Mapping[str, User],
    settings: PolicySettings,
) -> EvaluationDecision:
    """Decide one request; every applicable denial reason is listed, never only the first."""
    reasons: list[DenialReason] = []

    def deny(code: DenialCode, detail: str) -> None:
        reasons.append(DenialReason(code=code, detail=detail))

    if user is None:
        deny(
            DenialCode.UNKNOWN_USER,
            f"User '{request.user}' is not in the Identity Center directory; check the id or user "
            "name, or ask an admin to refresh the directory.",
        )
    if account is None:
        deny(
            DenialCode.UNKNOWN_ACCOUNT,
            f"Account {request.account_id} is not in the organization; check the account id.",
        )
    if permission_set is None:
        deny(
            DenialCode.UNKNOWN_PERMISSION_SET,
            f"Permission set '{request.permission_set}' does not exist; use its ARN or name.",
        )

    matches: list[EligibilityRule] = []
    if user is not None and account is not None and permission_set is not None:
        matches = [
            r
            for r in eligibility_rules
            if eligibility_matches(r, user, account, permission_set.arn)
        ]
        if not matches:
            deny(
                DenialCode.NOT_ELIGIBLE,
                f"No eligibility policy lets {user.username} request {permission_set.name} on "
                f"account {account.id} ({account.name}); ask an admin for a policy.",
            )
    limits = merge(matches, settings)

    ceiling = limits.max_duration_minutes or settings.max_duration_minutes
    if request.duration_minutes > ceiling:
        deny(
            DenialCode.DURATION_ABOVE_MAX,
            f"{request.duration_minutes} minutes is above the maximum of {ceiling} minutes; "
            "ask for a shorter window.",
        )
    _check_ticket(request.ticket, limits.ticket_required, settings.ticket_pattern, deny)
    if limits.justification_patterns is not None and not any(
        re.search(p, request.justification or "") for p in limits.justification_patterns
    ):
        deny(
            DenialCode.JUSTIFICATION_MALFORMED,
            "The justification does not match the format the policy asks for: "
            + " or ".join(f"/{p}/" for p in limits.justification_patterns),
        )
    cap = settings.max_concurrent_grants
    if cap is not None and request.active_grants >= cap:
        deny(
            DenialCode.TOO_MANY_ACTIVE_GRANTS,
            f"{request.active_grants} grants are already active or scheduled and at most {cap} "
            "are allowed at once; end or cancel one first.",
        )

    approvers: list[Approver] = []
    approvals_needed = limits.approvals_needed
    # Approvers only matter for an eligible request: "nobody approves" would be noise on a
    # request that is refused anyway.
    if (
        account is not None
        and permission_set is not None
        and limits.eligible
        and limits.approval_required
    ):
        rules = [r for r in approver_rules if approver_rule_matches(r, account, permission_set.arn)]
        approvals_needed = max([approvals_needed, *(r.approvals_needed for r in rules)])
        requester_id = user.id if user is not None else None
        approvers = sorted(
            (
                Approver(user_id=u.id, username=u.username, email=u.email)
                for uid in approver_ids(rules, group_members)
                if uid != requester_id and (u := users_by_id.get(uid)) is not None
            ),
            key=lambda a: (a.username, a.user_id),
        )
        if not approvers:
            deny(
                DenialCode.NO_APPROVER,
                f"Approval is required but nobody other than the requester may approve "
                f"{permission_set.name} on account {account.id}; an admin must add an approver "
                "policy.",
            )
        elif len(approvers) < approvals_needed:
            deny(
                DenialCode.NO_APPROVER,
                f"{approvals_needed} distinct approvals are required but only {len(approvers)} "
                "approver(s) other than the requester exist; an admin must add approvers.",
            )

    return EvaluationDecision(
        allowed=not reasons,
        reasons=reasons,
        requester=Requester(user_id=user.id, username=user.username, email=user.email)
        if user
        else None,
        account=AccountRef(id=account.id, name=account.name, ou_path=list(account.ou_path))
        if account
        else None,
        permission_set=PermissionSetRef(
            arn=permission_set.arn,
            name=permission_set.name,
            session_duration_minutes=permission_set.session_duration_minutes,
        )
        if permission_set
        else None,
        matched_policy_ids=list(limits.policy_ids),
        approval_required=limits.approval_required,
        approvals_needed=approvals_needed if limits.approval_required else 0,
        approvers=approvers,
        max_duration_minutes=limits.max_duration_minutes,
        settings=settings.request_settings(),
    )


def _check_ticket(
    ticket: str | None, required: bool, pattern: str | None, deny: Callable[[DenialCode, str], None]
) -> None:
    if not ticket:
        if required:
            deny(DenialCode.TICKET_MISSING, "A ticket number is required; add the ticket.")
        return
    if pattern is not None and re.fullmatch(pattern, ticket) is None:
        deny(
            DenialCode.TICKET_MALFORMED,
            f"Ticket '{ticket}' does not have the required format /{pattern}/.",
        )


@dataclass(frozen=True)
class Offer:
    """Accounts covered by the same policies, hence offering the same options on the same terms.

    Grouping keeps an answer small: each account once, each distinct set of options once.
    """

    accounts: tuple[Account, ...]
    options: tuple[tuple[PermissionSet, Limits], ...]


def entitlements_for(
    *,
    user: User,
    accounts: Iterable[Account],
    permission_sets: Mapping[str, PermissionSet],
    eligibility_rules: Sequence[EligibilityRule],
    settings: PolicySettings,
) -> list[Offer]:
    """Everything the user may request, grouped by the policies covering each account."""
    mine = [r for r in eligibility_rules if principal_matches(r, user)]
    if not mine:
        return []
    # Index the rules by target once, so each account costs a few lookups along its OU path
    # instead of a test against every rule (thousands of accounts per call).
    by_account: dict[str, set[int]] = {}
    by_subtree: dict[str, set[int]] = {}
    by_parent: dict[str, set[int]] = {}
    for i, rule in enumerate(mine):
        for account_id in rule.account_ids:
            by_account.setdefault(account_id, set()).add(i)
        ou_index = by_parent if rule.direct_children_only else by_subtree
        for ou_id in rule.ou_ids:
            ou_index.setdefault(ou_id, set()).add(i)
    by_cover: dict[tuple[int, ...], list[Account]] = {}
    for account in accounts:
        hits = set(by_account.get(account.id, ()))
        hits.update(by_parent.get(account.parent_id, ()))
        for ou_id in account.ou_path:
            hits.update(by_subtree.get(ou_id, ()))
        if hits:
            by_cover.setdefault(tuple(sorted(hits)), []).append(account)
    offers: list[Offer] = []
    for cover, covered in by_cover.items():
        covering = [mine[i] for i in cover]
        options: list[tuple[PermissionSet, Limits]] = []
        for arn in sorted({arn for r in covering for arn in r.permission_set_arns}):
            permission_set = permission_sets.get(arn)
            if permission_set is None:
                continue  # a policy may outlive a deleted permission set
            matches = [r for r in covering if arn in r.permission_set_arns]
            options.append((permission_set, merge(matches, settings)))
        if options:
            offers.append(Offer(tuple(covered), tuple(options)))
    return offers
