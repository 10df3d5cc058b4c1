"""Read the directory from AWS: Organizations (OU tree, accounts) and Identity Center.

Every list call is paginated; independent calls run concurrently under one semaphore so a large
organization neither serialises nor floods the APIs. Accounts are listed per parent (one call per
OU, never one per account); permission sets need one `DescribePermissionSet` each, since no list
call returns their names.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from teamkit.aws import AwsClients

if TYPE_CHECKING:
    from types_aiobotocore_identitystore.client import IdentityStoreClient
    from types_aiobotocore_organizations.client import OrganizationsClient
    from types_aiobotocore_sso_admin.client import SSOAdminClient

log = structlog.get_logger(__name__)

T = TypeVar("T")

_ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


class DirectoryReadError(RuntimeError):
    """AWS could not be read completely; the message says which part failed."""


@dataclass(frozen=True)
class OuRecord:
    """An OU (or the root) and the ids from the root down to itself."""

    id: str
    name: str
    parent_id: str | None
    path: tuple[str, ...]


@dataclass(frozen=True)
class AccountRecord:
    """An account and the OU ids from the root down to its parent."""

    id: str
    name: str
    email: str | None
    status: str | None
    parent_id: str
    ou_path: tuple[str, ...]


@dataclass(frozen=True)
class PermissionSetRecord:
    """A permission set with its session duration in minutes."""

    arn: str
    name: str
    description: str | None
    session_duration_minutes: int | None


@dataclass(frozen=True)
class UserRecord:
    """An Identity Center user."""

    id: str
    username: str
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class GroupRecord:
    """An Identity Center group."""

    id: str
    name: str


@dataclass
class DirectorySnapshot:
    """Everything one refresh read, consistent enough to replace the cache as a whole."""

    instance_arn: str
    identity_store_id: str
    root_id: str
    ous: list[OuRecord] = field(default_factory=list)
    accounts: list[AccountRecord] = field(default_factory=list)
    permission_sets: list[PermissionSetRecord] = field(default_factory=list)
    users: list[UserRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (group id, user id)


def session_minutes(duration: str | None) -> int | None:
    """Minutes of an ISO 8601 duration such as `PT1H` or `PT1H30M` (None if absent/unparsable)."""
    if not duration:
        return None
    match = _ISO_DURATION.match(duration)
    if match is None:
        return None
    hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    total = hours * 60 + minutes + seconds // 60
    return total or None


class DirectoryReader:
    """Reads a `DirectorySnapshot` with bounded concurrency."""

    def __init__(
        self, clients: AwsClients, *, concurrency: int = 8, instance_arn: str | None = None
    ) -> None:
        self._clients = clients
        self._concurrency = concurrency
        self._instance_arn = instance_arn

    async def read(self) -> DirectorySnapshot:
        """Read the whole directory; raise DirectoryReadError naming what failed."""
        limit = asyncio.Semaphore(self._concurrency)
        async with AsyncExitStack() as stack:
            orgs = await stack.enter_async_context(self._clients.organizations())
            sso = await stack.enter_async_context(self._clients.sso_admin())
            ids = await stack.enter_async_context(self._clients.identitystore())
            reading = _Reading(limit, orgs, sso, ids)
            try:
                instance_arn, store_id = await reading.instance(self._instance_arn)
                (
                    (root_id, ous, accounts),
                    permission_sets,
                    (users, groups, members),
                ) = await asyncio.gather(
                    reading.organization(),
                    reading.permission_sets(instance_arn),
                    reading.identity_store(store_id),
                )
            except DirectoryReadError:
                raise
            except Exception as exc:
                raise DirectoryReadError(f"{type(exc).__name__}: {exc}"[:1000]) from exc
        return DirectorySnapshot(
            instance_arn=instance_arn,
            identity_store_id=store_id,
            root_id=root_id,
            ous=ous,
            accounts=accounts,
            permission_sets=permission_sets,
            users=users,
            groups=groups,
            memberships=members,
        )

    async def group_ids_of(self, identity_store_id: str, user_id: str) -> set[str]:
        """The user's current groups, straight from Identity Center (the live approver check)."""
        async with self._clients.identitystore() as ids:
            paginator = ids.get_paginator("list_group_memberships_for_member")
            groups: set[str] = set()
            async for page in paginator.paginate(
                IdentityStoreId=identity_store_id, MemberId={"UserId": user_id}
            ):
                groups.update(m["GroupId"] for m in page["GroupMemberships"] if "GroupId" in m)
            return groups


class _Reading:
    def __init__(
        self,
        limit: asyncio.Semaphore,
        orgs: OrganizationsClient,
        sso: SSOAdminClient,
        ids: IdentityStoreClient,
    ) -> None:
        self._limit = limit
        self._orgs = orgs
        self._sso = sso
        self._ids = ids

    async def _call(self, call: Awaitable[T]) -> T:
        async with self._limit:
            return await call

    async def _pages(self, pages: AsyncIterable[T]) -> list[T]:
        # One paginated listing holds one slot: its pages are sequential anyway.
        async with self._limit:
            return [page async for page in pages]

    async def instance(self, wanted: str | None) -> tuple[str, str]:
        pages = await self._pages(self._sso.get_paginator("list_instances").paginate())
        instances = [i for page in pages for i in page["Instances"]]
        for instance in instances:
            if wanted is None or instance.get("InstanceArn") == wanted:
                return instance["InstanceArn"], instance["IdentityStoreId"]
        raise DirectoryReadError(
            f"no IAM Identity Center instance {wanted or ''} found; check POLICY_SSO_INSTANCE_ARN"
        )

    async def organization(self) -> tuple[str, list[OuRecord], list[AccountRecord]]:
        roots = (await self._call(self._orgs.list_roots()))["Roots"]
        if not roots:
            raise DirectoryReadError("the organization has no root")
        root = roots[0]
        ous = [OuRecord(root["Id"], root.get("Name", "Root"), None, (root["Id"],))]
        accounts: list[AccountRecord] = []
        level = [ous[0]]
        # Breadth first: each level's children and accounts are read concurrently.
        while level:
            children = await asyncio.gather(*(self._children(parent) for parent in level))
            level = []
            for child_ous, child_accounts in children:
                ous.extend(child_ous)
                accounts.extend(child_accounts)
                level.extend(child_ous)
        return root["Id"], ous, accounts

    async def _children(self, parent: OuRecord) -> tuple[list[OuRecord], list[AccountRecord]]:
        ou_pages, account_pages = await asyncio.gather(
            self._pages(
                self._orgs.get_paginator("list_organizational_units_for_parent").paginate(
                    ParentId=parent.id
                )
            ),
            self._pages(
                self._orgs.get_paginator("list_accounts_for_parent").paginate(ParentId=parent.id)
            ),
        )
        ous = [
            OuRecord(ou["Id"], ou.get("Name", ou["Id"]), parent.id, (*parent.path, ou["Id"]))
            for page in ou_pages
            for ou in page["OrganizationalUnits"]
        ]
        accounts = [
            AccountRecord(
                id=account["Id"],
                name=account.get("Name", account["Id"]),
                email=account.get("Email"),
                status=account.get("Status"),
                parent_id=parent.id,
                ou_path=parent.path,
            )
            for page in account_pages
            for account in page["Accounts"]
        ]
        return ous, accounts

    async def permission_sets(self, instance_arn: str) -> list[PermissionSetRecord]:
        pages = await self._pages(
            self._sso.get_paginator("list_permission_sets").paginate(InstanceArn=instance_arn)
        )
        described = await asyncio.gather(
            *(
                self._call(
                    self._sso.describe_permission_set(
                        InstanceArn=instance_arn, PermissionSetArn=arn
                    )
                )
                for page in pages
                for arn in page["PermissionSets"]
            )
        )
        result: list[PermissionSetRecord] = []
        for answer in described:
            ps: Any = answer["PermissionSet"]
            result.append(
                PermissionSetRecord(
                    arn=ps["PermissionSetArn"],
                    name=ps.get("Name", ps["PermissionSetArn"]),
                    description=ps.get("Description"),
                    session_duration_minutes=session_minutes(ps.get("SessionDuration")),
                )
            )
        return result

    async def identity_store(
        self, store_id: str
    ) -> tuple[list[UserRecord], list[GroupRecord], list[tuple[str, str]]]:
        user_pages, group_pages = await asyncio.gather(
            self._pages(self._ids.get_paginator("list_users").paginate(IdentityStoreId=store_id)),
            self._pages(self._ids.get_paginator("list_groups").paginate(IdentityStoreId=store_id)),
        )
        users = [
            UserRecord(
                id=u["UserId"],
                username=u.get("UserName", u["UserId"]),
                email=_primary_email(u.get("Emails", [])),
                display_name=u.get("DisplayName"),
            )
            for page in user_pages
            for u in page["Users"]
        ]
        groups = [
            GroupRecord(id=g["GroupId"], name=g.get("DisplayName", g["GroupId"]))
            for page in group_pages
            for g in page["Groups"]
        ]
        member_pages = await asyncio.gather(
            *(
                self._pages(
                    self._ids.get_paginator("list_group_memberships").paginate(
                        IdentityStoreId=store_id, GroupId=group.id
                    )
                )
                for group in groups
            )
        )
        known_users = {u.id for u in users}
        memberships = sorted(
            {
                (group.id, m["MemberId"]["UserId"])
                for group, pages in zip(groups, member_pages, strict=True)
                for page in pages
                for m in page["GroupMemberships"]
                if "UserId" in m.get("MemberId", {}) and m["MemberId"]["UserId"] in known_users
            }
        )
        return users, groups, memberships


def _primary_email(emails: Any) -> str | None:
    values = [e for e in emails if e.get("Value")]
    primary = [e for e in values if e.get("Primary")]
    chosen = (primary or values or [None])[0]
    return chosen["Value"] if chosen else None
