"""POST /events: validate (the envelope, then the data against the event catalog), stamp an id,
publish with confirm, answer 202 only when confirmed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from schemas.events import Event, EventIn
from services.producer.metrics import ProducerMetrics
from services.producer.sdk import Producer
from services.runtime.broker import PublishFailed
from services.runtime.catalog import EventCatalog
from services.runtime.http_errors import error_response, field_errors, field_path
from services.runtime.json_body import read_json

log = structlog.get_logger(__name__)

PRODUCER = web.AppKey("producer", Producer)


class Ingest:
    def __init__(
        self,
        metrics: ProducerMetrics,
        *,
        max_batch: int,
        max_body_bytes: int,
        connected: Callable[[], bool],
    ) -> None:
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_body_bytes = max_body_bytes
        self._connected = connected

    async def post_events(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(
                413, "too_large", f"body is larger than {self._max_body_bytes} bytes"
            )
        except (web.HTTPBadRequest, web.HTTPUnsupportedMediaType) as error:
            self._metrics.requests_rejected.labels(reason="invalid").inc()
            raise error
        producer = request.app[PRODUCER]
        events, problem = self._validate(body, producer.catalog)
        if problem is not None:
            return problem
        ids = [event.id for event in events]
        if not self._connected():
            return self._unavailable(ids, "the broker is not connected")
        started = time.monotonic()
        try:
            await producer.publish_events(events, checked=True)
        except PublishFailed as error:
            return self._unavailable(ids, str(error))
        self._metrics.publish_duration.observe(time.monotonic() - started)
        self._metrics.events_accepted.inc(len(events))
        log.info("events.accepted", count=len(events), event_ids=ids[:20])
        if isinstance(body, dict):
            return web.json_response({"id": ids[0], "ids": ids}, status=202)
        # A batch answers each event in the order sent, as one event is answered: {"id": …}.
        answer = {"ids": ids, "events": [{"id": event_id} for event_id in ids]}
        return web.json_response(answer, status=202)

    def _validate(
        self, body: Any, catalog: EventCatalog
    ) -> tuple[list[Event], web.Response | None]:
        """Stamped-with-id events, or the 400 that names every wrong field (the catalog's too)."""
        if isinstance(body, dict):
            items, single = [body], True
        elif isinstance(body, list):
            items, single = body, False
        else:
            return [], self._reject(400, "invalid", "body must be an event or an array of events")
        if not items:
            return [], self._reject(400, "invalid", "the array holds no events")
        if len(items) > self._max_batch:
            return [], self._reject(400, "invalid", f"at most {self._max_batch} events per request")
        events: list[Event] = []
        positions: list[int] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            prefix = () if single else (index,)
            try:
                event = EventIn.model_validate(item)
            except ValidationError as error:
                errors.extend(field_errors(error, prefix=prefix))
                continue
            if refused := catalog.problems(event.type, event.data):
                errors.extend(
                    {"field": problem.field(prefix), "message": problem.message}
                    for problem in refused
                )
                continue
            events.append(event.stamped())
            positions.append(index)
        errors.extend(repeated_ids(events, positions, single=single))
        if errors:
            return [], self._reject(400, "invalid", "invalid event", errors=errors)
        return events, None

    def _reject(self, status: int, reason: str, message: str, **extra: Any) -> web.Response:
        self._metrics.requests_rejected.labels(reason=reason).inc()
        return error_response(status, message, **extra)

    def _unavailable(self, ids: list[str], reason: str) -> web.Response:
        log.warning("events.not_confirmed", reason=reason, event_ids=ids[:20])
        response = self._reject(
            503,
            "unavailable",
            "the broker did not confirm the events; send them again with these ids",
            ids=ids,
        )
        response.headers["Retry-After"] = "1"
        return response


def repeated_ids(
    events: list[Event], positions: list[int], *, single: bool
) -> list[dict[str, Any]]:
    """A field error for each event whose id an earlier one of the same request has: two events
    of one batch with one id cannot both be answered as accepted (the second would be dropped as
    a duplicate), so the batch is refused."""
    if single:
        return []
    first: dict[str, int] = {}
    errors = []
    for event, index in zip(events, positions, strict=True):
        earlier = first.setdefault(event.id, index)
        if earlier != index:
            errors.append(
                {
                    "field": field_path((index, "id")),
                    "message": f"the id {event.id!r} is also the id of {field_path((earlier,))}",
                }
            )
    return errors
