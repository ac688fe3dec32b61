"""The HTTP edge every service has: refused requests leave one line, and /metrics has no
`*_created` series."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary

from services.runtime.http_errors import bearer_auth, error_response, http_error
from services.runtime.json_body import read_json
from services.runtime.server import base_app

SECRET_IN_BODY = "whsec_c2VjcmV0LXRoYXQtbXVzdC1zdGF5"


async def take_json(request: web.Request) -> web.Response:
    """Reads the body strictly (400, 413, 415 from the reading), then refuses what it holds."""
    body = await read_json(request)
    if body.get("refuse") == 422:
        return error_response(422, "target not allowed", errors=[{"field": "uri", "message": "x"}])
    if body.get("refuse") == 400:
        return error_response(400, "invalid webhook", errors=[{"field": "secret", "message": "y"}])
    if body.get("refuse") == 404:
        raise http_error(web.HTTPNotFound, "webhook not found")
    return web.json_response({"ok": True})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = base_app(CollectorRegistry(), client_max_size=1024)
    app.middlewares.append(bearer_auth(["t0ken"], lambda path: path == "/private"))
    app.router.add_post("/things", take_json)
    app.router.add_post("/private", take_json)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def rejected(lines: list[Any]) -> list[dict[str, Any]]:
    return [
        {key: line[key] for key in ("method", "path", "status", "error", "log_level")}
        for line in lines
        if line["event"] == "request.rejected"
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b'{"refuse": 400, "secret": "%s"}', "application/json", 400, "invalid webhook"),
        (b'{"refuse": 422, "secret": "%s"}', "application/json", 422, "target not allowed"),
        (
            b'{"secret": "%s", "secret": 1}',
            "application/json",
            400,
            "body is not valid JSON: the key 'secret' appears twice in one object",
        ),
        (b'{"secret": "%s"}', "text/plain", 415, "send the body as application/json (UTF-8)"),
        (
            b'{"secret": "%s", "pad": "' + b"x" * 2000 + b'"}',
            "application/json",
            413,
            "Maximum request body size 1024 exceeded.",
        ),
    ],
)
async def test_a_refused_request_leaves_one_line_without_its_body(
    client: TestClient[web.Request, web.Application],
    body: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    """A 400, 413, 415 or 422 is logged once at info with method, path, status and the error
    text; nothing of the body or the token is in it."""
    headers = {"Content-Type": content_type, "Authorization": "Bearer t0ken"}
    with structlog.testing.capture_logs() as lines:
        response = await client.post(
            "/private", data=body % SECRET_IN_BODY.encode(), headers=headers
        )
    assert response.status == status
    assert rejected(lines) == [
        {
            "method": "POST",
            "path": "/private",
            "status": status,
            "error": error,
            "log_level": "info",
        }
    ]
    assert SECRET_IN_BODY not in repr(lines)
    assert "t0ken" not in repr(lines)


async def test_accepted_unauthorized_and_not_found_requests_are_not_rejected_lines(
    client: TestClient[web.Request, web.Application],
) -> None:
    """A 2xx, a 404 and a 401 (which has its own line) leave no request.rejected line."""
    with structlog.testing.capture_logs() as lines:
        ok = await client.post("/things", json={})
        missing = await client.post("/things", json={"refuse": 404})
        unauthorized = await client.post("/private", json={})
    assert (ok.status, missing.status, unauthorized.status) == (200, 404, 401)
    assert rejected(lines) == []
    assert [line["event"] for line in lines] == ["request.unauthorized"]


async def test_metrics_have_no_created_series() -> None:
    """Counters, histograms and summaries export no `*_created` series, even those made before
    the app."""
    registry = CollectorRegistry()
    counter = Counter("things_total", "Things.", ["kind"], registry=registry)
    counter.labels(kind="a").inc()
    Histogram("wait_seconds", "Waits.", registry=registry).observe(0.1)
    Summary("size_bytes", "Sizes.", registry=registry).observe(3)
    async with TestClient(TestServer(base_app(registry))) as test_client:
        text = await (await test_client.get("/metrics")).text()
    assert 'things_total{kind="a"} 1.0' in text
    assert "wait_seconds_count 1.0" in text
    assert [line for line in text.splitlines() if "_created" in line] == []
