"""Every query of the policy service. Functions take the caller's session and never commit."""

import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from policy_service.directory import DirectorySnapshot
from policy_service.models import (
    ApproverPolicyRow,
    Base,
    DataVersion,
    DirectoryAccount,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryOu,
    DirectoryPermissionSet,
    DirectoryState,
    DirectoryUser,
    EligibilityPolicyRow,
    PolicySettingsRow,
)
from teamkit.events.common import DirectoryCounts

M = TypeVar("M", bound=Base)

# Bulk inserts go in chunks so one statement stays far below PostgreSQL's 65 535 parameters.
_CHUNK = 5000


def _lock_key(name: str) -> int:
    return zlib.crc32(f"policy:{name}".encode()) & 0x7FFFFFFF


async def lock(session: AsyncSession, name: str) -> None:
    """Take a transaction-scoped advisory lock: one directory write or import at a time."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})


# -- directory ----------------------------------------------------------------------------------


async def replace_directory(session: AsyncSession, snapshot: DirectorySnapshot) -> None:
    """Swap the whole cache for `snapshot`; readers see the old copy until the commit."""
    for model in (
        DirectoryMembership,
        DirectoryUser,
        DirectoryGroup,
        DirectoryPermissionSet,
        DirectoryAccount,
        DirectoryOu,
    ):
        await session.execute(delete(model))
    await _insert_many(
        session,
        DirectoryOu,
        [
            {"id": o.id, "name": o.name, "parent_id": o.parent_id, "path": list(o.path)}
            for o in snapshot.ous
        ],
    )
    await _insert_many(
        session,
        DirectoryAccount,
        [
            {
                "id": a.id,
                "name": a.name,
                "email": a.email,
                "status": a.status,
                "parent_id": a.parent_id,
                "ou_path": list(a.ou_path),
            }
            for a in snapshot.accounts
        ],
    )
    await _insert_many(
        session,
        DirectoryPermissionSet,
        [
            {
                "arn": p.arn,
                "name": p.name,
                "description": p.description,
                "session_duration_minutes": p.session_duration_minutes,
            }
            for p in snapshot.permission_sets
        ],
    )
    await _insert_many(
        session,
        DirectoryUser,
        [
            {"id": u.id, "username": u.username, "email": u.email, "display_name": u.display_name}
            for u in snapshot.users
        ],
    )
    await _insert_many(
        session, DirectoryGroup, [{"id": g.id, "name": g.name} for g in snapshot.groups]
    )
    await _insert_many(
        session,
        DirectoryMembership,
        [{"group_id": g, "user_id": u} for g, u in snapshot.memberships],
    )


async def _insert_many(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    for start in range(0, len(rows), _CHUNK):
        await session.execute(insert(model), rows[start : start + _CHUNK])


async def get_directory_state(session: AsyncSession) -> DirectoryState:
    """The one state row (created by the migration)."""
    return (
        await session.execute(select(DirectoryState).where(DirectoryState.id == 1))
    ).scalar_one()


async def record_refresh(
    session: AsyncSession,
    *,
    at: datetime,
    ok: bool,
    duration_ms: int,
    counts: DirectoryCounts,
    error: str | None = None,
    snapshot: DirectorySnapshot | None = None,
) -> None:
    """Note the outcome of a refresh; a failure leaves `refreshed_at` and the copy untouched."""
    values: dict[str, Any] = {
        "last_attempt_at": at,
        "last_ok": ok,
        "last_error": error,
        "last_duration_ms": duration_ms,
        "counts": counts.model_dump(),
    }
    if snapshot is not None:
        values |= {
            "refreshed_at": at,
            "instance_arn": snapshot.instance_arn,
            "identity_store_id": snapshot.identity_store_id,
            "root_id": snapshot.root_id,
        }
    await session.execute(update(DirectoryState).where(DirectoryState.id == 1).values(**values))


async def directory_counts(session: AsyncSession) -> DirectoryCounts:
    """How many items of each kind the cache holds."""
    counts = {}
    for name, model in (
        ("accounts", DirectoryAccount),
        ("ous", DirectoryOu),
        ("permission_sets", DirectoryPermissionSet),
        ("users", DirectoryUser),
        ("groups", DirectoryGroup),
        ("memberships", DirectoryMembership),
    ):
        counts[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return DirectoryCounts(**counts)


async def find_user(
    session: AsyncSession, ref: str, *, by_email: bool = False
) -> DirectoryUser | None:
    """A user by id, else by user name (case-insensitive), else by email when allowed."""
    user = await session.get(DirectoryUser, ref)
    if user is not None:
        return user
    column = DirectoryUser.email if by_email else DirectoryUser.username
    return (
        (
            await session.execute(
                select(DirectoryUser)
                .where(func.lower(column) == ref.lower())
                .order_by(DirectoryUser.id)
            )
        )
        .scalars()
        .first()
    )


async def user_by_username_or_email(
    session: AsyncSession, *, username: str | None, email: str | None, by_email: bool
) -> DirectoryUser | None:
    """Map a signed-in person to a directory user by the configured attribute."""
    ref = email if by_email else username
    if not ref:
        return None
    column = DirectoryUser.email if by_email else DirectoryUser.username
    return (
        (
            await session.execute(
                select(DirectoryUser)
                .where(func.lower(column) == ref.lower())
                .order_by(DirectoryUser.id)
            )
        )
        .scalars()
        .first()
    )


async def group_ids_of_user(session: AsyncSession, user_id: str) -> set[str]:
    """The groups the cache says the user belongs to."""
    rows = await session.execute(
        select(DirectoryMembership.group_id).where(DirectoryMembership.user_id == user_id)
    )
    return set(rows.scalars())


async def get_account(session: AsyncSession, account_id: str) -> DirectoryAccount | None:
    """An account by id."""
    return await session.get(DirectoryAccount, account_id)


async def find_permission_set(session: AsyncSession, ref: str) -> DirectoryPermissionSet | None:
    """A permission set by ARN, else by (unique) name."""
    found = await session.get(DirectoryPermissionSet, ref)
    if found is not None:
        return found
    rows = (
        (
            await session.execute(
                select(DirectoryPermissionSet).where(DirectoryPermissionSet.name == ref)
            )
        )
        .scalars()
        .all()
    )
    return rows[0] if len(rows) == 1 else None


async def all_accounts(session: AsyncSession) -> list[tuple[str, str, str, list[str]]]:
    """Every account as (id, name, parent id, OU path), by id.

    Plain rows, not ORM entities: entitlements read every account per call, and building
    thousands of entities would dominate its latency.
    """
    rows = await session.execute(
        select(
            DirectoryAccount.id,
            DirectoryAccount.name,
            DirectoryAccount.parent_id,
            DirectoryAccount.ou_path,
        ).order_by(DirectoryAccount.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def all_permission_sets(session: AsyncSession) -> list[tuple[str, str, int | None]]:
    """Every permission set as (ARN, name, session minutes); plain rows."""
    rows = await session.execute(
        select(
            DirectoryPermissionSet.arn,
            DirectoryPermissionSet.name,
            DirectoryPermissionSet.session_duration_minutes,
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def all_users(session: AsyncSession) -> list[tuple[str, str, str | None]]:
    """Every user as (id, user name, email); plain rows."""
    rows = await session.execute(
        select(DirectoryUser.id, DirectoryUser.username, DirectoryUser.email)
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def all_memberships(session: AsyncSession) -> list[tuple[str, str]]:
    """Every membership as (group id, user id); plain rows."""
    rows = await session.execute(select(DirectoryMembership.group_id, DirectoryMembership.user_id))
    return [(r[0], r[1]) for r in rows]


async def missing(
    session: AsyncSession, column: InstrumentedAttribute[str], values: Iterable[str]
) -> list[str]:
    """The values of `values` that `column` does not hold, in the order given."""
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return []
    present = set((await session.execute(select(column).where(column.in_(wanted)))).scalars())
    return [value for value in wanted if value not in present]


async def ids_by_name(
    session: AsyncSession,
    model: type[DirectoryGroup] | type[DirectoryOu] | type[DirectoryPermissionSet],
    names: Sequence[str],
) -> dict[str, str]:
    """Name → id (ARN for permission sets) for the named items that exist."""
    key = model.arn if model is DirectoryPermissionSet else model.id  # type: ignore[union-attr]
    rows = await session.execute(select(model.name, key).where(model.name.in_(list(names))))
    return {str(name): str(ident) for name, ident in rows}


async def page_of(
    session: AsyncSession,
    model: type[M],
    *,
    sort: tuple[InstrumentedAttribute[str], InstrumentedAttribute[str]],
    search_columns: Sequence[InstrumentedAttribute[str] | InstrumentedAttribute[str | None]],
    search: str | None,
    after: tuple[str, str] | None,
    limit: int,
    extra: Sequence[ColumnElement[bool]] = (),
) -> list[M]:
    """One keyset page ordered by (sort key, id); `limit + 1` rows tell whether more follow."""
    query = select(model).order_by(*sort).limit(limit + 1)
    if search:
        query = query.where(
            or_(*(column.icontains(search, autoescape=True) for column in search_columns))
        )
    if after is not None:
        query = query.where(tuple_(*sort) > tuple_(*after))
    for condition in extra:
        query = query.where(condition)
    return list((await session.execute(query)).scalars())


# -- versions -----------------------------------------------------------------------------------


async def data_versions(session: AsyncSession) -> dict[str, int]:
    """The `data_version` counters by name (`directory`, `policy`)."""
    rows = await session.execute(select(DataVersion.name, DataVersion.version))
    return {name: int(version) for name, version in rows}


# -- policies -----------------------------------------------------------------------------------

Policy = EligibilityPolicyRow | ApproverPolicyRow
P = TypeVar("P", EligibilityPolicyRow, ApproverPolicyRow)


async def get_policy(
    session: AsyncSession, model: type[P], policy_id: UUID, *, for_update: bool = False
) -> P | None:
    """One policy; `for_update` locks its row until the transaction ends."""
    query = select(model).where(model.id == policy_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalars().first()


async def all_policies(session: AsyncSession, model: type[P]) -> list[P]:
    """Every policy of one kind, by name."""
    return list((await session.execute(select(model).order_by(model.name, model.id))).scalars())


async def policy_page(
    session: AsyncSession, model: type[P], *, after: tuple[str, str] | None, limit: int
) -> list[P]:
    """One keyset page of policies ordered by (name, id)."""
    query = select(model).order_by(model.name, model.id).limit(limit + 1)
    if after is not None:
        query = query.where(tuple_(model.name, model.id) > tuple_(after[0], UUID(after[1])))
    return list((await session.execute(query)).scalars())


def add_policy(session: AsyncSession, row: Policy) -> None:
    """Stage a new policy row."""
    session.add(row)


async def delete_policy(session: AsyncSession, row: Policy) -> None:
    """Remove a policy row."""
    await session.delete(row)


async def count_policies(session: AsyncSession) -> int:
    """How many policies of either kind exist."""
    eligibility = await session.scalar(select(func.count()).select_from(EligibilityPolicyRow))
    approver = await session.scalar(select(func.count()).select_from(ApproverPolicyRow))
    return int(eligibility or 0) + int(approver or 0)


# -- settings -----------------------------------------------------------------------------------


async def get_settings_row(session: AsyncSession, *, for_update: bool = False) -> PolicySettingsRow:
    """The one settings row (created by the migration)."""
    query = select(PolicySettingsRow).where(PolicySettingsRow.id == 1)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one()
