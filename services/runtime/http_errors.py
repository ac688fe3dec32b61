"""Error answers every API gives: a JSON body that names what is wrong, field by field."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Answers that refuse a request for what it holds (a 401 has its own line, request.unauthorized).
REJECTED = frozenset({400, 413, 415, 422})
# Enough of an answer's error text to say what was wrong, not a whole list of field errors.
MAX_LOGGED_ERROR_CHARS = 500


def error_response(
    status: int, message: str, *, errors: Sequence[dict[str, Any]] | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"error": message, **extra}
    if errors:
        body["errors"] = list(errors)
    return web.json_response(body, status=status)


def field_path(loc: Sequence[int | str]) -> str:
    """(0, 'data') → `[0].data`; ('uri',) → `uri`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "body"


def field_errors(
    error: ValidationError, *, prefix: Sequence[int | str] = ()
) -> list[dict[str, Any]]:
    """Pydantic's errors as `{"field": …, "message": …}` a client can show next to its input."""
    return [
        {"field": field_path([*prefix, *problem["loc"]]), "message": problem["msg"]}
        for problem in error.errors(include_url=False)
    ]


def http_error(
    cls: type[web.HTTPException],
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.HTTPException:
    """An aiohttp exception to raise, with the same JSON body as `error_response`."""
    return cls(
        text=json.dumps({"error": message, **extra}),
        content_type="application/json",
        headers=headers,
    )


# The account a request's token is scoped to; absent for a token of every account.
ACCOUNT_SCOPE = web.RequestKey("account_scope", str)


def bearer_auth(
    tokens: Sequence[str],
    protected: Callable[[str], bool],
    *,
    scoped: Mapping[str, str] | None = None,
) -> Callable[..., Any]:
    """A middleware that asks for `Authorization: Bearer <token>` on the protected paths: one of
    `tokens` (unscoped), or one of `scoped` (token → account), whose account it puts on the
    request as ACCOUNT_SCOPE.

    The header is compared with every token, each in constant time, so the answer's timing says
    neither how much of a token was right nor which one matched."""
    expected: list[tuple[bytes, str | None]] = [
        (f"Bearer {token}".encode(), None) for token in tokens
    ]
    expected += [(f"Bearer {token}".encode(), account) for token, account in (scoped or {}).items()]
    if not expected:
        raise ValueError("at least one token is needed")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if protected(request.path):
            try:
                given = request.headers.get("Authorization", "").encode()
            except UnicodeError:  # bytes no token of ours has
                given = b""
            matched, scope = False, None
            for token, account in expected:
                if hmac.compare_digest(given, token):
                    matched, scope = True, account
            if not matched:
                log.info(
                    "request.unauthorized",
                    method=request.method,
                    path=request.path,
                    remote=request.remote,
                    had_token=bool(given),
                )
                response = error_response(401, "missing or wrong bearer token")
                response.headers["WWW-Authenticate"] = 'Bearer realm="hookline"'
                return response
            if scope is not None:
                request[ACCOUNT_SCOPE] = scope
        return await handler(request)

    return middleware


@web.middleware
async def log_rejections(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One `request.rejected` line at info for a request refused for what it holds (400, 413,
    415, 422): its method, path, status and the answer's error text, never the body or a token."""
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status in REJECTED:
            _log_rejected(request, error.status, error.text)
        raise
    if response.status in REJECTED:
        body = response.body if isinstance(response, web.Response) else None
        _log_rejected(request, response.status, body if isinstance(body, bytes) else None)
    return response


def _log_rejected(request: web.Request, status: int, answer: str | bytes | None) -> None:
    log.info(
        "request.rejected",
        method=request.method,
        path=request.path,
        status=status,
        error=_error_text(answer),
    )


def _error_text(answer: str | bytes | None) -> str | None:
    """The `error` of one of our JSON answers, or the text of one of aiohttp's own."""
    if not answer:
        return None
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text: str = parsed["error"]
    elif isinstance(answer, bytes):
        text = answer.decode(errors="replace")
    else:
        text = answer
    return text[:MAX_LOGGED_ERROR_CHARS]


def require_every_account(request: web.Request, what: str) -> None:
    """403 to a token scoped to an account: `what` (the quarantine, webhook policies) belongs
    to the whole install."""
    if request.get(ACCOUNT_SCOPE) is not None:
        raise http_error(web.HTTPForbidden, f"{what} are for tokens of every account")
