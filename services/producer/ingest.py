"""POST /events: validate, stamp an id, publish with confirm, answer 202 only when confirmed."""

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
from services.runtime.http_errors import error_response, field_errors
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
        events, problem = self._validate(body)
        if problem is not None:
            return problem
        unique = list({event.id: event for event in events}.values())  # same id twice: one event
        ids = [event.id for event in events]
        if not self._connected():
            return self._unavailable(ids, "the broker is not connected")
        started = time.monotonic()
        try:
            await request.app[PRODUCER].publish_events(unique)
        except PublishFailed as error:
            return self._unavailable(ids, str(error))
        self._metrics.publish_duration.observe(time.monotonic() - started)
        self._metrics.events_accepted.inc(len(unique))
        log.info("events.accepted", count=len(unique), event_ids=ids[:20])
        answer: dict[str, Any] = {"ids": ids}
        if isinstance(body, dict):
            answer["id"] = ids[0]
        return web.json_response(answer, status=202)

    def _validate(self, body: Any) -> tuple[list[Event], web.Response | None]:
        """Stamped-with-id events, or the 400 that names every wrong field."""
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
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                event = EventIn.model_validate(item)
            except ValidationError as error:
                errors.extend(field_errors(error, prefix=() if single else (index,)))
                continue
            events.append(event.stamped())
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
