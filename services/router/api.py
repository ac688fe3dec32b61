"""The webhooks API (after Xurrent's): every change is a record appended to the webhooks stream,
answered once this replica has read it back, so a client reads its own writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from schemas.deliveries import TEST_OBJECT_ID, first_attempt
from schemas.event_patterns import is_pattern
from schemas.events import Event, new_event_id
from schemas.targets import TargetRefused
from schemas.topology import DELIVER_KEY
from schemas.webhooks import (
    SecretRotate,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookPatch,
    WebhookSecretRotated,
    WebhookState,
    WebhookUpdated,
    delivery_option_errors,
    evolve,
    new_secret,
    new_webhook_id,
)
from services.router.commits import commit as _commit
from services.router.commits import unavailable as _unavailable
from services.router.event_types_api import refused_event, test_data
from services.router.paging import paged_response
from services.router.policy_refs import refused_policy
from services.router.state import ROUTER, Router
from services.runtime.broker import PublishFailed
from services.runtime.http_errors import (
    ACCOUNT_SCOPE,
    error_response,
    field_errors,
    http_error,
)
from services.runtime.json_body import read_json

log = structlog.get_logger(__name__)

# The event type of a test call to a webhook whose `event` is a pattern.
TEST_EVENT_TYPE = "webhook.test"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhooks", list_all)
    app.router.add_get("/webhooks/enabled", list_enabled)
    app.router.add_get("/webhooks/disabled", list_disabled)
    app.router.add_post("/webhooks", create)
    app.router.add_get("/webhooks/{id}", get_one)
    app.router.add_patch("/webhooks/{id}", update)
    app.router.add_delete("/webhooks/{id}", delete)
    app.router.add_get("/webhooks/{id}/secret", get_secret)
    app.router.add_post("/webhooks/{id}/secret/rotate", rotate_secret)
    app.router.add_post("/webhooks/{id}/test", test_call)


def _router(request: web.Request) -> Router:
    return request.app[ROUTER]


def _show(router: Router, state: WebhookState) -> dict[str, Any]:
    webhook: Webhook = state.public(
        router.health.get(state.id), router.health.circuit_open_until(state.id)
    )
    return webhook.model_dump(mode="json")


def _visible(request: web.Request, state: WebhookState) -> bool:
    """A token scoped to an account sees only that account's webhooks."""
    scope = request.get(ACCOUNT_SCOPE)
    return scope is None or state.account == scope


def _listing(request: web.Request, disabled: bool | None) -> web.Response:
    """One page of the webhooks this token may see, newest first."""
    router = _router(request)
    states: Sequence[WebhookState] = router.newest_first()
    if disabled is not None or request.get(ACCOUNT_SCOPE) is not None:
        states = [
            state
            for state in states
            if _visible(request, state) and (disabled is None or state.disabled == disabled)
        ]
    return paged_response(request, states, lambda state: _show(router, state))


async def list_all(request: web.Request) -> web.Response:
    return _listing(request, None)


async def list_enabled(request: web.Request) -> web.Response:
    return _listing(request, False)


async def list_disabled(request: web.Request) -> web.Response:
    return _listing(request, True)


def _found(request: web.Request) -> WebhookState:
    webhook_id = request.match_info["id"]
    state = _router(request).webhook_log.table.get(webhook_id)
    if state is None or not _visible(request, state):  # another account's is not found either
        raise http_error(web.HTTPNotFound, "webhook not found", id=webhook_id)
    return state


async def get_one(request: web.Request) -> web.Response:
    return web.json_response(_show(_router(request), _found(request)))


def _secrets(state: WebhookState) -> dict[str, Any]:
    """The signing secret, and until when the one it replaced still signs beside it."""
    shown: dict[str, Any] = {"secret": state.secret}
    until = state.previous_secret_until
    if until is not None and len(state.signing_secrets(datetime.now(UTC))) > 1:
        shown["previous_secret_expires_at"] = until.isoformat().replace("+00:00", "Z")
    return shown


async def get_secret(request: web.Request) -> web.Response:
    return web.json_response(_secrets(_found(request)))


async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret at once (the caller's, or a generated one); the old one keeps
    signing beside it for the grace period, so subscribers can switch without a gap."""
    router = _router(request)
    state = _found(request)
    try:
        body = SecretRotate.model_validate(await read_json(request) if await request.read() else {})
    except ValidationError as error:
        return error_response(400, "invalid secret", errors=field_errors(error))
    now = datetime.now(UTC)
    record = WebhookSecretRotated(
        at=now,
        webhook_id=state.id,
        secret=body.secret or new_secret(),
        previous_until=now + router.secret_grace,
    )
    read_back = await _commit(router, record)
    log.info(
        "webhook.secret_rotated", webhook_id=state.id, grace_s=router.secret_grace.total_seconds()
    )
    # Stored but not read back yet: the table still holds the old secret, the record the new one.
    current = router.webhook_log.table.get(state.id) if read_back else None
    rotated = current or evolve(state, record, state.revision)
    assert rotated is not None, "a rotation keeps the webhook"
    return web.json_response(_secrets(rotated))


async def create(request: web.Request) -> web.Response:
    router = _router(request)
    try:
        body = WebhookCreate.model_validate(await read_json(request))
    except ValidationError as error:
        return error_response(400, "invalid webhook", errors=field_errors(error))
    if (refused := refused_event(request, body.event)) is not None:
        return refused
    table, policy = router.webhook_log.table, body.webhook_policy
    if (refused := refused_policy(request, table, policy, sent=policy is not None)) is not None:
        return refused
    if (refused := _refused_target(router, body.uri)) is not None:
        return refused
    option_errors = delivery_option_errors(
        uri=body.uri, payload_format=body.format, method=body.method, https_only=body.https_only
    )
    if option_errors:
        return error_response(400, "invalid webhook", errors=option_errors)
    account = body.account
    if (scope := request.get(ACCOUNT_SCOPE)) is not None:
        if account not in (None, scope):
            message = f"this token creates webhooks of account {scope!r} only"
            return error_response(
                422, "account not allowed", errors=[{"field": "account", "message": message}]
            )
        account = scope
    record = WebhookCreated(
        at=datetime.now(UTC),
        webhook_id=new_webhook_id(),
        name=body.name or body.event,
        event=body.event,
        uri=body.uri,
        description=body.description,
        disabled=body.disabled,
        mail_exceptions_to=body.mail_exceptions_to,
        secret=body.secret or new_secret(),
        account=account,
        format=body.format,
        method=body.method,
        https_only=body.https_only,
        signed=body.signed,
        webhook_policy=body.webhook_policy,
    )
    await _commit(router, record, webhook_id=record.webhook_id)
    state = router.webhook_log.table.get(record.webhook_id) or evolve(None, record, -1)
    assert state is not None, "a create always makes a webhook"
    log.info("webhook.created", webhook_id=state.id, subscribed_to=state.event)
    response = web.json_response({**_show(router, state), "secret": state.secret}, status=201)
    response.headers["Location"] = f"/webhooks/{state.id}"
    return response


def _refused_target(router: Router, uri: str) -> web.Response | None:
    """A 422 naming why the policy refuses a (well-formed) target, or None."""
    try:
        router.target_policy.check(uri)
    except TargetRefused as error:
        log.info("webhook.target_refused", uri=uri, reason=str(error))
        return error_response(
            422, "target not allowed", errors=[{"field": "uri", "message": str(error)}]
        )
    return None


async def update(request: web.Request) -> web.Response:
    router = _router(request)
    state = _found(request)
    try:
        patch = WebhookPatch.model_validate(await read_json(request))
        changes = patch.changes()
    except ValidationError as error:
        return error_response(400, "invalid webhook", errors=field_errors(error))
    if (refused := refused_event(request, patch.event)) is not None:
        return refused
    sent = "webhook_policy" in changes
    table = router.webhook_log.table
    if (refused := refused_policy(request, table, patch.webhook_policy, sent=sent)) is not None:
        return refused
    if patch.uri is not None and (refused := _refused_target(router, patch.uri)) is not None:
        return refused
    option_errors = delivery_option_errors(
        uri=patch.uri or state.uri,
        payload_format=patch.format or state.format,
        method=patch.method or state.method,
        https_only=state.https_only if patch.https_only is None else patch.https_only,
    )
    if option_errors:
        return error_response(400, "invalid webhook", errors=option_errors)
    if changes:
        record = WebhookUpdated(at=datetime.now(UTC), webhook_id=state.id, changes=changes)
        if not await _commit(router, record):
            shown = evolve(state, record, state.revision)
            assert shown is not None, "an update keeps the webhook"
            return web.json_response(_show(router, shown))
    state = _found(request)  # a concurrent delete wins: then this is a 404
    log.info("webhook.updated", webhook_id=state.id, fields=sorted(changes))
    return web.json_response(_show(router, state))


async def delete(request: web.Request) -> web.Response:
    router = _router(request)
    state = _found(request)
    await _commit(router, WebhookDeleted(at=datetime.now(UTC), webhook_id=state.id))
    log.info("webhook.deleted", webhook_id=state.id)
    return web.Response(status=204)


async def test_call(request: web.Request) -> web.Response:
    """Send a test event (object_id 12345) to the webhook, even when it is disabled."""
    router = _router(request)
    state = _found(request)
    event_type = TEST_EVENT_TYPE if is_pattern(state.event) else state.event
    event = Event(
        id=new_event_id(),
        type=event_type,
        data=test_data(request, event_type, state.name),
        source="hookline.test",
        object_id=TEST_OBJECT_ID,
        time=datetime.now(UTC),
    )
    task = first_attempt(event, state, test=True)
    try:
        await router.publisher.publish(
            router.topology.deliveries_exchange,
            DELIVER_KEY,
            task.model_dump_json().encode(),
            message_id=task.delivery_id,
            headers={"event_id": event.id, "webhook_id": state.id},
        )
    except PublishFailed as error:
        raise _unavailable(error) from None
    router.metrics.test_calls.inc()
    log.info("webhook.test_requested", webhook_id=state.id, delivery_id=task.delivery_id)
    return web.Response(status=204)
