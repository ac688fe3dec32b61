"""Building the HTTP request for one attempt: the body in the webhook's format (as a signed token
when it names a policy), sent as it asks (POST, or GET with query parameters), with the Standard
Webhooks headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

from yarl import URL

from schemas.deliveries import DeliveryTask
from schemas.webhooks import WebhookState
from services.sender.formats import Shaped, shape
from services.sender.jwt_body import PolicyTokens
from services.sender.signing import secret_key, signature_headers, unsigned_headers

USER_AGENT = f"Hookline/{version('hookline')} (+https://www.standardwebhooks.com/)"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """Everything needed to make one call, and nothing about how."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # The webhook takes https only: an http target is refused at the call, as the install's
    # policy refuses one.
    https_only: bool = False


def prepare_request(
    task: DeliveryTask, webhook: WebhookState, now_s: int, tokens: PolicyTokens | None = None
) -> PreparedRequest:
    """The delivery as its webhook wants it: shaped, sent by POST or GET, and signed.

    A webhook that names a policy is sent `{"jwt": …}` instead (`tokens`, jwt_body.py), whose
    `data` is the body it would otherwise get; raises RequestNotPrepared when its policy is
    disabled or gone.
    """
    shaped = shape(task, webhook)
    headers = {"user-agent": USER_AGENT, **shaped.headers}
    if webhook.webhook_policy is not None:
        assert tokens is not None, "a webhook with a policy is sent with the policies' tokens"
        token = tokens.wrap(webhook.webhook_policy, shaped.body(), task.delivery_id, now_s)
        shaped = Shaped(token)
    url = webhook.uri
    if webhook.method == "GET":
        # No body: the fields go in the query (a token as `jwt=`), and the query string as sent
        # is what is signed.
        target = URL(webhook.uri).extend_query(shaped.query())
        url, body, signed_content = str(target), b"", target.raw_query_string.encode()
    else:
        body = signed_content = shaped.body()
        headers["content-type"] = shaped.content_type
    if webhook.signed:
        # After a rotation the old secret signs beside the new one for a while: a subscriber that
        # has not switched yet still finds a signature it can check.
        now = datetime.fromtimestamp(now_s, UTC)
        keys = [secret_key(secret) for secret in webhook.signing_secrets(now)]
        headers.update(signature_headers(keys, task.delivery_id, now_s, signed_content))
    else:
        headers.update(unsigned_headers(task.delivery_id, now_s))
    return PreparedRequest(
        method=webhook.method,
        url=url,
        headers=headers,
        body=body,
        https_only=webhook.https_only,
    )
