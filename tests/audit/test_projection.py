import itertools
import random

from audit_service import projection
from teamkit.events import Event, RequestStatus
from tests.audit.factories import RequestStory

S = RequestStatus


def view_of(events: list[Event]) -> projection.RequestView:
    return projection.fold(str(events[0].subject), list(enumerate(events, start=1)))


def comparable(view: projection.RequestView) -> dict[str, object]:
    values = dict(vars(view))
    values.pop("event_count")
    values["decisions"] = sorted((d.username, d.decision, d.comment) for d in view.decisions)
    return values


class TestFold:
    def test_in_order_story(self) -> None:
        story = RequestStory()
        view = view_of(story.happy_path_revoked())
        assert view.status == S.REVOKED
        assert view.requester_username == "alice"
        assert view.account_name == "dev"
        assert [(d.username, d.comment) for d in view.decisions] == [("bob", "ok for the incident")]
        assert view.revoked_by == "bob"
        assert view.revoke_comment == "done early"
        assert view.approved_at == story.at(5)
        assert view.granted_at == story.at(30)
        assert view.ended_at == story.at(51)
        assert view.end_reason == "revoked"

    def test_any_arrival_order_gives_the_same_view(self) -> None:
        story = RequestStory()
        events = story.happy_path_revoked()
        expected = comparable(view_of(events))
        rng = random.Random(7)  # noqa: S311 - a reproducible shuffle, not a secret
        for _ in range(50):
            shuffled = events[:]
            rng.shuffle(shuffled)
            assert comparable(view_of(shuffled)) == expected

    def test_duplicates_change_nothing(self) -> None:
        story = RequestStory()
        events = story.happy_path_revoked()
        # Same event twice (same id), and the same approval re-sent with a new id.
        again = [*events, events[3], story.approval_recorded(5, "bob", "ok for the incident")]
        assert comparable(view_of(again)) == comparable(view_of(events))

    def test_terminal_status_never_regresses(self) -> None:
        story = RequestStory()
        events = [
            story.submitted(0),
            story.approved(5, "bob"),
            story.cancelled(6),
            story.status(6, S.CANCELLED, S.APPROVED),
            # Lifecycle raced the cancellation: its scheduling lands later in time.
            story.scheduled(7),
            story.status(7, S.SCHEDULED, S.APPROVED),
        ]
        for order in itertools.permutations(events):
            assert view_of(list(order)).status == S.CANCELLED

    def test_error_can_be_retried(self) -> None:
        story = RequestStory()
        events = [
            story.submitted(0),
            story.approved(5, "bob"),
            story.scheduled(6),
            story.grant_failed(30),
            story.status(30, S.ERROR, S.SCHEDULED, "AccessDeniedException"),
            story.status(40, S.SCHEDULED, S.ERROR),
            story.granted(41),
        ]
        view = view_of(events)
        assert view.status == S.IN_PROGRESS
        assert view.errors[0]["code"] == "AccessDeniedException"

    def test_lifecycle_before_snapshot(self) -> None:
        story = RequestStory()
        view = view_of([story.granted(30), story.ended(90)])
        assert view.status == S.ENDED
        assert view.requester_username is None
        assert view.account_id == story.account_id or view.account_id is None
