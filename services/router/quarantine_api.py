"""The quarantine API: `GET /quarantine` (a peek), `POST /quarantine/redrive`, `POST
/quarantine/discard` and `GET /quarantine/passes/:id`. Admin tokens of every account only: a
quarantined message need not belong to any webhook."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from pydantic import ValidationError

from schemas.history import QuarantineChoice
from services.router.quarantine import discard_chosen, peek, redrive_to_source
from services.router.queue_passes import PassBusy, PassProgress, QueuePasses, SettleOne
from services.router.state import ROUTER
from services.runtime.http_errors import (
    error_response,
    field_errors,
    http_error,
    require_every_account,
)
from services.runtime.json_body import read_json

# Passes over the quarantine queue.
QUARANTINE_PASSES = web.AppKey("quarantine_passes", QueuePasses)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# How long a redrive or discard waits for its pass before answering 202.
ANSWER_WITHIN_S = 2.0


def add_routes(app: web.Application) -> None:
    app.router.add_get("/quarantine", list_quarantined)
    app.router.add_post("/quarantine/redrive", redrive)
    app.router.add_post("/quarantine/discard", discard)
    app.router.add_get("/quarantine/passes/{id}", get_pass)


def _unscoped(request: web.Request) -> None:
    require_every_account(request, "the quarantine's messages")


async def list_quarantined(request: web.Request) -> web.Response:
    """The first `limit` messages in quarantine, oldest first; `X-Total-Count` says how many
    there are."""
    _unscoped(request)
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not (text.isascii() and text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_LIMIT):
        return error_response(
            400,
            "invalid query",
            errors=[{"field": "limit", "message": f"must be a whole number, 1 to {MAX_LIMIT}"}],
        )
    router = request.app[ROUTER]
    try:
        depth, seen = await peek(router.connection, router.topology.quarantine_queue, int(text))
    except PassBusy as busy:
        return error_response(409, "a redrive or discard is running; try again", id=str(busy))
    return web.json_response(
        [view.model_dump(mode="json") for view in seen], headers={"X-Total-Count": str(depth)}
    )


async def _choice(request: web.Request) -> QuarantineChoice:
    try:
        return QuarantineChoice.model_validate(
            await read_json(request) if await request.read() else {}
        )
    except ValidationError as error:
        raise http_error(web.HTTPBadRequest, "invalid choice", errors=field_errors(error)) from None


async def redrive(request: web.Request) -> web.Response:
    """Send the chosen messages (every one, with no body) back to the queues they came from."""
    _unscoped(request)
    choice = await _choice(request)
    router = request.app[ROUTER]
    sources = set(router.topology.queues())
    ids = frozenset(choice.ids) if choice.ids is not None else None
    settle = redrive_to_source(router.publisher, router.topology.quarantine_queue, ids, sources)
    return await _run(request, settle)


async def discard(request: web.Request) -> web.Response:
    """Drop the chosen messages on purpose: their ids must be given."""
    _unscoped(request)
    choice = await _choice(request)
    if choice.ids is None:
        return error_response(
            400,
            "invalid choice",
            errors=[{"field": "ids", "message": "name the messages to discard"}],
        )
    router = request.app[ROUTER]
    settle = discard_chosen(
        router.publisher, router.topology.quarantine_queue, frozenset(choice.ids)
    )
    return await _run(request, settle)


async def _run(request: web.Request, settle: SettleOne) -> web.Response:
    try:
        progress: PassProgress = await request.app[QUARANTINE_PASSES].start(settle)
    except PassBusy as busy:
        return error_response(409, "a redrive or discard is running; try again", id=str(busy))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ANSWER_WITHIN_S):
            await progress.done.wait()
    status = 202 if progress.status == "running" else 200
    location = f"/quarantine/passes/{progress.id}"
    return web.json_response(progress.shown(), status=status, headers={"Location": location})


async def get_pass(request: web.Request) -> web.Response:
    _unscoped(request)
    pass_id = request.match_info["id"]
    progress = request.app[QUARANTINE_PASSES].get(pass_id)
    if progress is None:
        raise http_error(web.HTTPNotFound, "no such redrive or discard on this router", id=pass_id)
    return web.json_response(progress.shown())
