"""The event catalog on the router's API: `GET /event-types` and `GET /event-types/{type}`, for
any valid token (admin or account-scoped); and the check webhook creation and change make of an
exact `event` when uncataloged types are refused."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schemas.event_patterns import is_pattern
from services.runtime.catalog import EventCatalog
from services.runtime.http_errors import error_response, http_error

CATALOG = web.AppKey("event_catalog", EventCatalog)
# Each type as shown, by type, in order of the type: built once, the catalog never changes.
SHOWN = web.AppKey("event_types_shown", dict[str, dict[str, Any]])


def add_routes(app: web.Application, catalog: EventCatalog) -> None:
    app[CATALOG] = catalog
    app[SHOWN] = {
        cataloged.type: cataloged.view().model_dump(mode="json", by_alias=True)
        for cataloged in catalog
    }
    app.router.add_get("/event-types", list_types)
    app.router.add_get("/event-types/{type}", get_type)


async def list_types(request: web.Request) -> web.Response:
    """Every cataloged type, in order of its name; `?product=ketryx` keeps one product's."""
    shown = list(request.app[SHOWN].values())
    product = request.query.get("product")
    if product is not None:
        shown = [view for view in shown if view["product"] == product]
    return web.json_response(shown)


async def get_type(request: web.Request) -> web.Response:
    event_type = request.match_info["type"]
    shown = request.app[SHOWN].get(event_type)
    if shown is None:
        raise http_error(web.HTTPNotFound, "no such event type in the catalog", type=event_type)
    return web.json_response(shown)


def refused_event(request: web.Request, event: str | None) -> web.Response | None:
    """A 400 on `event` when uncataloged types are refused and `event` is an exact type the
    catalog lacks (a webhook that could never get an event); None otherwise, and for no `event`
    (a change that leaves it). A pattern is left alone: it may match types the catalog gains."""
    if event is None or is_pattern(event) or not request.app[CATALOG].refuses_type(event):
        return None
    message = f"{event!r} is not in the event catalog (see GET /event-types)"
    return error_response(400, "invalid webhook", errors=[{"field": "event", "message": message}])


def test_data(request: web.Request, event_type: str, webhook_name: str) -> dict[str, Any]:
    """The data of a test call: the catalog's first example of the type, so the subscriber's
    code sees the shape it will get; without one, a marker naming the webhook."""
    cataloged = request.app[CATALOG].get(event_type)
    if cataloged is not None and cataloged.examples:
        return dict(cataloged.examples[0])
    return {"test": True, "webhook_name": webhook_name}
