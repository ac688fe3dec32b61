"""Building the HTTP request for one attempt: the one step a payload format replaces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.deliveries import DeliveredPayload, DeliveryTask
from schemas.webhooks import WebhookState
from services.sender.jwt_body import PolicyTokens
from services.sender.signing import secret_key, signature_headers

USER_AGENT = "Hookline/0.1 (+https://www.standardwebhooks.com/)"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Everything needed to make one call, and nothing about how."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def prepare_request(
    task: DeliveryTask, webhook: WebhookState, now_s: int, tokens: PolicyTokens | None = None
) -> PreparedRequest:
    """A signed Standard Webhooks POST of the event to the webhook's uri.

    A webhook that names a policy is sent `{"jwt": …}` instead (`tokens`, jwt_body.py); raises
    RequestNotPrepared when its policy is disabled or gone.
    """
    body = DeliveredPayload.of(task.event, webhook.id).body()
    content_type = "application/json"
    if webhook.webhook_policy is not None:
        assert tokens is not None, "a webhook with a policy is sent with the policies' tokens"
        content_type, body = tokens.wrap(webhook.webhook_policy, body, task.delivery_id, now_s)
    # After a rotation the old secret signs beside the new one for a while: a subscriber that has
    # not switched yet still finds a signature it can check.
    now = datetime.fromtimestamp(now_s, UTC)
    keys = [secret_key(secret) for secret in webhook.signing_secrets(now)]
    headers = {
        "content-type": content_type,
        "user-agent": USER_AGENT,
        **signature_headers(keys, task.delivery_id, now_s, body),
    }
    return PreparedRequest(method="POST", url=webhook.uri, headers=headers, body=body)
