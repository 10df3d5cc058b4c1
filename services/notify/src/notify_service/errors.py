"""Problems the notify API answers with (problem+json via teamkit.problems)."""

from uuid import UUID

from teamkit.problems import TYPE_BASE, BadRequest, NotFound


class WebhookNotFound(NotFound):
    """No webhook subscription has this id."""

    type = TYPE_BASE + "webhook-not-found"
    title = "Webhook not found"

    def __init__(self, webhook_id: UUID) -> None:
        super().__init__(
            f"No webhook has id {webhook_id}; list them with GET /v1/webhooks.",
            webhook_id=str(webhook_id),
        )


class InvalidCursor(BadRequest):
    """A pagination cursor that this API did not hand out."""

    type = TYPE_BASE + "invalid-cursor"
    title = "Invalid cursor"

    def __init__(self) -> None:
        super().__init__(
            "The cursor is not one this API returned; pass `next_cursor` from the previous page "
            "unchanged, or omit it to start from the first page."
        )
