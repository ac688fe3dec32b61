"""The replay API: `POST /webhooks/:id/replay` starts one, `GET /replays/:id` follows it."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import ValidationError

from schemas.history import ReplayRequest
from services.router.replay import ReplayBusy, Replays, ReplayWindow
from services.router.state import ROUTER
from services.runtime.http_errors import ACCOUNT_SCOPE, error_response, field_errors, http_error
from services.runtime.json_body import read_json

REPLAYS = web.AppKey("replays", Replays)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/{id}/replay", replay)
    app.router.add_get("/replays/{id}", get_replay)


def _visible(request: web.Request, webhook_id: str) -> bool:
    state = request.app[ROUTER].webhook_log.table.get(webhook_id)
    scope = request.get(ACCOUNT_SCOPE)
    return state is not None and (scope is None or state.account == scope)


async def replay(request: web.Request) -> web.Response:
    """Send the webhook the events of a window again, in the background: 202 with the replay's
    progress and where to follow it; 409 while another replay runs on this router."""
    webhook_id = request.match_info["id"]
    if not _visible(request, webhook_id):
        raise http_error(web.HTTPNotFound, "webhook not found", id=webhook_id)
    try:
        body = ReplayRequest.model_validate(await read_json(request))
    except ValidationError as error:
        return error_response(400, "invalid replay", errors=field_errors(error))
    webhook = request.app[ROUTER].webhook_log.table.get(webhook_id)
    assert webhook is not None, "seen a moment ago, with no await between"
    window = ReplayWindow(since=body.since, until=body.until or datetime.now(UTC), event=body.event)
    try:
        progress = request.app[REPLAYS].start(webhook, window, body.rate_per_s)
    except ReplayBusy as busy:
        return error_response(409, "a replay is running; try again when it is done", id=str(busy))
    location = f"/replays/{progress.id}"
    return web.json_response(progress.shown(), status=202, headers={"Location": location})


async def get_replay(request: web.Request) -> web.Response:
    replay_id = request.match_info["id"]
    progress = request.app[REPLAYS].get(replay_id)
    if progress is None or not _visible(request, progress.webhook_id):
        raise http_error(web.HTTPNotFound, "replay not found on this router", id=replay_id)
    return web.json_response(progress.shown())
