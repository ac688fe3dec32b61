"""Request bodies read as strict JSON: the one reading of both HTTP APIs.

Python's `json` is lenient where a producer's mistake would otherwise travel on silently: it takes
NaN and Infinity (delivered later as null), numbers too large for a double (infinity), duplicate
keys (the last one wins), `\\ud800` escapes that make a string no UTF-8 encoder accepts (a 500
at publish time, after a batch's first events went out), and UTF-16 or a byte order mark. Here
each of those is a 400 that says what and where, before anything is published.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from aiohttp import web

from services.runtime.http_errors import http_error

MEDIA_TYPE = "application/json"
# Integers a consumer in any language can hold (a signed 64-bit one).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# A `\uD800`-`\uDFFF` escape: only then can a parsed string hold a lone surrogate.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonRefused(ValueError):
    """Valid to Python's `json`, but not in Hookline's reading of JSON."""


def loads_strict(raw: bytes) -> Any:
    """The JSON value `raw` holds; ValueError (JsonRefused, or json's own) says what is wrong, and
    RecursionError when it nests too deeply."""
    if raw.startswith(codecs.BOM_UTF8):
        raise JsonRefused("the body starts with a byte order mark; send UTF-8 without one")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonRefused(f"the body is not UTF-8 (byte {error.start})") from None
    value = json.loads(
        text,
        object_pairs_hook=_object,
        parse_constant=_constant,
        parse_int=_integer,
        parse_float=_number,
    )
    if SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefused(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return value


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _integer(digits: str) -> int:
    try:
        value = int(digits)
    except ValueError:  # more digits than Python converts
        raise JsonRefused(f"the integer {digits[:20]}… is too long") from None
    if not MIN_INT <= value <= MAX_INT:
        raise JsonRefused(f"the integer {digits[:24]} is outside the signed 64-bit range")
    return value


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:24]} is too large")
    return value


def _refuse_lone_surrogates(value: Any) -> None:
    """JsonRefused naming the first string (key or value) that holds a lone surrogate."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else key
                _check_string(key, f"a key in {path or 'the body'}")
                pending.append((where, inner))
        elif isinstance(item, list):
            pending.extend((f"{path}[{index}]", inner) for index, inner in enumerate(item))
        elif isinstance(item, str):
            _check_string(item, path or "the body")


def _check_string(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise JsonRefused(f"{where}: a lone surrogate \\u{code:04x} is no character") from None


async def read_json(request: web.Request) -> Any:
    """The parsed body; 415 unless it is sent as `application/json` (UTF-8), 400 that says what is
    wrong and where when it is not strict JSON."""
    charset = (request.charset or "utf-8").lower()
    if request.content_type != MEDIA_TYPE or charset not in ("utf-8", "utf8"):
        raise http_error(
            web.HTTPUnsupportedMediaType,
            f"send the body as {MEDIA_TYPE} (UTF-8)",
            content_type=request.headers.get("Content-Type", ""),
        )
    raw = await request.read()
    try:
        return loads_strict(raw)
    except ValueError as error:
        raise http_error(web.HTTPBadRequest, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise http_error(web.HTTPBadRequest, "body nests too deeply") from None
