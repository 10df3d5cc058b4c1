"""In-memory copies of the directory and the policy set, keyed by their database versions.

Entitlements and evaluations read every account and every policy; reading them from Postgres on
each call dominated their latency. Instead each process keeps one copy of each, tagged with the
`data_version` counter (bumped by triggers in the writer's transaction, migration policy_0003)
it was loaded for, and each call first reads the counters (one small query):

- counter equal to the copy's → the copy is current and is used;
- otherwise the copy is reloaded (once: concurrent callers wait for the same load).

The counters are read *before* the rows, in the same transaction: under READ COMMITTED the rows
are then at least as new as the counter, so a copy never holds data older than its tag. A change
committed anywhere (this replica, another one, psql) is therefore seen by the next call.

The serialised entitlements answer is also kept per (user, directory version, policy version),
within a byte budget, least recently used out first.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from policy_service import evaluation
from policy_service.schemas import PolicySettings

T = TypeVar("T")

#: Bytes of serialised entitlements answers kept per process.
ANSWER_BUDGET_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class DirectoryCopy:
    """The directory as evaluation needs it."""

    accounts: tuple[evaluation.Account, ...]  # by id
    accounts_by_id: Mapping[str, evaluation.Account]
    permission_sets: Mapping[str, evaluation.PermissionSet]  # by ARN
    permission_sets_by_name: Mapping[str, evaluation.PermissionSet]  # unique names only
    users_by_id: Mapping[str, evaluation.User]  # with their group ids
    members: Mapping[str, frozenset[str]]  # group id → user ids


@dataclass(frozen=True)
class PolicyCopy:
    """The policy set and the settings."""

    settings: PolicySettings
    eligibility_rules: tuple[evaluation.EligibilityRule, ...]
    approver_rules: tuple[evaluation.ApproverRule, ...]


class VersionedCopy(Generic[T]):
    """One value and the version it was loaded for."""

    def __init__(self) -> None:
        self._version: int | None = None
        self._value: T | None = None
        self._lock = asyncio.Lock()
        self.loads = 0

    async def get(self, version: int, load: Callable[[], Awaitable[T]]) -> T:
        """The value for `version`, loaded by `load` unless the held copy is of that version."""
        if self._version == version and self._value is not None:
            return self._value
        async with self._lock:
            if self._version == version and self._value is not None:
                return self._value
            value = await load()
            self._value, self._version = value, version
            self.loads += 1
            return value


AnswerKey = tuple[str, int, int]  # user id, directory version, policy version


class AnswerCache:
    """Serialised answers by key, within a byte budget (least recently used out first)."""

    def __init__(self, budget_bytes: int = ANSWER_BUDGET_BYTES) -> None:
        self._budget = budget_bytes
        self._size = 0
        self._items: OrderedDict[AnswerKey, bytes] = OrderedDict()
        self._versions: tuple[int, int] | None = None

    def get(self, key: AnswerKey) -> bytes | None:
        """The answer stored for `key`, if any."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: AnswerKey, answer: bytes) -> None:
        """Keep `answer`; answers of older versions are dropped, being unreachable."""
        if len(answer) > self._budget:
            return
        if key[1:] != self._versions:
            self._items.clear()
            self._size = 0
            self._versions = key[1:]
        previous = self._items.pop(key, None)
        if previous is not None:
            self._size -= len(previous)
        self._items[key] = answer
        self._size += len(answer)
        while self._size > self._budget:
            _, dropped = self._items.popitem(last=False)
            self._size -= len(dropped)


class PolicyCache:
    """The per-process copies the decision use cases read (one per app, in the lifespan)."""

    def __init__(self, answer_budget_bytes: int = ANSWER_BUDGET_BYTES) -> None:
        self.directory: VersionedCopy[DirectoryCopy] = VersionedCopy()
        self.policies: VersionedCopy[PolicyCopy] = VersionedCopy()
        self.answers = AnswerCache(answer_budget_bytes)
