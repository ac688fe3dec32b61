"""The strict JSON reading of both HTTP APIs: what Python's `json` would let through is a 400
that says what and where, and a body not sent as JSON is a 415."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.json_body import MAX_INT, MIN_INT, JsonRefused, loads_strict, read_json


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (
            b'{"a": [1, -2.5, true, null, "\\u00e9\\ud83d\\ude00"]}',
            {"a": [1, -2.5, True, None, "é😀"]},
        ),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"1e308", 1e308),
        ('{"ключ": "значение"}'.encode(), {"ключ": "значение"}),
        (b'{"a": {"a": 1}}', {"a": {"a": 1}}),  # the same key at two levels is no duplicate
    ],
)
def test_json_as_it_should_be_is_read(raw: bytes, value: Any) -> None:
    assert loads_strict(raw) == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"s": "\\ud800"}', r"s: a lone surrogate \\ud800"),
        (b'[{"data": {"list": ["ok", "\\udfff"]}}]', r"\[0\]\.data\.list\[1\]: a lone surrogate"),
        (b'{"\\ud800": 1}', "a key in the body: a lone surrogate"),
        (b'{"s": "\\ude00\\ud83d"}', "lone surrogate"),  # the pair's halves the wrong way round
        (b'{"n": NaN}', "NaN is not a JSON number"),
        (b'{"n": Infinity}', "Infinity is not a JSON number"),
        (b'{"n": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"n": 1e400}', "1e400 is too large"),
        (b'{"n": 9223372036854775808}', "outside the signed 64-bit range"),
        (b'{"n": -9223372036854775809}', "outside the signed 64-bit range"),
        (b'{"n": ' + b"9" * 5000 + b"}", "too long"),
        (b'{"a": 1, "a": 2}', "'a' appears twice"),
        (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 bytes
    ],
)
def test_what_python_would_let_through_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(JsonRefused, match=reason):
        loads_strict(raw)


def test_broken_json_is_a_value_error_with_the_position() -> None:
    with pytest.raises(ValueError, match="char 6"):
        loads_strict(b'{"a": }')


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await read_json(request))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    app.router.add_post("/", echo)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_json_body_is_read(client: TestClient[Any, Any]) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = await client.post("/", data=b'{"a": 1}', headers={"Content-Type": content_type})
        assert response.status == 200
        assert await response.json() == {"a": 1}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16", ""],
)
async def test_a_body_not_sent_as_json_is_415(
    client: TestClient[Any, Any], content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/", data=b'{"a": 1}', headers=headers)
    assert response.status == 415
    assert "application/json" in (await response.json())["error"]


async def test_a_refused_body_is_a_400_that_says_why(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/", data=b'{"s": "\\ud800"}', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "lone surrogate" in (await response.json())["error"]


async def test_a_body_nested_beyond_the_parser_is_400_not_500(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/", data=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "body nests too deeply"


# Properties: every value JSON can carry is read back as it was; a lone surrogate anywhere in it
# is refused.
CHARACTERS = st.characters(exclude_categories=["Cs"])  # no surrogate code points
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(MIN_INT, MAX_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARACTERS),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(CHARACTERS), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES, st.booleans())
def test_what_json_can_carry_is_read_back(value: Any, ascii_only: bool) -> None:
    assert loads_strict(json.dumps(value, ensure_ascii=ascii_only).encode()) == value


@given(JSON_VALUES, st.integers(0xD800, 0xDFFF), st.booleans())
def test_a_lone_surrogate_anywhere_is_refused(value: Any, code: int, in_a_key: bool) -> None:
    lone = chr(code)
    poisoned = {lone: value} if in_a_key else [value, {"s": f"x{lone}y"}]
    with pytest.raises(JsonRefused, match="lone surrogate"):
        loads_strict(json.dumps(poisoned).encode())
