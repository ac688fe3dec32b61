"""The webhooks API's OpenAPI document (served by the router at `/openapi.json`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from schemas.catalog import EventTypeView
from schemas.events import EVENT_TYPE_PATTERN, MAX_TYPE_LENGTH
from schemas.history import (
    AttemptView,
    DeliveryView,
    QuarantineChoice,
    QuarantinedView,
    RedriveRequest,
    RedriveView,
    ReplayRequest,
    ReplayView,
)
from schemas.webhooks import SecretRotate, Webhook, WebhookCreate, WebhookPatch
from services.router.history_api import DEFAULT_LIMIT, MAX_LIMIT, OUTCOMES
from services.router.paging import MAX_PER_PAGE
from services.runtime.openapi import UNAUTHORIZED, document, error, json_content, ref

WEBHOOK_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The webhook's id, `wh_…`.",
}
SECRETS = {
    "type": "object",
    "properties": {
        "secret": {"type": "string", "pattern": "^whsec_"},
        "previous_secret_expires_at": {
            "type": "string",
            "format": "date-time",
            "description": "Until when the secret a rotation replaced still signs beside it.",
        },
    },
    "required": ["secret"],
}
CREATED = {"allOf": [ref(Webhook), SECRETS]}
NOT_FOUND = error("No webhook of this id (that this token may see).")
UNAVAILABLE = error(
    "The broker did not take or confirm the change; try again.", **{"Retry-After": "string"}
)
NOT_JSON = error("The body is not sent as application/json.")
INVALID_WEBHOOK = error(
    "Invalid input: `errors` names each wrong field; `event` too when it is an exact type the "
    "event catalog lacks while uncataloged types are refused."
)


# The operations on one webhook, which the created webhook's id leads to (OpenAPI links: a
# client generator, or schemathesis's stateful phase, follows them).
BY_ID = [
    "getWebhook",
    "updateWebhook",
    "deleteWebhook",
    "getSecret",
    "rotateSecret",
    "testWebhook",
    "listDeliveries",
    "replayWebhook",
]
LINKS = {name: {"operationId": name, "parameters": {"id": "$response.body#/id"}} for name in BY_ID}


def _operation(
    operation_id: str, summary: str, responses: dict[str, Any], **more: Any
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {**responses, "401": UNAUTHORIZED},
        **more,
    }


PAGING_PARAMETERS = [
    {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999, "default": 1},
    },
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 20},
    },
]
PAGING_HEADERS = {
    "Link": {
        "schema": {"type": "string"},
        "description": "The first, previous, next and last pages.",
    },
    **{
        f"X-Pagination-{name}": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}
        for name in ("Per-Page", "Current-Page", "Total-Pages", "Total-Entries")
    },
}


def _listing(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "get": _operation(
            operation_id,
            summary,
            {
                "200": {
                    "description": "One page, newest first.",
                    "headers": PAGING_HEADERS,
                    "content": json_content({"type": "array", "items": ref(Webhook)}),
                },
                "400": error("`page` or `per_page` is not a whole number in range."),
            },
            parameters=PAGING_PARAMETERS,
        )
    }


RATES = {
    "type": "object",
    "properties": {
        "windows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "window_s": {"type": "integer"},
                    "attempts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "per_s": {"type": "object", "additionalProperties": {"type": "number"}},
                },
                "required": ["window_s", "attempts", "per_s"],
            },
        }
    },
    "required": ["windows"],
}
HISTORY_PARAMETERS = [
    {
        "name": "outcome",
        "in": "query",
        "schema": {"type": "string", "enum": list(OUTCOMES)},
        "description": "What the newest attempt decided.",
    },
    {"name": "event_type", "in": "query", "schema": {"type": "string", "minLength": 1}},
    {
        "name": "since",
        "in": "query",
        "schema": {"type": "string", "format": "date-time"},
        "description": "First attempted at or after this time (RFC 3339, with its offset).",
    },
    {
        "name": "until",
        "in": "query",
        "schema": {"type": "string", "format": "date-time"},
        "description": "First attempted before this time.",
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Where the page before ended: taken from its `Link` header.",
    },
]


# The answers of a listing of deliveries (a webhook's, or the dead letters).
DELIVERY_PAGE = {
    "200": {
        "description": "One page; `Link` rel=next leads to the next one.",
        "headers": {"Link": {"schema": {"type": "string"}}},
        "content": json_content({"type": "array", "items": ref(DeliveryView)}),
    },
    "400": error("A query parameter is wrong: `errors` names it."),
    "404": NOT_FOUND,
}


def _history_paths() -> dict[str, Any]:
    return {
        "/webhooks/{id}/deliveries": {
            "parameters": [WEBHOOK_ID],
            "get": _operation(
                "listDeliveries",
                "The webhook's deliveries, newest first, each with its attempts.",
                DELIVERY_PAGE,
                parameters=HISTORY_PARAMETERS,
            ),
        },
        "/stats/attempts": {
            "get": _operation(
                "attemptRates",
                "Attempts of the last minute and five minutes, by outcome, and per second.",
                {
                    "200": {
                        "description": "One entry per window.",
                        "content": json_content(RATES),
                    }
                },
            )
        },
        "/deliveries/{delivery_id}": {
            "parameters": [
                {
                    "name": "delivery_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The delivery's id: the `webhook-id` header it was sent with.",
                }
            ],
            "get": _operation(
                "getDelivery",
                "One delivery with its attempts.",
                {
                    "200": {
                        "description": "The delivery.",
                        "content": json_content(ref(DeliveryView)),
                    },
                    "404": error("No delivery of this id (that this token may see)."),
                },
            ),
        },
    }


def _progress_path(
    operation_id: str, summary: str, model: type[BaseModel], missing: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """The path of one background job's progress, `…/{id}`."""
    return {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "get": _operation(
            operation_id,
            summary,
            {
                "200": {"description": "Its progress.", "content": json_content(ref(model))},
                "404": missing,
                **more,
            },
        ),
    }


def _dead_letter_paths() -> dict[str, Any]:
    filters = [p for p in HISTORY_PARAMETERS if p["name"] != "outcome"] + [
        {"name": "webhook_id", "in": "query", "schema": {"type": "string"}},
        {
            "name": "reason",
            "in": "query",
            "schema": {"type": "string"},
            "description": "The last attempt's error, exactly: `410 Gone`, …",
        },
    ]
    progress = {
        "description": "The redrive's progress.",
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": json_content(ref(RedriveView)),
    }
    return {
        "/dead-letters": {
            "get": _operation(
                "listDeadLetters",
                "Deliveries whose newest attempt dead-lettered them, newest first.",
                DELIVERY_PAGE,
                parameters=filters,
            )
        },
        "/dead-letters/redrive": {
            "post": _operation(
                "redriveDeadLetters",
                "Send dead letters again, each as its delivery's next attempt on a fresh "
                "schedule, with the same webhook-id.",
                {
                    "200": {**progress, "description": "Done: how many were redriven."},
                    "202": {**progress, "description": "Still running: follow `Location`."},
                    "400": error("Invalid input: `errors` names each wrong field."),
                    "404": NOT_FOUND,
                    "409": error("Another redrive is running."),
                    "415": NOT_JSON,
                },
                requestBody={"required": False, "content": json_content(ref(RedriveRequest))},
            )
        },
        "/dead-letters/redrives/{id}": _progress_path(
            "getRedrive",
            "A redrive's progress (kept by the router that runs it).",
            RedriveView,
            error("No redrive of this id on this router."),
        ),
    }


def _quarantine_paths() -> dict[str, Any]:
    forbidden = error("A token scoped to an account may not use the quarantine.")
    busy = error("A redrive or discard of the quarantine is running.")
    progress = {
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": json_content(ref(RedriveView)),
    }
    choice = {"required": False, "content": json_content(ref(QuarantineChoice))}

    def acting(operation_id: str, summary: str) -> dict[str, Any]:
        return _operation(
            operation_id,
            summary,
            {
                "200": {**progress, "description": "Done."},
                "202": {**progress, "description": "Still running: follow `Location`."},
                "400": error("Invalid input: `errors` names each wrong field."),
                "403": forbidden,
                "409": busy,
                "415": NOT_JSON,
            },
            requestBody=choice,
        )

    return {
        "/quarantine": {
            "get": _operation(
                "listQuarantine",
                "The first messages in quarantine, oldest first; they stay where they are.",
                {
                    "200": {
                        "description": "The messages; `X-Total-Count` says how many there are.",
                        "headers": {
                            "X-Total-Count": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}
                        },
                        "content": json_content({"type": "array", "items": ref(QuarantinedView)}),
                    },
                    "400": error("`limit` is not 1 to 1000."),
                    "403": forbidden,
                    "409": busy,
                },
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    }
                ],
            )
        },
        "/quarantine/redrive": {
            "post": acting(
                "redriveQuarantine",
                "Send the chosen messages (all, with no body) back to the queues they came from.",
            )
        },
        "/quarantine/discard": {
            "post": acting("discardQuarantine", "Drop the chosen messages on purpose.")
        },
        "/quarantine/passes/{id}": _progress_path(
            "getQuarantinePass",
            "A redrive's or discard's progress (kept by the router that runs it).",
            RedriveView,
            error("No such pass on this router."),
            **{"403": forbidden},
        ),
    }


def _replay_paths() -> dict[str, Any]:
    progress = {
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": json_content(ref(ReplayView)),
    }
    return {
        "/webhooks/{id}/replay": {
            "parameters": [WEBHOOK_ID],
            "post": _operation(
                "replayWebhook",
                "Send the webhook the events of a window again, from the events stream.",
                {
                    "202": {**progress, "description": "Started: follow `Location`."},
                    "400": error("Invalid input: `errors` names each wrong field."),
                    "404": NOT_FOUND,
                    "409": error("Another replay runs on this router."),
                    "415": NOT_JSON,
                },
                requestBody={"required": True, "content": json_content(ref(ReplayRequest))},
            ),
        },
        "/replays/{id}": _progress_path(
            "getReplay",
            "A replay's progress (kept by the router that runs it).",
            ReplayView,
            error("No replay of this id on this router (that this token may see)."),
        ),
    }


def _event_type_paths() -> dict[str, Any]:
    return {
        "/event-types": {
            "get": _operation(
                "listEventTypes",
                "The event catalog: every known event type with the JSON Schema of its `data`, "
                "in order of the type. Any valid token may read it.",
                {
                    "200": {
                        "description": "Every cataloged type (none without a catalog).",
                        "content": json_content({"type": "array", "items": ref(EventTypeView)}),
                    }
                },
                parameters=[
                    {
                        "name": "product",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only this product's types (its catalog file's name).",
                    }
                ],
            )
        },
        "/event-types/{type}": {
            "parameters": [
                {
                    "name": "type",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": EVENT_TYPE_PATTERN,
                        "maxLength": MAX_TYPE_LENGTH,
                    },
                    "description": "The event type: `recordApproval`, `request.update`.",
                }
            ],
            "get": _operation(
                "getEventType",
                "One cataloged event type.",
                {
                    "200": {
                        "description": "The type.",
                        "content": json_content(ref(EventTypeView)),
                    },
                    "404": error("The catalog has no such type."),
                },
            ),
        },
    }


def router_document() -> dict[str, Any]:
    # Imported here: the policies' part builds on this module's pieces.
    from services.router.policies_openapi import POLICY_MODELS, policy_paths

    body = {"required": True, "content": json_content(ref(WebhookCreate))}
    patch = {"required": True, "content": json_content(ref(WebhookPatch))}
    rotate = {"required": False, "content": json_content(ref(SecretRotate))}
    paths: dict[str, Any] = {
        "/webhooks": {
            **_listing("listWebhooks", "Every webhook."),
            "post": _operation(
                "createWebhook",
                "Create a webhook; the answer carries its signing secret.",
                {
                    "201": {
                        "description": "Created.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": json_content(CREATED),
                        "links": LINKS,
                    },
                    "400": INVALID_WEBHOOK,
                    "415": NOT_JSON,
                    "422": error(
                        "The target or the account is not allowed, or (to a token scoped to an "
                        "account) a webhook policy."
                    ),
                    "503": UNAVAILABLE,
                },
                requestBody=body,
            ),
        },
        "/webhooks/enabled": _listing("listEnabledWebhooks", "The enabled webhooks."),
        "/webhooks/disabled": _listing("listDisabledWebhooks", "The disabled webhooks."),
        "/webhooks/{id}": {
            "parameters": [WEBHOOK_ID],
            "get": _operation(
                "getWebhook",
                "One webhook.",
                {
                    "200": {"description": "The webhook.", "content": json_content(ref(Webhook))},
                    "404": NOT_FOUND,
                },
            ),
            "patch": _operation(
                "updateWebhook",
                "Change the fields sent; `null` clears an optional one.",
                {
                    "200": {"description": "The webhook.", "content": json_content(ref(Webhook))},
                    "400": INVALID_WEBHOOK,
                    "404": NOT_FOUND,
                    "415": NOT_JSON,
                    "422": error(
                        "The target is not allowed, or (to a token scoped to an account) a "
                        "webhook policy."
                    ),
                    "503": UNAVAILABLE,
                },
                requestBody=patch,
            ),
            "delete": _operation(
                "deleteWebhook",
                "Delete a webhook.",
                {"204": {"description": "Deleted."}, "404": NOT_FOUND, "503": UNAVAILABLE},
            ),
        },
        "/webhooks/{id}/secret": {
            "parameters": [WEBHOOK_ID],
            "get": _operation(
                "getSecret",
                "The signing secret.",
                {
                    "200": {"description": "The secret.", "content": json_content(SECRETS)},
                    "404": NOT_FOUND,
                },
            ),
        },
        "/webhooks/{id}/secret/rotate": {
            "parameters": [WEBHOOK_ID],
            "post": _operation(
                "rotateSecret",
                "A new signing secret at once; the old one signs beside it for the grace period.",
                {
                    "200": {"description": "The new secret.", "content": json_content(SECRETS)},
                    "400": error("The secret given is not a Standard Webhooks secret."),
                    "404": NOT_FOUND,
                    "415": NOT_JSON,
                    "503": UNAVAILABLE,
                },
                requestBody=rotate,
            ),
        },
        "/webhooks/{id}/test": {
            "parameters": [WEBHOOK_ID],
            "post": _operation(
                "testWebhook",
                "Send a test event (object_id 12345), once, even to a disabled webhook.",
                {
                    "204": {"description": "Sent to the deliver queue."},
                    "404": NOT_FOUND,
                    "503": UNAVAILABLE,
                },
            ),
        },
        **_history_paths(),
        **_dead_letter_paths(),
        **_quarantine_paths(),
        **_replay_paths(),
        **policy_paths(),
        **_event_type_paths(),
    }
    return document(
        title="Hookline webhooks API",
        version=version("hookline"),
        description="Webhook subscriptions, after Xurrent's webhooks API. Every change is a "
        "record of the webhooks stream, answered once this replica has read it back.",
        paths=paths,
        models=[
            Webhook,
            WebhookCreate,
            WebhookPatch,
            SecretRotate,
            DeliveryView,
            AttemptView,
            RedriveRequest,
            RedriveView,
            QuarantinedView,
            QuarantineChoice,
            ReplayRequest,
            ReplayView,
            *POLICY_MODELS,
            EventTypeView,
        ],
    )
