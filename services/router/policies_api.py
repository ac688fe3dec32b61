"""The webhook policies API (after Xurrent's): `/webhook_policies`, for admin tokens of every
account only. Every change is a record of the webhooks stream, answered once this replica has
read it back; the key made at creation is shown in that answer and never again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from schemas.webhook_policies import (
    PolicyState,
    WebhookPolicyCreate,
    WebhookPolicyCreated,
    WebhookPolicyDeleted,
    WebhookPolicyPatch,
    WebhookPolicyUpdated,
    evolve_policy,
    new_policy_id,
)
from services.router.commits import commit
from services.router.paging import paged_response
from services.router.policy_keys import new_policy_key
from services.router.policy_refs import MAX_NAMED, webhooks_naming
from services.router.state import ROUTER, Router
from services.runtime.http_errors import (
    error_response,
    field_errors,
    http_error,
    require_every_account,
)
from services.runtime.json_body import read_json

log = structlog.get_logger(__name__)

# How many of the webhooks that name a policy a refused delete names in its message (its
# `webhooks` lists up to MAX_NAMED).
MENTIONED = 10


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhook_policies", list_all)
    app.router.add_get("/webhook_policies/enabled", list_enabled)
    app.router.add_get("/webhook_policies/disabled", list_disabled)
    app.router.add_post("/webhook_policies", create)
    app.router.add_get("/webhook_policies/{id}", get_one)
    app.router.add_patch("/webhook_policies/{id}", update)
    app.router.add_delete("/webhook_policies/{id}", delete)


def _router(request: web.Request) -> Router:
    """The router, for a token of every account: policies belong to the whole install."""
    require_every_account(request, "webhook policies")
    return request.app[ROUTER]


def _show(state: PolicyState) -> dict[str, Any]:
    return state.public().model_dump(mode="json")


def _listing(request: web.Request, disabled: bool | None) -> web.Response:
    """One page of the policies, newest first."""
    router = _router(request)
    states = sorted(
        (
            state
            for state in router.webhook_log.table.policies.policies.values()
            if disabled is None or state.disabled == disabled
        ),
        key=lambda state: (state.created_at, state.id),
        reverse=True,
    )
    return paged_response(request, states, _show)


async def list_all(request: web.Request) -> web.Response:
    return _listing(request, None)


async def list_enabled(request: web.Request) -> web.Response:
    return _listing(request, False)


async def list_disabled(request: web.Request) -> web.Response:
    return _listing(request, True)


def _found(request: web.Request, router: Router) -> PolicyState:
    policy_id = request.match_info["id"]
    state = router.webhook_log.table.policies.get(policy_id)
    if state is None:
        raise http_error(web.HTTPNotFound, "webhook policy not found", id=policy_id)
    return state


async def get_one(request: web.Request) -> web.Response:
    return web.json_response(_show(_found(request, _router(request))))


async def create(request: web.Request) -> web.Response:
    """A policy with a fresh key; the answer shows what verifies its tokens, once."""
    router = _router(request)
    try:
        body = WebhookPolicyCreate.model_validate(await read_json(request))
    except ValidationError as error:
        return error_response(400, "invalid webhook policy", errors=field_errors(error))
    key = await asyncio.to_thread(new_policy_key, body.jwt_alg)  # RSA: not on the event loop
    record = WebhookPolicyCreated(
        at=datetime.now(UTC),
        policy_id=new_policy_id(),
        name=body.name,
        disabled=body.disabled,
        jwt_alg=body.jwt_alg,
        jwt_audience=body.jwt_audience,
        jwt_claim_expires_in=body.jwt_claim_expires_in,
        signing_key=key.signing_key,
    )
    await commit(router, record, policy_id=record.policy_id)
    state = router.webhook_log.table.policies.get(record.policy_id) or evolve_policy(
        None, record, -1
    )
    assert state is not None, "a create always makes a policy"
    log.info("webhook_policy.created", policy_id=state.id, jwt_alg=state.jwt_alg)
    # NewWebhookPolicy: the policy, and what verifies its tokens when there is something.
    answer = _show(state)
    answer |= {"public_key": key.public_key} if key.public_key is not None else {}
    answer |= {"secret": key.secret} if key.secret is not None else {}
    response = web.json_response(answer, status=201)
    response.headers["Location"] = f"/webhook_policies/{state.id}"
    return response


async def update(request: web.Request) -> web.Response:
    router = _router(request)
    state = _found(request, router)
    try:
        changes = WebhookPolicyPatch.model_validate(await read_json(request)).changes()
    except ValidationError as error:
        return error_response(400, "invalid webhook policy", errors=field_errors(error))
    if changes:
        record = WebhookPolicyUpdated(at=datetime.now(UTC), policy_id=state.id, changes=changes)
        if not await commit(router, record):
            shown = evolve_policy(state, record, state.revision)
            assert shown is not None, "an update keeps the policy"
            return web.json_response(_show(shown))
    state = _found(request, router)  # a concurrent delete wins: then this is a 404
    log.info("webhook_policy.updated", policy_id=state.id, fields=sorted(changes))
    return web.json_response(_show(state))


async def delete(request: web.Request) -> web.Response:
    """Delete a policy no webhook names (409 naming those that do)."""
    router = _router(request)
    state = _found(request, router)
    naming = webhooks_naming(router.webhook_log.table, state.id)
    if naming:
        named = ", ".join(naming[:MENTIONED]) + (
            f" and {len(naming) - MENTIONED} more" if len(naming) > MENTIONED else ""
        )
        return error_response(
            409,
            f"webhook policy is named by {len(naming)} webhook(s), {named}: point them at "
            "another policy (or none) first",
            webhooks=naming[:MAX_NAMED],
        )
    await commit(router, WebhookPolicyDeleted(at=datetime.now(UTC), policy_id=state.id))
    log.info("webhook_policy.deleted", policy_id=state.id)
    return web.Response(status=204)
