"""Talking to Hookline's HTTP APIs, and what their answers mean as exit codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import httpx

# Seconds to wait for an answer: a redrive answers within 2 s, or 202.
TIMEOUT_S = 30.0


class Exit(enum.IntEnum):
    """What the command's exit status says happened."""

    OK = 0
    FAILED = 1  # the command ran, but what it asked for did not happen (a redrive that failed)
    USAGE = 2  # wrong arguments (the argument parser's own code)
    NOT_FOUND = 3
    REFUSED = 4  # the API refused the input or the state: 400, 409, 413, 415, 422
    UNAVAILABLE = 5  # no answer, or 503: try again
    UNAUTHORIZED = 6  # 401 or 403: the token


class ApiError(Exception):
    """An answer other than success, or none: the message to show and the exit status."""

    def __init__(self, message: str, exit_code: Exit, body: Any = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.body = body


def exit_for(status: int) -> Exit:
    if status == 404:
        return Exit.NOT_FOUND
    if status in (401, 403):
        return Exit.UNAUTHORIZED
    if status in (502, 503, 504):
        return Exit.UNAVAILABLE
    if 400 <= status < 500:
        return Exit.REFUSED
    return Exit.FAILED


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: httpx.Headers

    def next_url(self) -> str | None:
        """The `Link` header's rel="next", if any."""
        link: str | None = self.headers.get("Link")
        if not link:
            return None
        for part in link.split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params:
                url: str = target.strip().strip("<>")
                return url
        return None


class Api:
    """One of Hookline's HTTP APIs, with its bearer token."""

    def __init__(self, base_url: str, token: str | None, *, timeout_s: float = TIMEOUT_S) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)
        self.base_url = base_url

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Answer:
        """The answer, when it is a success; ApiError saying what went wrong otherwise."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = self._client.request(method, path, json=json, params=query or None)
        except httpx.TimeoutException:
            raise ApiError(f"no answer from {self.base_url} in time", Exit.UNAVAILABLE) from None
        except httpx.TransportError as error:
            raise ApiError(f"cannot reach {self.base_url}: {error}", Exit.UNAVAILABLE) from None
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if response.is_success:
            return Answer(response.status_code, body, response.headers)
        raise ApiError(_describe(response.status_code, body), exit_for(response.status_code), body)


def _describe(status: int, body: Any) -> str:
    """`404: webhook not found`, with each wrong field of a 400 after it."""
    if not isinstance(body, dict):
        return f"{status}: {body or 'no answer body'}"
    text = f"{status}: {body.get('error', 'failed')}"
    for problem in body.get("errors") or []:
        if isinstance(problem, dict):
            text += f"\n  {problem.get('field')}: {problem.get('message')}"
    return text
