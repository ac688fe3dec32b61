"""Error answers every API gives, and the bearer-token middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ValidationError

from services.runtime.http_errors import ACCOUNT_SCOPE, bearer_auth, field_errors, field_path


class Item(BaseModel):
    name: str
    size: int


def test_field_path() -> None:
    """Locations become `[0].data`, `uri` or `body` when empty."""
    assert field_path((0, "data")) == "[0].data"
    assert field_path(("uri",)) == "uri"
    assert field_path(("data", "items", 2, "id")) == "data.items[2].id"
    assert field_path(()) == "body"


def test_field_errors_name_each_field() -> None:
    """A validation error becomes one `{field, message}` per problem, with a prefix if given."""
    with pytest.raises(ValidationError) as caught:
        Item.model_validate({"size": "big"})
    assert field_errors(caught.value) == [
        {"field": "name", "message": "Field required"},
        {
            "field": "size",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        },
    ]
    assert [error["field"] for error in field_errors(caught.value, prefix=(3,))] == [
        "[3].name",
        "[3].size",
    ]


async def hello(_request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    protect_api = bearer_auth(["s3cret", "n3w-one"], lambda p: p.startswith("/api"))
    app = web.Application(middlewares=[protect_api])
    app.router.add_get("/api/things", hello)
    app.router.add_get("/healthz", hello)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "s3cret", "Bearer s3cret2", "bearer s3cret", "Bearer "]
)
async def test_a_missing_or_wrong_token_is_401(
    client: TestClient[web.Request, web.Application], authorization: str | None
) -> None:
    """A protected path without the exact bearer token answers 401 with WWW-Authenticate."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/api/things", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="hookline"'
    assert await response.json() == {"error": "missing or wrong bearer token"}


async def test_each_of_the_tokens_passes(
    client: TestClient[web.Request, web.Application],
) -> None:
    """A protected path with any of the role's tokens (old and new, while one is rotated)
    reaches its handler."""
    for token in ("s3cret", "n3w-one"):
        response = await client.get("/api/things", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        assert await response.json() == {"hello": "world"}


async def test_a_refused_request_leaves_a_line_without_the_token(
    client: TestClient[web.Request, web.Application],
) -> None:
    with structlog.testing.capture_logs() as lines:
        await client.get("/api/things", headers={"Authorization": "Bearer s3cre7-guess"})
    [line] = [line for line in lines if line["event"] == "request.unauthorized"]
    assert (line["path"], line["had_token"]) == ("/api/things", True)
    assert "s3cre" not in repr(lines)


def test_a_role_needs_a_token() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        bearer_auth([], lambda _path: True)


async def test_unprotected_paths_need_no_token(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Paths the predicate does not protect are served without a token."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"hello": "world"}


async def test_a_token_that_is_not_utf8_is_401_not_500(
    client: TestClient[web.Request, web.Application],
) -> None:
    """An Authorization header with bytes that are not UTF-8 is a wrong token: 401, not a crash."""
    port = client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /api/things HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer \xff\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 401 ")


async def test_a_scoped_token_puts_its_account_on_the_request() -> None:
    async def whose(request: web.Request) -> web.Response:
        return web.json_response({"account": request.get(ACCOUNT_SCOPE)})

    auth = bearer_auth(["root"], lambda _path: True, scoped={"acme-token": "acme"})
    app = web.Application(middlewares=[auth])
    app.router.add_get("/", whose)
    async with TestClient(TestServer(app)) as test_client:
        for token, account in (("root", None), ("acme-token", "acme")):
            response = await test_client.get("/", headers={"Authorization": f"Bearer {token}"})
            assert await response.json() == {"account": account}
        response = await test_client.get("/", headers={"Authorization": "Bearer acme"})
        assert response.status == 401
