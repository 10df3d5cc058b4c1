"""Use cases of the policy service: each opens one transaction and stages its events there."""

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from policy_service import evaluation, repository
from policy_service.cache import DirectoryCopy, PolicyCache, PolicyCopy
from policy_service.directory import DirectoryReader, DirectorySnapshot
from policy_service.errors import (
    LimitExceeded,
    PolicyNotFound,
    PreconditionRequired,
    StaleVersion,
    UnknownCaller,
    UnknownReferences,
)
from policy_service.models import (
    ApproverPolicyRow,
    DirectoryAccount,
    DirectoryGroup,
    DirectoryOu,
    DirectoryPermissionSet,
    DirectoryUser,
    EligibilityPolicyRow,
)
from policy_service.pagination import decode_cursor, encode_cursor
from policy_service.schemas import (
    AccountView,
    ApproverPolicy,
    ApproverPolicyIn,
    DirectoryStatus,
    EligibilityPolicy,
    EligibilityPolicyIn,
    Entitlement,
    EntitlementOption,
    Entitlements,
    GroupView,
    ImportResult,
    OuView,
    Page,
    PermissionSetView,
    PolicyDocument,
    PolicySettings,
    RefreshResult,
    SettingsView,
    UserView,
)
from teamkit import outbox
from teamkit.auth import Principal
from teamkit.clock import utc_now
from teamkit.contracts.policy import (
    ApproverCheck,
    ApproverCheckRequest,
    EvaluationDecision,
    EvaluationRequest,
)
from teamkit.events.common import AccountRef, Actor, Approver, PermissionSetRef, Requester
from teamkit.events.envelope import Event
from teamkit.events.policy import (
    ApproverPolicyCreatedData,
    ApproverPolicyCreatedV1,
    ApproverPolicyDeletedData,
    ApproverPolicyDeletedV1,
    ApproverPolicyUpdatedData,
    ApproverPolicyUpdatedV1,
    DirectoryRefreshedData,
    DirectoryRefreshedV1,
    EligibilityPolicyCreatedData,
    EligibilityPolicyCreatedV1,
    EligibilityPolicyDeletedData,
    EligibilityPolicyDeletedV1,
    EligibilityPolicyUpdatedData,
    EligibilityPolicyUpdatedV1,
    SettingsUpdatedData,
    SettingsUpdatedV1,
)
from teamkit.problems import Forbidden

log = structlog.get_logger(__name__)

#: Seconds before a scheduled refresh is retried after a failure.
RETRY_SECONDS = 30.0

# -- conversions --------------------------------------------------------------------------------


def eligibility_view(row: EligibilityPolicyRow) -> EligibilityPolicy:
    """The API form of an eligibility policy row."""
    return EligibilityPolicy.model_validate(row, from_attributes=True)


def approver_view(row: ApproverPolicyRow) -> ApproverPolicy:
    """The API form of an approver policy row."""
    return ApproverPolicy.model_validate(row, from_attributes=True)


def eligibility_rule(row: EligibilityPolicyRow) -> evaluation.EligibilityRule:
    """The evaluation form of an eligibility policy row."""
    return evaluation.EligibilityRule(
        id=str(row.id),
        user_ids=frozenset(row.user_ids),
        group_ids=frozenset(row.group_ids),
        account_ids=frozenset(row.account_ids),
        ou_ids=frozenset(row.ou_ids),
        direct_children_only=row.direct_children_only,
        permission_set_arns=frozenset(row.permission_set_arns),
        max_duration_minutes=row.max_duration_minutes,
        approval_required=row.approval_required,
        ticket_required=row.ticket_required,
        approvals_needed=row.approvals_needed,
        justification_pattern=row.justification_pattern,
    )


def approver_rule(row: ApproverPolicyRow) -> evaluation.ApproverRule:
    """The evaluation form of an approver policy row."""
    return evaluation.ApproverRule(
        id=str(row.id),
        account_ids=frozenset(row.account_ids),
        ou_ids=frozenset(row.ou_ids),
        permission_set_arns=frozenset(row.permission_set_arns),
        user_ids=frozenset(row.approver_user_ids),
        group_ids=frozenset(row.approver_group_ids),
        approvals_needed=row.approvals_needed,
    )


def _user(
    row: DirectoryUser, group_ids: set[str] | frozenset[str] = frozenset()
) -> evaluation.User:
    return evaluation.User(
        id=row.id, username=row.username, email=row.email, group_ids=frozenset(group_ids)
    )


def _account(row: DirectoryAccount) -> evaluation.Account:
    return evaluation.Account(
        id=row.id, name=row.name, parent_id=row.parent_id, ou_path=tuple(row.ou_path)
    )


def _permission_set(row: DirectoryPermissionSet) -> evaluation.PermissionSet:
    return evaluation.PermissionSet(
        arn=row.arn, name=row.name, session_duration_minutes=row.session_duration_minutes
    )


async def actor_of(session: AsyncSession, principal: Principal, *, by_email: bool) -> Actor:
    """The event actor for a caller: their directory user id when the directory knows them."""
    if principal.client_id is not None:
        return Actor(username=principal.client_id, client_id=principal.client_id)
    async with session.begin():
        user = await repository.user_by_username_or_email(
            session, username=principal.username, email=principal.email, by_email=by_email
        )
    return Actor(
        user_id=user.id if user else None,
        username=principal.username or principal.subject,
        email=principal.email,
    )


def actor_label(actor: Actor) -> str:
    """How `created_by` / `updated_by` name an actor."""
    return f"client:{actor.client_id}" if actor.client_id else actor.username


# -- settings -----------------------------------------------------------------------------------


async def load_settings(session: AsyncSession) -> PolicySettings:
    """The current settings: stored values over the defaults (new fields get their default)."""
    row = await repository.get_settings_row(session)
    known = {k: v for k, v in row.data.items() if k in PolicySettings.model_fields}
    return PolicySettings.model_validate(known)


async def get_settings(session: AsyncSession) -> SettingsView:
    """The settings with their version."""
    async with session.begin():
        row = await repository.get_settings_row(session)
        current = await load_settings(session)
        return SettingsView(
            **current.model_dump(),
            version=row.version,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


async def update_settings(
    session: AsyncSession, *, body: PolicySettings, expected_version: int | None, actor: Actor
) -> SettingsView:
    """Replace the settings if `expected_version` is current; emits `settings.updated`."""
    if expected_version is None:
        raise PreconditionRequired(
            "say which settings version you change: send If-Match with the ETag of GET "
            "/v1/settings, or `version` in the body"
        )
    async with session.begin():
        row = await repository.get_settings_row(session, for_update=True)
        if row.version != expected_version:
            raise StaleVersion(
                f"the settings changed since version {expected_version} (now {row.version}); "
                "GET them again and reapply your change",
                current_version=row.version,
            )
        before = await load_settings(session)
        after = PolicySettings.model_validate(
            body.model_dump(include=set(PolicySettings.model_fields))
        )
        row.data = after.model_dump(mode="json")
        row.version += 1
        row.updated_at = utc_now()
        row.updated_by = actor_label(actor)
        await outbox.add(
            session,
            SettingsUpdatedV1(
                data=SettingsUpdatedData(
                    actor=actor,
                    before=before.model_dump(mode="json"),
                    after=after.model_dump(mode="json"),
                )
            ),
        )
        return SettingsView(
            **after.model_dump(),
            version=row.version,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


# -- policies -----------------------------------------------------------------------------------

Row = TypeVar("Row", EligibilityPolicyRow, ApproverPolicyRow)
View = TypeVar("View", EligibilityPolicy, ApproverPolicy)
Body = TypeVar("Body", EligibilityPolicyIn, ApproverPolicyIn)
Change = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class PolicyKind(Generic[Row, View]):
    """What differs between eligibility and approver policies in the generic use cases."""

    label: str
    model: type[Row]
    view: Callable[[Row], View]
    event: Callable[[Change, Actor, str, dict[str, Any] | None, dict[str, Any] | None], Event]


def _eligibility_event(
    change: Change,
    actor: Actor,
    pid: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> Event:
    if change == "created":
        return EligibilityPolicyCreatedV1(
            subject=pid,
            data=EligibilityPolicyCreatedData(actor=actor, policy_id=pid, before=None, after=after),
        )
    if change == "updated":
        return EligibilityPolicyUpdatedV1(
            subject=pid,
            data=EligibilityPolicyUpdatedData(
                actor=actor, policy_id=pid, before=before, after=after
            ),
        )
    return EligibilityPolicyDeletedV1(
        subject=pid,
        data=EligibilityPolicyDeletedData(actor=actor, policy_id=pid, before=before, after=None),
    )


def _approver_event(
    change: Change,
    actor: Actor,
    pid: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> Event:
    if change == "created":
        return ApproverPolicyCreatedV1(
            subject=pid,
            data=ApproverPolicyCreatedData(actor=actor, policy_id=pid, before=None, after=after),
        )
    if change == "updated":
        return ApproverPolicyUpdatedV1(
            subject=pid,
            data=ApproverPolicyUpdatedData(actor=actor, policy_id=pid, before=before, after=after),
        )
    return ApproverPolicyDeletedV1(
        subject=pid,
        data=ApproverPolicyDeletedData(actor=actor, policy_id=pid, before=before, after=None),
    )


ELIGIBILITY: PolicyKind[EligibilityPolicyRow, EligibilityPolicy] = PolicyKind(
    "eligibility policy", EligibilityPolicyRow, eligibility_view, _eligibility_event
)
APPROVER: PolicyKind[ApproverPolicyRow, ApproverPolicy] = PolicyKind(
    "approver policy", ApproverPolicyRow, approver_view, _approver_event
)


def _fields(body: BaseModel, kind_fields: type[BaseModel]) -> dict[str, Any]:
    return body.model_dump(include=set(kind_fields.model_fields))


async def reference_errors(
    session: AsyncSession,
    items: Sequence[tuple[str, EligibilityPolicyIn | ApproverPolicyIn]],
    settings: PolicySettings,
) -> list[dict[str, Any]]:
    """Every unknown directory id and every limit breach among `items` (location, message)."""
    wanted: dict[str, set[str]] = {k: set() for k in ("user", "group", "account", "ou", "ps")}
    for _, body in items:
        for key, values in _references(body).items():
            wanted[key].update(values)
    missing = {
        "user": set(await repository.missing(session, DirectoryUser.id, wanted["user"])),
        "group": set(await repository.missing(session, DirectoryGroup.id, wanted["group"])),
        "account": set(await repository.missing(session, DirectoryAccount.id, wanted["account"])),
        "ou": set(await repository.missing(session, DirectoryOu.id, wanted["ou"])),
        "ps": set(await repository.missing(session, DirectoryPermissionSet.arn, wanted["ps"])),
    }
    nouns = {
        "user": "user id",
        "group": "group id",
        "account": "account id",
        "ou": "OU id",
        "ps": "permission set ARN",
    }
    errors: list[dict[str, Any]] = []
    for where, body in items:
        for key, field_name, values in _reference_fields(body):
            for value in values:
                if value in missing[key]:
                    errors.append(
                        {
                            "loc": [*where.split("."), field_name] if where else [field_name],
                            "msg": f"unknown {nouns[key]} '{value}'",
                            "value": value,
                        }
                    )
        if (
            isinstance(body, EligibilityPolicyIn)
            and body.max_duration_minutes > settings.max_duration_minutes
        ):
            errors.append(
                {
                    "loc": [*where.split("."), "max_duration_minutes"]
                    if where
                    else ["max_duration_minutes"],
                    "msg": f"{body.max_duration_minutes} is above the global maximum of "
                    f"{settings.max_duration_minutes} minutes",
                    "value": body.max_duration_minutes,
                }
            )
    return errors


def _reference_fields(
    body: EligibilityPolicyIn | ApproverPolicyIn,
) -> list[tuple[str, str, list[str]]]:
    if isinstance(body, EligibilityPolicyIn):
        return [
            ("user", "user_ids", body.user_ids),
            ("group", "group_ids", body.group_ids),
            ("account", "account_ids", body.account_ids),
            ("ou", "ou_ids", body.ou_ids),
            ("ps", "permission_set_arns", body.permission_set_arns),
        ]
    return [
        ("user", "approver_user_ids", body.approver_user_ids),
        ("group", "approver_group_ids", body.approver_group_ids),
        ("account", "account_ids", body.account_ids),
        ("ou", "ou_ids", body.ou_ids),
        ("ps", "permission_set_arns", body.permission_set_arns),
    ]


def _references(body: EligibilityPolicyIn | ApproverPolicyIn) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, _, values in _reference_fields(body):
        result.setdefault(key, []).extend(values)
    return result


def _raise_if(errors: list[dict[str, Any]]) -> None:
    if not errors:
        return
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    detail = f"{where}: {first['msg']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem(s), see 'errors')"
    detail += ". Use ids from GET /v1/directory/*, or refresh the directory if they are new."
    if all("unknown" in e["msg"] for e in errors):
        raise UnknownReferences(detail, errors=errors)
    raise LimitExceeded(detail, errors=errors)


async def create_policy(
    session: AsyncSession,
    kind: PolicyKind[Row, View],
    *,
    body: EligibilityPolicyIn | ApproverPolicyIn,
    actor: Actor,
) -> View:
    """Create a policy after checking its references; emits `<kind>.created`."""
    async with session.begin():
        settings = await load_settings(session)
        _raise_if(await reference_errors(session, [("", body)], settings))
        now = utc_now()
        label = actor_label(actor)
        row = kind.model(
            id=uuid.uuid4(),
            **_fields(body, type(body)),
            version=1,
            created_at=now,
            updated_at=now,
            created_by=label,
            updated_by=label,
        )
        repository.add_policy(session, row)
        await session.flush()
        view = kind.view(row)
        await outbox.add(
            session, kind.event("created", actor, str(row.id), None, view.model_dump(mode="json"))
        )
        return view


async def get_policy(
    session: AsyncSession, kind: PolicyKind[Row, View], *, policy_id: UUID
) -> View:
    """One policy, or PolicyNotFound."""
    async with session.begin():
        row = await repository.get_policy(session, kind.model, policy_id)
        if row is None:
            raise _not_found(kind, policy_id)
        return kind.view(row)


def _not_found(kind: PolicyKind[Any, Any], policy_id: UUID) -> PolicyNotFound:
    return PolicyNotFound(f"no {kind.label} {policy_id}; list them to find the right id")


async def list_policies(
    session: AsyncSession, kind: PolicyKind[Row, View], *, cursor: str | None, limit: int
) -> Page[View]:
    """One keyset page of policies, by name."""
    after = decode_cursor(cursor)
    async with session.begin():
        rows = await repository.policy_page(session, kind.model, after=after, limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Any](
        items=[kind.view(r) for r in rows],
        next_cursor=encode_cursor([rows[-1].name, str(rows[-1].id)]) if more and rows else None,
    )


async def update_policy(
    session: AsyncSession,
    kind: PolicyKind[Row, View],
    *,
    policy_id: UUID,
    body: EligibilityPolicyIn | ApproverPolicyIn,
    expected_version: int | None,
    actor: Actor,
) -> View:
    """Replace a policy if `expected_version` is current; emits `<kind>.updated`."""
    if expected_version is None:
        raise PreconditionRequired(
            f"say which version of {kind.label} {policy_id} you replace: send If-Match with its "
            "ETag, or `version` in the body"
        )
    async with session.begin():
        row = await repository.get_policy(session, kind.model, policy_id, for_update=True)
        if row is None:
            raise _not_found(kind, policy_id)
        if row.version != expected_version:
            raise StaleVersion(
                f"{kind.label} {policy_id} is at version {row.version}, not {expected_version}: "
                "someone changed it meanwhile; GET it again and reapply your change",
                current_version=row.version,
            )
        settings = await load_settings(session)
        _raise_if(await reference_errors(session, [("", body)], settings))
        before = kind.view(row).model_dump(mode="json")
        _apply(row, body, actor)
        await session.flush()
        view = kind.view(row)
        await outbox.add(
            session, kind.event("updated", actor, str(row.id), before, view.model_dump(mode="json"))
        )
        return view


def _apply(row: EligibilityPolicyRow | ApproverPolicyRow, body: BaseModel, actor: Actor) -> None:
    for name, value in _fields(
        body, EligibilityPolicyIn if isinstance(row, EligibilityPolicyRow) else ApproverPolicyIn
    ).items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at = utc_now()
    row.updated_by = actor_label(actor)


async def delete_policy(
    session: AsyncSession,
    kind: PolicyKind[Row, View],
    *,
    policy_id: UUID,
    expected_version: int | None,
    actor: Actor,
) -> None:
    """Delete a policy (checking `expected_version` when given); emits `<kind>.deleted`."""
    async with session.begin():
        row = await repository.get_policy(session, kind.model, policy_id, for_update=True)
        if row is None:
            raise _not_found(kind, policy_id)
        if expected_version is not None and row.version != expected_version:
            raise StaleVersion(
                f"{kind.label} {policy_id} is at version {row.version}, not {expected_version}; "
                "GET it again before deleting",
                current_version=row.version,
            )
        before = kind.view(row).model_dump(mode="json")
        await repository.delete_policy(session, row)
        await outbox.add(session, kind.event("deleted", actor, str(policy_id), before, None))


# -- export / import ----------------------------------------------------------------------------


async def export_policies(session: AsyncSession) -> PolicyDocument:
    """The whole policy set as one document."""
    async with session.begin():
        eligibility = await repository.all_policies(session, EligibilityPolicyRow)
        approver = await repository.all_policies(session, ApproverPolicyRow)
    return PolicyDocument.model_validate(
        {
            "format_version": 1,
            "eligibility_policies": [
                eligibility_view(r).model_dump(
                    mode="json", include={*EligibilityPolicyIn.model_fields, "id"}
                )
                for r in eligibility
            ],
            "approver_policies": [
                approver_view(r).model_dump(
                    mode="json", include={*ApproverPolicyIn.model_fields, "id"}
                )
                for r in approver
            ],
        }
    )


async def import_policies(
    session: AsyncSession, *, document: PolicyDocument, actor: Actor
) -> ImportResult:
    """Make the stored policy set equal to `document`, all or nothing; one event per change."""
    async with session.begin():
        await repository.lock(session, "policy-set")
        settings = await load_settings(session)
        items: list[tuple[str, EligibilityPolicyIn | ApproverPolicyIn]] = [
            (f"eligibility_policies.{i}", p) for i, p in enumerate(document.eligibility_policies)
        ] + [(f"approver_policies.{i}", p) for i, p in enumerate(document.approver_policies)]
        _raise_if(await reference_errors(session, items, settings))
        counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
        await _sync(
            session, ELIGIBILITY, document.eligibility_policies, EligibilityPolicyIn, actor, counts
        )
        await _sync(session, APPROVER, document.approver_policies, ApproverPolicyIn, actor, counts)
        return ImportResult(**counts)


async def _sync(
    session: AsyncSession,
    kind: PolicyKind[Row, View],
    wanted: Sequence[EligibilityPolicyIn | ApproverPolicyIn],
    shape: type[BaseModel],
    actor: Actor,
    counts: dict[str, int],
) -> None:
    existing = {row.id: row for row in await repository.all_policies(session, kind.model)}
    keep: set[UUID] = set()
    now = utc_now()
    label = actor_label(actor)
    for body in wanted:
        policy_id: UUID | None = getattr(body, "id", None)
        fields = _fields(body, shape)
        row = existing.get(policy_id) if policy_id is not None else None
        if row is None:
            row = kind.model(
                id=policy_id or uuid.uuid4(),
                **fields,
                version=1,
                created_at=now,
                updated_at=now,
                created_by=label,
                updated_by=label,
            )
            repository.add_policy(session, row)
            await session.flush()
            keep.add(row.id)
            await outbox.add(
                session,
                kind.event(
                    "created", actor, str(row.id), None, kind.view(row).model_dump(mode="json")
                ),
            )
            counts["created"] += 1
            continue
        keep.add(row.id)
        current = _fields(kind.view(row), shape)
        if current == fields:
            counts["unchanged"] += 1
            continue
        before = kind.view(row).model_dump(mode="json")
        _apply(row, body, actor)
        await session.flush()
        await outbox.add(
            session,
            kind.event(
                "updated", actor, str(row.id), before, kind.view(row).model_dump(mode="json")
            ),
        )
        counts["updated"] += 1
    for policy_id, row in existing.items():
        if policy_id in keep:
            continue
        before = kind.view(row).model_dump(mode="json")
        await repository.delete_policy(session, row)
        await outbox.add(session, kind.event("deleted", actor, str(policy_id), before, None))
        counts["deleted"] += 1


# -- evaluation ---------------------------------------------------------------------------------


async def load_directory_copy(session: AsyncSession) -> DirectoryCopy:
    """Read the whole directory (but OUs, groups' names) into its in-memory form."""
    accounts = tuple(
        evaluation.Account(id=i, name=n, parent_id=parent, ou_path=tuple(path))
        for i, n, parent, path in await repository.all_accounts(session)
    )
    permission_sets = {
        arn: evaluation.PermissionSet(arn=arn, name=name, session_duration_minutes=minutes)
        for arn, name, minutes in await repository.all_permission_sets(session)
    }
    names: dict[str, list[evaluation.PermissionSet]] = {}
    for permission_set in permission_sets.values():
        names.setdefault(permission_set.name, []).append(permission_set)
    members: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    for group_id, user_id in await repository.all_memberships(session):
        members.setdefault(group_id, set()).add(user_id)
        groups.setdefault(user_id, set()).add(group_id)
    return DirectoryCopy(
        accounts=accounts,
        accounts_by_id={a.id: a for a in accounts},
        permission_sets=permission_sets,
        permission_sets_by_name={n: found[0] for n, found in names.items() if len(found) == 1},
        users_by_id={
            i: evaluation.User(
                id=i, username=username, email=email, group_ids=frozenset(groups.get(i, ()))
            )
            for i, username, email in await repository.all_users(session)
        },
        members={g: frozenset(ids) for g, ids in members.items()},
    )


async def load_policy_copy(session: AsyncSession) -> PolicyCopy:
    """Read the settings and every policy into their evaluation form."""
    return PolicyCopy(
        settings=await load_settings(session),
        eligibility_rules=tuple(
            map(eligibility_rule, await repository.all_policies(session, EligibilityPolicyRow))
        ),
        approver_rules=tuple(
            map(approver_rule, await repository.all_policies(session, ApproverPolicyRow))
        ),
    )


async def _copies(
    session: AsyncSession, cache: PolicyCache
) -> tuple[tuple[int, int], DirectoryCopy, PolicyCopy]:
    """The current copies, with their versions; call inside the use case's transaction.

    The versions are read first: the rows a reload reads next are at least as new (see
    `policy_service.cache`).
    """
    versions = await repository.data_versions(session)
    key = (versions["directory"], versions["policy"])
    directory = await cache.directory.get(key[0], lambda: load_directory_copy(session))
    policies = await cache.policies.get(key[1], lambda: load_policy_copy(session))
    return key, directory, policies


async def _directory_user(
    session: AsyncSession, directory: DirectoryCopy, ref: str, *, by_email: bool
) -> evaluation.User | None:
    """A user by id, else by user name (or email), as `repository.find_user` finds them."""
    found = directory.users_by_id.get(ref)
    if found is not None:
        return found
    row = await repository.user_by_username_or_email(
        session, username=ref, email=ref, by_email=by_email
    )
    if row is None:
        return None
    return directory.users_by_id.get(row.id) or _user(row)


async def evaluate_request(
    session: AsyncSession, *, body: EvaluationRequest, by_email: bool, cache: PolicyCache
) -> EvaluationDecision:
    """Decide whether the user may request the permission set on the account, and who approves."""
    async with session.begin():
        _, directory, policies = await _copies(session, cache)
        user = await _directory_user(session, directory, body.user, by_email=by_email)
    account = directory.accounts_by_id.get(body.account_id)
    permission_set = directory.permission_sets.get(
        body.permission_set
    ) or directory.permission_sets_by_name.get(body.permission_set)
    approver_rules: list[evaluation.ApproverRule] = []
    if account is not None and permission_set is not None:
        approver_rules = [
            rule
            for rule in policies.approver_rules
            if evaluation.approver_rule_matches(rule, account, permission_set.arn)
        ]
    return evaluation.evaluate(
        request=body,
        user=user,
        account=account,
        permission_set=permission_set,
        eligibility_rules=policies.eligibility_rules,
        approver_rules=approver_rules,
        group_members=directory.members,
        users_by_id=directory.users_by_id,
        settings=policies.settings,
    )


async def check_approver(
    session: AsyncSession,
    *,
    body: ApproverCheckRequest,
    by_email: bool,
    reader: DirectoryReader | None,
) -> ApproverCheck:
    """May the approver decide this request now? Groups are read live when `reader` is given."""
    async with session.begin():
        approver_row = await repository.find_user(session, body.approver, by_email=by_email)
        requester_row = await repository.find_user(session, body.requester, by_email=by_email)
        account_row = await repository.get_account(session, body.account_id)
        ps_row = await repository.find_permission_set(session, body.permission_set_arn)
        if approver_row is None:
            return ApproverCheck(
                allowed=False,
                detail=f"approver '{body.approver}' is not in the Identity Center directory",
            )
        approver = Approver(
            user_id=approver_row.id, username=approver_row.username, email=approver_row.email
        )
        same = approver_row.id == (requester_row.id if requester_row else None) or (
            body.approver == body.requester
        )
        if same:
            return ApproverCheck(
                allowed=False, detail="nobody may approve their own request", approver=approver
            )
        if account_row is None or ps_row is None:
            what = f"account {body.account_id}" if account_row is None else "the permission set"
            return ApproverCheck(
                allowed=False, detail=f"{what} is not in the directory", approver=approver
            )
        account, arn = _account(account_row), ps_row.arn
        rules = [
            rule
            for rule in map(
                approver_rule, await repository.all_policies(session, ApproverPolicyRow)
            )
            if evaluation.approver_rule_matches(rule, account, arn)
        ]
        cached_groups = await repository.group_ids_of_user(session, approver_row.id)
        store_id = (await repository.get_directory_state(session)).identity_store_id
    if not rules:
        return ApproverCheck(
            allowed=False,
            detail=f"no approver policy covers {ps_row.name} on account {account.id}",
            approver=approver,
            approvals_needed=1,
        )
    quorum = max(rule.approvals_needed for rule in rules)
    if any(approver_row.id in rule.user_ids for rule in rules):
        return ApproverCheck(
            allowed=True,
            detail="named as an approver by an approver policy",
            approver=approver,
            approvals_needed=quorum,
        )
    groups, source = cached_groups, "directory cache"
    if reader is not None and store_id is not None:
        try:
            groups, source = await reader.group_ids_of(store_id, approver_row.id), "Identity Center"
        except Exception as exc:  # noqa: BLE001 - the cache is the documented fallback
            log.warning("directory.live_groups_failed", error=repr(exc), user_id=approver_row.id)
    wanted = evaluation.group_ids_of(rules)
    if groups & wanted:
        return ApproverCheck(
            allowed=True,
            detail=f"member of an approver group ({source})",
            approver=approver,
            approvals_needed=quorum,
        )
    return ApproverCheck(
        allowed=False,
        detail=f"{approver_row.username} is not an approver of {ps_row.name} on account "
        f"{account.id} (groups per {source})",
        approver=approver,
        approvals_needed=quorum,
    )


async def entitlements(
    session: AsyncSession, *, principal: Principal, by_email: bool, cache: PolicyCache
) -> bytes:
    """Every account and permission set the caller may request, with the merged limits.

    Returns the serialised `Entitlements` document: it can list thousands of accounts, so it is
    serialised once and kept per (user, directory version, policy version).
    """
    if principal.client_id is not None:
        raise Forbidden(
            "entitlements belong to people; a client asks POST /v1/evaluations for a user"
        )
    async with session.begin():
        versions = await repository.data_versions(session)
        row = await repository.user_by_username_or_email(
            session, username=principal.username, email=principal.email, by_email=by_email
        )
        if row is None:
            raise UnknownCaller(
                f"'{principal.email if by_email else principal.username}' has no Identity Center "
                "user; ask an admin to refresh the directory or check POLICY_USER_MATCH"
            )
        key = (row.id, versions["directory"], versions["policy"])
        answer = cache.answers.get(key)
        if answer is not None:
            return answer
        (directory_version, policy_version), directory, policies = await _copies(session, cache)
    user = directory.users_by_id.get(row.id) or _user(row)
    found = _entitlements(user, directory, policies)
    answer = found.model_dump_json().encode()
    # Keyed by the versions the copies were loaded for, which may be newer than `versions`.
    cache.answers.put((row.id, directory_version, policy_version), answer)
    return answer


def _entitlements(
    user: evaluation.User, directory: DirectoryCopy, policies: PolicyCopy
) -> Entitlements:
    settings = policies.settings
    offers = evaluation.entitlements_for(
        user=user,
        accounts=directory.accounts,
        permission_sets=directory.permission_sets,
        eligibility_rules=policies.eligibility_rules,
        settings=settings,
    )
    return Entitlements(
        user=Requester(user_id=user.id, username=user.username, email=user.email),
        items=[
            Entitlement(
                # Trusted rows of our own cache: skip re-validating thousands of them.
                accounts=[
                    AccountRef.model_construct(id=a.id, name=a.name, ou_path=list(a.ou_path))
                    for a in offer.accounts
                ],
                permission_sets=[
                    EntitlementOption(
                        permission_set=PermissionSetRef(
                            arn=p.arn,
                            name=p.name,
                            session_duration_minutes=p.session_duration_minutes,
                        ),
                        max_duration_minutes=limits.max_duration_minutes
                        or settings.max_duration_minutes,
                        approval_required=limits.approval_required,
                        ticket_required=limits.ticket_required,
                        policy_ids=list(limits.policy_ids),
                    )
                    for p, limits in offer.options
                ],
            )
            for offer in offers
        ],
        default_duration_minutes=settings.default_duration_minutes,
        settings=settings.request_settings(),
    )


# -- directory ----------------------------------------------------------------------------------

DirectoryKind = Literal["accounts", "ous", "permission-sets", "users", "groups"]


@dataclass(frozen=True)
class _Listing:
    """How one directory kind is listed: its table, keyset (name, id), searched columns, view."""

    model: type[Any]
    sort: tuple[InstrumentedAttribute[str], InstrumentedAttribute[str]]
    search_columns: tuple[InstrumentedAttribute[Any], ...]
    view: type[BaseModel]


_LISTINGS: dict[str, _Listing] = {
    "accounts": _Listing(
        DirectoryAccount,
        (DirectoryAccount.name, DirectoryAccount.id),
        (DirectoryAccount.name, DirectoryAccount.id),
        AccountView,
    ),
    "ous": _Listing(
        DirectoryOu, (DirectoryOu.name, DirectoryOu.id), (DirectoryOu.name, DirectoryOu.id), OuView
    ),
    "permission-sets": _Listing(
        DirectoryPermissionSet,
        (DirectoryPermissionSet.name, DirectoryPermissionSet.arn),
        (DirectoryPermissionSet.name, DirectoryPermissionSet.arn),
        PermissionSetView,
    ),
    "users": _Listing(
        DirectoryUser,
        (DirectoryUser.username, DirectoryUser.id),
        (DirectoryUser.username, DirectoryUser.email, DirectoryUser.display_name),
        UserView,
    ),
    "groups": _Listing(
        DirectoryGroup, (DirectoryGroup.name, DirectoryGroup.id), (DirectoryGroup.name,), GroupView
    ),
}


async def directory_page(
    session: AsyncSession,
    *,
    kind: DirectoryKind,
    search: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Any]:
    """One keyset page of directory items of one kind, by name."""
    after = decode_cursor(cursor)
    listing = _LISTINGS[kind]
    async with session.begin():
        rows = await repository.page_of(
            session,
            listing.model,
            sort=listing.sort,
            search_columns=listing.search_columns,
            search=search,
            after=after,
            limit=limit,
        )
    first, second = (column.key for column in listing.sort)
    return _page(
        rows,
        limit,
        lambda r: listing.view.model_validate(r, from_attributes=True),
        lambda r: (getattr(r, first), getattr(r, second)),
    )


R = TypeVar("R")


def _page(
    rows: list[R], limit: int, view: Callable[[R], BaseModel], key: Callable[[R], tuple[str, str]]
) -> Page[Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Any](
        items=[view(r) for r in rows],
        next_cursor=encode_cursor(key(rows[-1])) if more and rows else None,
    )


async def directory_status(session: AsyncSession, *, refreshing: bool = False) -> DirectoryStatus:
    """Where the cache stands (for /readyz and GET /v1/directory/status)."""
    async with session.begin():
        state = await repository.get_directory_state(session)
        counts = await repository.directory_counts(session)
    return DirectoryStatus(
        ok=bool(state.refreshed_at is not None and state.last_ok),
        refreshed_at=state.refreshed_at,
        last_attempt_at=state.last_attempt_at,
        last_error=state.last_error,
        last_duration_ms=state.last_duration_ms,
        instance_arn=state.instance_arn,
        identity_store_id=state.identity_store_id,
        counts=counts,
        refreshing=refreshing,
    )


class DirectoryRefresher:
    """Refreshes the cache from AWS, one refresh at a time; a failure keeps the last good copy."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        reader: DirectoryReader,
        *,
        seed_demo: bool = False,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.reader = reader
        self._seed_demo = seed_demo
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        """A refresh is in progress in this process."""
        return self._lock.locked()

    async def refresh(self, *, requested_by: Actor | None = None) -> RefreshResult:
        """Read AWS and swap the cache; on failure record it and keep the copy. Emits an event."""
        async with self._lock:
            started = time.monotonic()
            snapshot: DirectorySnapshot | None = None
            error: str | None = None
            try:
                snapshot = await self.reader.read()
            except Exception as exc:  # noqa: BLE001 - any failure keeps the last good copy
                error = str(exc)[:1000] or type(exc).__name__
                log.warning("directory.refresh_failed", error=error)
            duration_ms = int((time.monotonic() - started) * 1000)
            async with self._sessionmaker() as session, session.begin():
                await repository.lock(session, "directory")
                if snapshot is not None:
                    await repository.replace_directory(session, snapshot)
                counts = await repository.directory_counts(session)
                await repository.record_refresh(
                    session,
                    at=utc_now(),
                    ok=snapshot is not None,
                    duration_ms=duration_ms,
                    counts=counts,
                    error=error,
                    snapshot=snapshot,
                )
                await outbox.add(
                    session,
                    DirectoryRefreshedV1(
                        data=DirectoryRefreshedData(
                            counts=counts,
                            duration_ms=duration_ms,
                            ok=snapshot is not None,
                            error=error,
                            requested_by=requested_by,
                        )
                    ),
                )
            log.info(
                "directory.refreshed",
                ok=snapshot is not None,
                duration_ms=duration_ms,
                **counts.model_dump(),
            )
        if snapshot is not None and self._seed_demo:
            async with self._sessionmaker() as session:
                await seed_demo_policies(session)
        return RefreshResult(
            ok=snapshot is not None, duration_ms=duration_ms, counts=counts, error=error
        )

    async def run_periodically(self, interval: float, *, at_start: bool) -> None:
        """Refresh every `interval` seconds (and once at start); never dies of one failure.

        After a failure the next attempt comes sooner (at most `RETRY_SECONDS`), so a directory
        that was briefly unreachable does not stay stale for a whole interval.
        """
        ok = await self._refresh_logged() if at_start else True
        while interval > 0:
            await asyncio.sleep(interval if ok else min(interval, RETRY_SECONDS))
            ok = await self._refresh_logged()

    async def _refresh_logged(self) -> bool:
        try:
            return (await self.refresh()).ok
        except Exception:
            log.exception("directory.scheduled_refresh_failed")
            return False


# -- demo policies ------------------------------------------------------------------------------

DEMO_ACTOR = Actor(username="policy-service (demo seed)")


async def seed_demo_policies(session: AsyncSession) -> bool:
    """Seed the example policies once, when no policy exists; True when it seeded."""
    async with session.begin():
        await repository.lock(session, "policy-set")
        row = await repository.get_settings_row(session, for_update=True)
        if row.demo_seeded_at is not None or await repository.count_policies(session):
            return False
        groups = await repository.ids_by_name(
            session,
            DirectoryGroup,
            ["TEAM-Users", "TEAM-Approvers-Production", "TEAM-Approvers-NonProduction"],
        )
        ous = await repository.ids_by_name(session, DirectoryOu, ["Prod", "NonProd"])
        sets = await repository.ids_by_name(
            session, DirectoryPermissionSet, ["ReadOnly", "PowerUser", "Admin"]
        )
        if len(groups) < 3 or len(ous) < 2 or len(sets) < 3:
            log.warning("policy.demo_seed_skipped", groups=groups, ous=ous, permission_sets=sets)
            return False
        now = utc_now()
        label = actor_label(DEMO_ACTOR)
        bodies: list[tuple[PolicyKind[Any, Any], BaseModel]] = [
            (
                ELIGIBILITY,
                EligibilityPolicyIn(
                    name="NonProd: ReadOnly and PowerUser, no approval, up to 8 h",
                    group_ids=[groups["TEAM-Users"]],
                    ou_ids=[ous["NonProd"]],
                    permission_set_arns=[sets["ReadOnly"], sets["PowerUser"]],
                    max_duration_minutes=480,
                    approval_required=False,
                ),
            ),
            (
                ELIGIBILITY,
                EligibilityPolicyIn(
                    name="Prod: ReadOnly and Admin, approval required, up to 4 h",
                    group_ids=[groups["TEAM-Users"]],
                    ou_ids=[ous["Prod"]],
                    permission_set_arns=[sets["ReadOnly"], sets["Admin"]],
                    max_duration_minutes=240,
                    approval_required=True,
                ),
            ),
            (
                APPROVER,
                ApproverPolicyIn(
                    name="Prod approvers",
                    ou_ids=[ous["Prod"]],
                    approver_group_ids=[groups["TEAM-Approvers-Production"]],
                ),
            ),
            (
                APPROVER,
                ApproverPolicyIn(
                    name="NonProd approvers",
                    ou_ids=[ous["NonProd"]],
                    approver_group_ids=[groups["TEAM-Approvers-NonProduction"]],
                ),
            ),
        ]
        for kind, body in bodies:
            policy = kind.model(
                id=uuid.uuid4(),
                **_fields(body, type(body)),
                version=1,
                created_at=now,
                updated_at=now,
                created_by=label,
                updated_by=label,
            )
            repository.add_policy(session, policy)
            await session.flush()
            await outbox.add(
                session,
                kind.event(
                    "created",
                    DEMO_ACTOR,
                    str(policy.id),
                    None,
                    kind.view(policy).model_dump(mode="json"),
                ),
            )
        row.demo_seeded_at = now
        log.info("policy.demo_seeded", policies=len(bodies))
        return True
