"""The delivery history API: `GET /webhooks/:id/deliveries` (filtered, in cursor pages) and
`GET /deliveries/:id`, read from the history projection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast, get_args

from aiohttp import web

from schemas.deliveries import Outcome
from schemas.history import AttemptView, DeliveryView
from services.router.history import HistoryProjection
from services.router.history_store import BadCursor, Cursor, DeliveryFilter, StoredDelivery
from services.router.state import ROUTER
from services.runtime.http_errors import ACCOUNT_SCOPE, error_response, http_error

HISTORY = web.AppKey("history", HistoryProjection)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class QueryError(ValueError):
    """A query parameter that is wrong: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# The windows of `GET /stats/attempts`, in seconds.
RATE_WINDOWS_S = (60, 300)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhooks/{id}/deliveries", list_deliveries)
    app.router.add_get("/deliveries/{delivery_id}", get_delivery)
    app.router.add_get("/stats/attempts", attempt_rates)


async def attempt_rates(request: web.Request) -> web.Response:
    """Attempts of the last minute and five minutes, by outcome, and per second: what the
    operator page shows as live rates (of this token's webhooks)."""
    scope = request.get(ACCOUNT_SCOPE)
    webhook_ids = None
    if scope is not None:
        table = request.app[ROUTER].webhook_log.table
        webhook_ids = frozenset(w.id for w in table.webhooks.values() if w.account == scope)
    store = request.app[HISTORY].store
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    windows = []
    for window_s in RATE_WINDOWS_S:
        counts = await store.attempts_since(now_ms - window_s * 1000, webhook_ids)
        windows.append(
            {
                "window_s": window_s,
                "attempts": counts,
                "per_s": {outcome: round(n / window_s, 3) for outcome, n in counts.items()},
            }
        )
    return web.json_response({"windows": windows})


def _visible_webhook(request: web.Request, webhook_id: str) -> bool:
    """The webhook exists and this token may see it (a token scoped to an account sees only
    that account's)."""
    state = request.app[ROUTER].webhook_log.table.get(webhook_id)
    scope = request.get(ACCOUNT_SCOPE)
    return state is not None and (scope is None or state.account == scope)


async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id = request.match_info["id"]
    if not _visible_webhook(request, webhook_id):
        raise http_error(web.HTTPNotFound, "webhook not found", id=webhook_id)
    try:
        wanted, limit, after = listing_query(request.query)
    except QueryError as error:
        return invalid_query(error)
    wanted = replace(wanted, webhook_ids=frozenset({webhook_id}))
    return await page_of_deliveries(request, wanted, limit, after)


async def page_of_deliveries(
    request: web.Request, wanted: DeliveryFilter, limit: int, after: Cursor | None
) -> web.Response:
    """A page of the deliveries `wanted`, with a `Link` to the next page when there is one."""
    # One more than asked for says whether there is a next page.
    found = await request.app[HISTORY].store.deliveries(wanted, limit=limit + 1, after=after)
    page = found[:limit]
    headers: dict[str, str] = {}
    if len(found) > limit:
        last = page[-1]
        cursor = Cursor(last.first_at_ms, last.delivery_id).encode()
        headers["Link"] = f'<{request.url.update_query(cursor=cursor)}>; rel="next"'
    return web.json_response([_shown(delivery) for delivery in page], headers=headers)


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = request.match_info["delivery_id"]
    delivery = await request.app[HISTORY].store.delivery(delivery_id)
    # Another account's delivery is not found either.
    if delivery is None or not _visible_webhook(request, delivery.webhook_id):
        raise http_error(web.HTTPNotFound, "delivery not found", id=delivery_id)
    return web.json_response(_shown(delivery))


def invalid_query(error: QueryError) -> web.Response:
    return error_response(
        400, "invalid query", errors=[{"field": error.field, "message": str(error)}]
    )


def listing_query(query: Mapping[str, str]) -> tuple[DeliveryFilter, int, Cursor | None]:
    """What a listing asks for; QueryError names the parameter that is wrong."""
    outcome = query.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise QueryError("outcome", f"must be one of {', '.join(OUTCOMES)}")
    event_type = query.get("event_type")
    if event_type is not None and not event_type:
        raise QueryError("event_type", "must not be empty")
    since_ms, until_ms = _time_ms(query, "since"), _time_ms(query, "until")
    limit_text = query.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isascii() or not limit_text.isdigit() or len(limit_text) > 4:
        raise QueryError("limit", "must be a whole number")
    limit = int(limit_text)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"must be 1 to {MAX_LIMIT}")
    cursor_text = query.get("cursor")
    try:
        after = Cursor.decode(cursor_text) if cursor_text is not None else None
    except BadCursor as error:
        raise QueryError("cursor", str(error)) from None
    wanted = DeliveryFilter(
        outcome=cast(Outcome | None, outcome),  # one of OUTCOMES, as checked above
        event_type=event_type,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    return wanted, limit, after


def _time_ms(query: Mapping[str, str], name: str) -> int | None:
    """An RFC 3339 time with its offset, as Unix milliseconds."""
    text = query.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise QueryError(name, "must say its offset from UTC (Z or +hh:mm)")
        return round(moment.timestamp() * 1000)
    except (ValueError, OverflowError) as error:
        if isinstance(error, QueryError):
            raise
        raise QueryError(name, "must be an RFC 3339 time, e.g. 2026-11-27T06:00:00Z") from None


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _shown(delivery: StoredDelivery) -> dict[str, Any]:
    view = DeliveryView(
        delivery_id=delivery.delivery_id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        outcome=delivery.outcome,
        attempt_count=delivery.attempt_count,
        first_attempt_at=_time(delivery.first_at_ms),
        last_attempt_at=_time(delivery.last_at_ms),
        next_attempt_at=(
            _time(delivery.next_attempt_at_ms) if delivery.next_attempt_at_ms is not None else None
        ),
        test=delivery.test,
        replay=delivery.replay,
        attempts=[
            AttemptView(
                attempt=attempt.attempt,
                at=_time(attempt.at_ms),
                outcome=attempt.outcome,
                status_code=attempt.status_code,
                duration_ms=(
                    round(attempt.duration_s * 1000, 3) if attempt.duration_s is not None else None
                ),
                error=attempt.error,
                response_body=attempt.response_body,
                replay=attempt.replay,
            )
            for attempt in delivery.attempts
        ],
    )
    return view.model_dump(mode="json")
