"""Pages of a list answer, as Xurrent's API gives them: `page` (from 1) and `per_page` (1 to 100,
20 by default) in the query; a `Link` header to the first, previous, next and last pages; and
`X-Pagination-*` headers with the counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from yarl import URL

from services.runtime.http_errors import error_response

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
T = TypeVar("T")


class PageError(ValueError):
    """A query parameter of paging that is wrong: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Page:
    number: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def of(self, items: Sequence[T]) -> Sequence[T]:
        start = (self.number - 1) * self.per_page
        return items[start : start + self.per_page]


def requested_page(query: Mapping[str, str]) -> Page:
    """The page a query asks for; PageError names the parameter that is wrong."""
    return Page(
        number=_whole(query, "page", 1, default=1, at_most=None),
        per_page=_whole(query, "per_page", 1, default=DEFAULT_PER_PAGE, at_most=MAX_PER_PAGE),
    )


def _whole(
    query: Mapping[str, str], name: str, at_least: int, *, default: int, at_most: int | None
) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise PageError(name, "must be a whole number")
    value = int(text)
    if value < at_least or (at_most is not None and value > at_most):
        upper = f" to {at_most}" if at_most is not None else " or more"
        raise PageError(name, f"must be {at_least}{upper}")
    return value


def paging_headers(url: URL, page: Page, total: int) -> dict[str, str]:
    """The `Link` and `X-Pagination-*` headers of `page` of `total` entries served at `url`."""
    pages = max(1, -(-total // page.per_page))

    def link(number: int, rel: str) -> str:
        target = url.update_query(page=str(number), per_page=str(page.per_page))
        return f'<{target}>; rel="{rel}"'

    links = [link(1, "first")]
    if page.number > 1:
        links.append(link(min(page.number - 1, pages), "prev"))
    if page.number < pages:
        links.append(link(page.number + 1, "next"))
    links.append(link(pages, "last"))
    return {
        "Link": ", ".join(links),
        "X-Pagination-Per-Page": str(page.per_page),
        "X-Pagination-Current-Page": str(page.number),
        "X-Pagination-Total-Pages": str(pages),
        "X-Pagination-Total-Entries": str(total),
    }


def paged_response(
    request: web.Request, items: Sequence[T], show: Callable[[T], Any]
) -> web.Response:
    """The page of `items` the request asks for, each shown by `show`, with the paging headers;
    a 400 naming the paging parameter that is wrong."""
    try:
        page = requested_page(request.query)
    except PageError as error:
        return error_response(
            400, "invalid paging", errors=[{"field": error.field, "message": str(error)}]
        )
    headers = paging_headers(request.url, page, len(items))
    return web.json_response([show(item) for item in page.of(items)], headers=headers)
