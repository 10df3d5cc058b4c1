"""Who hears what: the audiences of each event type, and the people behind them. Pure logic."""

from dataclasses import dataclass

from teamkit.events.request import RequestSubmittedData

#: Event types that notify people, and the audiences told, in order. Templates exist for each
#: (event type, audience) pair under `templates/<event type>/<audience>.j2`.
AUDIENCES: dict[str, tuple[str, ...]] = {
    "request.submitted": ("approver", "requester"),
    "request.approval_recorded": ("requester",),
    "request.approved": ("requester", "approver"),
    "request.rejected": ("requester",),
    "request.cancelled": ("requester", "approver"),
    "request.expired": ("requester",),
    "grant.scheduled": ("requester",),
    "access.granted": ("requester",),
    "access.ended": ("requester",),
    "grant.failed": ("requester", "approver", "ops"),
    "revoke.failed": ("requester", "approver", "ops"),
    "drift.repaired": ("ops",),
}

#: Event types published to SNS and offered to webhook subscriptions: the ones above, plus
#: `request.revoke_requested` (a ticketing system wants to know at once; people hear of the
#: revocation from `access.ended`, which says who revoked and why).
MACHINE_EVENT_TYPES: tuple[str, ...] = (*AUDIENCES, "request.revoke_requested")


@dataclass(frozen=True)
class Person:
    """One person to tell, in the role they hold for this event."""

    audience: str
    name: str
    email: str
    time_zone: str | None


def people(
    event_type: str, snapshot: RequestSubmittedData | None, *, ops_email: str | None
) -> list[Person]:
    """Everybody to tell about an event of `event_type`, each email address once.

    Without a snapshot (the request was submitted before this service kept them) only the
    operations address can be told: nobody else's address is known.
    """
    result: list[Person] = []
    seen: set[str] = set()

    def add(person: Person) -> None:
        key = person.email.strip().lower()
        if key and key not in seen:
            seen.add(key)
            result.append(person)

    for audience in AUDIENCES.get(event_type, ()):
        if audience == "ops" and ops_email:
            add(Person("ops", "Operations", ops_email, None))
        elif audience == "requester" and snapshot is not None:
            requester = snapshot.requester
            if requester.email:
                add(Person("requester", requester.username, requester.email, requester.time_zone))
        elif audience == "approver" and snapshot is not None:
            for approver in snapshot.approvers:
                if approver.email and approver.user_id != snapshot.requester.user_id:
                    add(Person("approver", approver.username, approver.email, None))
    return result
