"""The webhook policies API in the router's OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.webhook_policies import (
    NewWebhookPolicy,
    WebhookPolicy,
    WebhookPolicyCreate,
    WebhookPolicyPatch,
)
from services.router.openapi import (
    NOT_JSON,
    PAGING_HEADERS,
    PAGING_PARAMETERS,
    UNAVAILABLE,
    _operation,
)
from services.runtime.openapi import error, json_content, ref

POLICY_MODELS: list[type[BaseModel]] = [
    WebhookPolicy,
    NewWebhookPolicy,
    WebhookPolicyCreate,
    WebhookPolicyPatch,
]
POLICY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The policy's id, `pol_…`.",
}
FORBIDDEN = error("A token scoped to an account may not use webhook policies.")
NOT_FOUND = error("No webhook policy of this id.")
INVALID = error("Invalid input: `errors` names each wrong field (`jwt_alg` cannot be patched).")
BY_ID = ["getWebhookPolicy", "updateWebhookPolicy", "deleteWebhookPolicy"]
LINKS = {name: {"operationId": name, "parameters": {"id": "$response.body#/id"}} for name in BY_ID}


def _listing(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "get": _operation(
            operation_id,
            summary,
            {
                "200": {
                    "description": "One page, newest first.",
                    "headers": PAGING_HEADERS,
                    "content": json_content({"type": "array", "items": ref(WebhookPolicy)}),
                },
                "400": error("`page` or `per_page` is not a whole number in range."),
                "403": FORBIDDEN,
            },
            parameters=PAGING_PARAMETERS,
        )
    }


def policy_paths() -> dict[str, Any]:
    shown = {"description": "The policy.", "content": json_content(ref(WebhookPolicy))}
    return {
        "/webhook_policies": {
            **_listing("listWebhookPolicies", "Every webhook policy."),
            "post": _operation(
                "createWebhookPolicy",
                "Create a webhook policy with a fresh key; the answer, and only it, shows its "
                "public key (rs*, es*) or shared secret (hs*).",
                {
                    "201": {
                        "description": "Created.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": json_content(ref(NewWebhookPolicy)),
                        "links": LINKS,
                    },
                    "400": INVALID,
                    "403": FORBIDDEN,
                    "415": NOT_JSON,
                    "503": UNAVAILABLE,
                },
                requestBody={"required": True, "content": json_content(ref(WebhookPolicyCreate))},
            ),
        },
        "/webhook_policies/enabled": _listing(
            "listEnabledWebhookPolicies", "The enabled webhook policies."
        ),
        "/webhook_policies/disabled": _listing(
            "listDisabledWebhookPolicies", "The disabled webhook policies."
        ),
        "/webhook_policies/{id}": {
            "parameters": [POLICY_ID],
            "get": _operation(
                "getWebhookPolicy",
                "One webhook policy (never its key).",
                {"200": shown, "403": FORBIDDEN, "404": NOT_FOUND},
            ),
            "patch": _operation(
                "updateWebhookPolicy",
                "Change the fields sent; `null` clears `jwt_audience`. `jwt_alg` cannot change.",
                {
                    "200": shown,
                    "400": INVALID,
                    "403": FORBIDDEN,
                    "404": NOT_FOUND,
                    "415": NOT_JSON,
                    "503": UNAVAILABLE,
                },
                requestBody={"required": True, "content": json_content(ref(WebhookPolicyPatch))},
            ),
            "delete": _operation(
                "deleteWebhookPolicy",
                "Delete a webhook policy that no webhook names.",
                {
                    "204": {"description": "Deleted."},
                    "403": FORBIDDEN,
                    "404": NOT_FOUND,
                    "409": {
                        "description": "Webhooks name the policy: `webhooks` lists them.",
                        "content": json_content(
                            {
                                "allOf": [
                                    {"$ref": "#/components/schemas/Error"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "webhooks": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            }
                                        },
                                        "required": ["webhooks"],
                                    },
                                ]
                            }
                        ),
                    },
                    "503": UNAVAILABLE,
                },
            ),
        },
    }
