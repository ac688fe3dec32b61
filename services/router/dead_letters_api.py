"""The dead letters API: `GET /dead-letters` (from the delivery history), `POST
/dead-letters/redrive` and `GET /dead-letters/redrives/:id` (a pass over `<prefix>.dead`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from aiohttp import web
from pydantic import ValidationError

from schemas.deliveries import DeliveryTask
from schemas.history import RedriveRequest
from services.router.history_api import (
    QueryError,
    invalid_query,
    listing_query,
    page_of_deliveries,
)
from services.router.queue_passes import PassBusy, QueuePasses
from services.router.redrive import redrive_chosen
from services.router.state import ROUTER
from services.runtime.http_errors import (
    ACCOUNT_SCOPE,
    error_response,
    field_errors,
    http_error,
)
from services.runtime.json_body import read_json

# Passes over the dead queue.
REDRIVES = web.AppKey("redrives", QueuePasses)
# How long a redrive request waits for its pass before answering 202 with where to follow it.
ANSWER_WITHIN_S = 2.0


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dead-letters", list_dead_letters)
    app.router.add_post("/dead-letters/redrive", redrive)
    app.router.add_get("/dead-letters/redrives/{id}", get_redrive)


def _visible_ids(request: web.Request) -> frozenset[str] | None:
    """The webhooks this token may see; None for every one."""
    scope = request.get(ACCOUNT_SCOPE)
    if scope is None:
        return None
    table = request.app[ROUTER].webhook_log.table
    return frozenset(w.id for w in table.webhooks.values() if w.account == scope)


def _check_webhook(request: web.Request, webhook_id: str) -> None:
    visible = _visible_ids(request)
    known = request.app[ROUTER].webhook_log.table.get(webhook_id) is not None
    if not known or (visible is not None and webhook_id not in visible):
        raise http_error(web.HTTPNotFound, "webhook not found", id=webhook_id)


async def list_dead_letters(request: web.Request) -> web.Response:
    """Deliveries whose newest attempt dead-lettered them, newest first: why (the last error),
    each attempt, and the last answer."""
    try:
        wanted, limit, after = listing_query(request.query)
        if wanted.outcome is not None:
            raise QueryError("outcome", "dead letters are dead_lettered")
    except QueryError as error:
        return invalid_query(error)
    webhook_ids = _visible_ids(request)
    if (webhook_id := request.query.get("webhook_id")) is not None:
        _check_webhook(request, webhook_id)
        webhook_ids = frozenset({webhook_id})
    wanted = replace(
        wanted,
        outcome="dead_lettered",
        webhook_ids=webhook_ids,
        last_error=request.query.get("reason"),
    )
    return await page_of_deliveries(request, wanted, limit, after)


async def redrive(request: web.Request) -> web.Response:
    """Send the chosen dead letters again; 200 with the counts when the pass ended within
    ANSWER_WITHIN_S, else 202 with its progress and where to follow it."""
    try:
        body = RedriveRequest.model_validate(
            await read_json(request) if await request.read() else {}
        )
    except ValidationError as error:
        return error_response(400, "invalid redrive", errors=field_errors(error))
    if body.webhook_id is not None:
        _check_webhook(request, body.webhook_id)
    table = request.app[ROUTER].webhook_log.table
    visible = _visible_ids(request)
    chosen_ids = frozenset(body.delivery_ids) if body.delivery_ids is not None else None

    def chooses(task: DeliveryTask) -> bool:
        webhook = table.get(task.webhook_id)
        # A deleted or disabled webhook's dead letter would only be cancelled: it stays.
        return (
            webhook is not None
            and not webhook.disabled
            and (visible is None or webhook.id in visible)
            and (body.webhook_id is None or webhook.id == body.webhook_id)
            and (chosen_ids is None or task.delivery_id in chosen_ids)
        )

    router = request.app[ROUTER]
    settle = redrive_chosen(router.publisher, router.topology, chooses)
    try:
        progress = await request.app[REDRIVES].start(settle)
    except PassBusy as busy:
        return error_response(409, "a redrive is running; try again when it is done", id=str(busy))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ANSWER_WITHIN_S):
            await progress.done.wait()
    location = f"/dead-letters/redrives/{progress.id}"
    status = 202 if progress.status == "running" else 200
    return web.json_response(progress.shown(), status=status, headers={"Location": location})


async def get_redrive(request: web.Request) -> web.Response:
    redrive_id = request.match_info["id"]
    progress = request.app[REDRIVES].get(redrive_id)
    if progress is None:
        raise http_error(web.HTTPNotFound, "redrive not found on this router", id=redrive_id)
    return web.json_response(progress.shown())
