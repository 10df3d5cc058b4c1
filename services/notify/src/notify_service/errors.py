"""Problems the notify API answers with (problem+json via teamkit.problems)."""

from uuid import UUID

from teamkit.problems import TYPE_BASE, NotFound


class WebhookNotFound(NotFound):
    """No webhook subscription has this id."""

    type = TYPE_BASE + "webhook-not-found"
    title = "Webhook not found"

    def __init__(self, webhook_id: UUID) -> None:
        super().__init__(
            f"No webhook has id {webhook_id}; list them with GET /v1/webhooks.",
            webhook_id=str(webhook_id),
        )
