"""Webhooks naming policies: a webhook may name only a policy that exists, and a policy that a
webhook names cannot be deleted."""

from __future__ import annotations

from aiohttp import web

from services.runtime.http_errors import ACCOUNT_SCOPE, error_response
from services.runtime.webhook_table import WebhookTable

FIELD = "webhook_policy"
# How many of the webhooks that name a policy a 409 lists.
MAX_NAMED = 100


def refused_policy(
    request: web.Request, table: WebhookTable, policy_id: str | None, *, sent: bool
) -> web.Response | None:
    """The answer refusing the `webhook_policy` a create or patch sent, or None to go on.

    Policies belong to the whole install: a token scoped to an account may not choose one, nor
    take one off (422), since a policy's key would then sign what another account's endpoint is
    sent. An id that names no policy is a 400.
    """
    if not sent:
        return None
    if request.get(ACCOUNT_SCOPE) is not None:
        message = "a token scoped to an account cannot choose a webhook policy"
        return error_response(
            422, "webhook policy not allowed", errors=[{"field": FIELD, "message": message}]
        )
    if policy_id is not None and table.policies.get(policy_id) is None:
        return error_response(
            400,
            "invalid webhook",
            errors=[{"field": FIELD, "message": f"no webhook policy {policy_id!r}"}],
        )
    return None


def webhooks_naming(table: WebhookTable, policy_id: str) -> list[str]:
    """The ids of the webhooks that name the policy, in the order they were created.

    A walk over every webhook: policies are deleted seldom, and an index kept for it would cost
    every router memory on every change."""
    naming = [state for state in table.webhooks.values() if state.webhook_policy == policy_id]
    return [state.id for state in sorted(naming, key=lambda state: (state.created_at, state.id))]
