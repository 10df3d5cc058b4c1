"""The demo organization of `make run`: one declaration used by the moto seed and the dev issuer.

Shaped after the TEAM deployment guide: a nested OU tree, accounts spread over it, the four
permission sets, the TEAM-* groups and six demo people, plus the OAuth clients of the services
and of one ticketing integration.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoOu:
    """An organizational unit; `parent` is the parent OU name, or None under the root."""

    name: str
    parent: str | None


@dataclass(frozen=True)
class DemoAccount:
    """A member account placed in the OU named `ou`."""

    name: str
    email: str
    ou: str


@dataclass(frozen=True)
class DemoPermissionSet:
    """An Identity Center permission set with its session duration (ISO 8601)."""

    name: str
    description: str
    session_duration: str
    managed_policy_arn: str


@dataclass(frozen=True)
class DemoUser:
    """An Identity Center user and the groups they belong to."""

    username: str
    display_name: str
    email: str
    groups: tuple[str, ...]
    time_zone: str = "UTC"


@dataclass(frozen=True)
class DemoClient:
    """An OAuth2 client-credentials client of the dev issuer."""

    client_id: str
    secret: str
    scopes: tuple[str, ...]


OUS: tuple[DemoOu, ...] = (
    DemoOu("Workloads", None),
    DemoOu("Prod", "Workloads"),
    DemoOu("NonProd", "Workloads"),
    DemoOu("Team-A-Prod", "Prod"),
    DemoOu("Team-B-Prod", "Prod"),
    DemoOu("Team-A-NonProd", "NonProd"),
    DemoOu("Team-B-NonProd", "NonProd"),
    DemoOu("Security", None),
    DemoOu("Sandbox", None),
)

ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("team-a-prod", "team-a-prod@example.com", "Team-A-Prod"),
    DemoAccount("team-a-prod-data", "team-a-prod-data@example.com", "Team-A-Prod"),
    DemoAccount("team-b-prod", "team-b-prod@example.com", "Team-B-Prod"),
    DemoAccount("shared-prod", "shared-prod@example.com", "Prod"),
    DemoAccount("team-a-dev", "team-a-dev@example.com", "Team-A-NonProd"),
    DemoAccount("team-a-staging", "team-a-staging@example.com", "Team-A-NonProd"),
    DemoAccount("team-b-dev", "team-b-dev@example.com", "Team-B-NonProd"),
    DemoAccount("shared-nonprod", "shared-nonprod@example.com", "NonProd"),
    DemoAccount("log-archive", "log-archive@example.com", "Security"),
    DemoAccount("audit", "audit@example.com", "Security"),
    DemoAccount("sandbox-1", "sandbox-1@example.com", "Sandbox"),
)

PERMISSION_SETS: tuple[DemoPermissionSet, ...] = (
    DemoPermissionSet(
        "ReadOnly", "Read-only access", "PT1H", "arn:aws:iam::aws:policy/ReadOnlyAccess"
    ),
    DemoPermissionSet(
        "PowerUser", "Power user access", "PT4H", "arn:aws:iam::aws:policy/PowerUserAccess"
    ),
    DemoPermissionSet(
        "Admin", "Administrator access", "PT2H", "arn:aws:iam::aws:policy/AdministratorAccess"
    ),
    DemoPermissionSet(
        "Billing", "Billing access", "PT8H", "arn:aws:iam::aws:policy/job-function/Billing"
    ),
)

GROUPS: tuple[str, ...] = (
    "TEAM-Users",
    "TEAM-Approvers-Production",
    "TEAM-Approvers-NonProduction",
    "TEAM-Admins",
    "TEAM-Auditors",
)

USERS: tuple[DemoUser, ...] = (
    DemoUser("alice", "Alice Requester", "alice@example.com", ("TEAM-Users",), "Europe/Berlin"),
    DemoUser("frank", "Frank Requester", "frank@example.com", ("TEAM-Users",), "Asia/Tokyo"),
    DemoUser(
        "bob",
        "Bob Approver",
        "bob@example.com",
        ("TEAM-Users", "TEAM-Approvers-Production", "TEAM-Approvers-NonProduction"),
    ),
    DemoUser(
        "carol",
        "Carol Approver",
        "carol@example.com",
        ("TEAM-Users", "TEAM-Approvers-Production"),
        "America/New_York",
    ),
    DemoUser("dave", "Dave Admin", "dave@example.com", ("TEAM-Users", "TEAM-Admins")),
    DemoUser("erin", "Erin Auditor", "erin@example.com", ("TEAM-Auditors",)),
)

# Service clients call each other; the integration client stands for a ticketing system.
CLIENTS: tuple[DemoClient, ...] = (
    DemoClient(
        "request-service", "dev-request-secret", ("team.policy.evaluate", "team.directory.read")
    ),
    DemoClient("policy-service", "dev-policy-secret", ("team.directory.read",)),
    DemoClient("lifecycle-service", "dev-lifecycle-secret", ("team.directory.read",)),
    DemoClient("notify-service", "dev-notify-secret", ("team.directory.read",)),
    DemoClient("audit-service", "dev-audit-secret", ("team.directory.read",)),
    DemoClient(
        "ticketing",
        "dev-ticketing-secret",
        ("team.requests.write", "team.requests.approve", "team.audit.read"),
    ),
)

SES_SENDER = "team-notifications@example.com"
SNS_TOPIC_NAME = "team-notifications"


@dataclass(frozen=True)
class DemoOrg:
    """Everything the seed and the issuer need, in one value (tests may build smaller ones)."""

    ous: tuple[DemoOu, ...] = OUS
    accounts: tuple[DemoAccount, ...] = ACCOUNTS
    permission_sets: tuple[DemoPermissionSet, ...] = PERMISSION_SETS
    groups: tuple[str, ...] = GROUPS
    users: tuple[DemoUser, ...] = USERS
    clients: tuple[DemoClient, ...] = CLIENTS
    ses_sender: str = SES_SENDER
    sns_topic_name: str = SNS_TOPIC_NAME
    extra: dict[str, str] = field(default_factory=dict)


DEMO_ORG = DemoOrg()
