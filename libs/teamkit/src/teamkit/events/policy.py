"""Events of the policy service, on `policy.events`.

The subject (Kafka key) is the policy id for policy changes, `settings` for settings and
`directory` for directory refreshes. Released classes are never edited: add an optional field,
or declare a `...V2` beside the V1.
"""

from typing import Any, ClassVar, Literal

from pydantic import Field

from teamkit.events.common import Actor, DirectoryCounts
from teamkit.events.envelope import Event, EventData
from teamkit.events.topics import Topic

_SOURCE = "policy"
_SOURCE_DESCRIPTION = "The emitting service."
_POLICY_SUBJECT_DESCRIPTION = "The policy id; the Kafka key."

SETTINGS_SUBJECT = "settings"
"""Subject (Kafka key) of `settings.updated`."""

DIRECTORY_SUBJECT = "directory"
"""Subject (Kafka key) of `directory.refreshed`."""


class PolicyChangeData(EventData):
    """Who changed a policy, and its JSON representation before and after."""

    actor: Actor
    policy_id: str
    before: dict[str, Any] | None = Field(
        description="The policy as the API returned it before the change; None when created."
    )
    after: dict[str, Any] | None = Field(
        description="The policy as the API returns it after the change; None when deleted."
    )


# -- eligibility policies ------------------------------------------------------------------------


class EligibilityPolicyCreatedData(PolicyChangeData):
    """A new eligibility policy (`before` is None)."""


class EligibilityPolicyCreatedV1(Event):
    """An admin created an eligibility policy (who may request what, for how long)."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["eligibility_policy.created"] = "eligibility_policy.created"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: EligibilityPolicyCreatedData


class EligibilityPolicyUpdatedData(PolicyChangeData):
    """A changed eligibility policy."""


class EligibilityPolicyUpdatedV1(Event):
    """An admin changed an eligibility policy."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["eligibility_policy.updated"] = "eligibility_policy.updated"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: EligibilityPolicyUpdatedData


class EligibilityPolicyDeletedData(PolicyChangeData):
    """A removed eligibility policy (`after` is None)."""


class EligibilityPolicyDeletedV1(Event):
    """An admin deleted an eligibility policy."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["eligibility_policy.deleted"] = "eligibility_policy.deleted"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: EligibilityPolicyDeletedData


# -- approver policies ---------------------------------------------------------------------------


class ApproverPolicyCreatedData(PolicyChangeData):
    """A new approver policy (`before` is None)."""


class ApproverPolicyCreatedV1(Event):
    """An admin created an approver policy (who approves what, and how many must)."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["approver_policy.created"] = "approver_policy.created"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: ApproverPolicyCreatedData


class ApproverPolicyUpdatedData(PolicyChangeData):
    """A changed approver policy."""


class ApproverPolicyUpdatedV1(Event):
    """An admin changed an approver policy."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["approver_policy.updated"] = "approver_policy.updated"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: ApproverPolicyUpdatedData


class ApproverPolicyDeletedData(PolicyChangeData):
    """A removed approver policy (`after` is None)."""


class ApproverPolicyDeletedV1(Event):
    """An admin deleted an approver policy."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["approver_policy.deleted"] = "approver_policy.deleted"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(description=_POLICY_SUBJECT_DESCRIPTION)
    data: ApproverPolicyDeletedData


# -- settings ------------------------------------------------------------------------------------


class SettingsUpdatedData(EventData):
    """Who changed the settings, and the non-secret settings before and after."""

    actor: Actor
    before: dict[str, Any] = Field(description="Non-secret settings before the change.")
    after: dict[str, Any] = Field(description="Non-secret settings after the change.")


class SettingsUpdatedV1(Event):
    """An admin changed the settings. Secrets never appear in this event."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["settings.updated"] = "settings.updated"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(default=SETTINGS_SUBJECT, description="Always `settings`; the Kafka key.")
    data: SettingsUpdatedData


# -- directory -----------------------------------------------------------------------------------


class DirectoryRefreshedData(EventData):
    """Outcome of one refresh of the directory cache from AWS."""

    counts: DirectoryCounts = Field(
        description="Items held after the refresh (the previous cache when `ok` is false)."
    )
    duration_ms: int = Field(ge=0)
    ok: bool
    error: str | None = Field(default=None, description="What failed, when `ok` is false.")
    requested_by: Actor | None = Field(
        default=None, description="Who asked for an on-demand refresh; None when periodic."
    )


class DirectoryRefreshedV1(Event):
    """The directory cache (Organizations, Identity Center) was refreshed, or failed to be."""

    topic: ClassVar[str] = Topic.POLICY
    type: Literal["directory.refreshed"] = "directory.refreshed"
    version: Literal[1] = 1
    source: str = Field(default=_SOURCE, description=_SOURCE_DESCRIPTION)
    subject: str = Field(
        default=DIRECTORY_SUBJECT, description="Always `directory`; the Kafka key."
    )
    data: DirectoryRefreshedData
