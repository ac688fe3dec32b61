"""Following an API's `Link: <…>; rel="next"` headers through every page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hookline.cli.client import Api

# A bound on the pages one command reads (100 a page: 100,000 rows).
MAX_PAGES = 1000


def every_page(api: Api, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    answer = api.request("GET", path, params=params)
    for _ in range(MAX_PAGES):
        yield from answer.body
        next_url = answer.next_url()
        if next_url is None:
            return
        answer = api.request("GET", next_url)
