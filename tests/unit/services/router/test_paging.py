"""Pages of a list answer, Xurrent's way: `page` and `per_page`, a Link header, X-Pagination-*."""

from __future__ import annotations

import pytest
from yarl import URL

from services.router.paging import Page, PageError, paging_headers, requested_page

URL_ = URL("http://127.0.0.1:8001/webhooks?per_page=2&page=2")


def test_the_defaults_are_the_first_twenty() -> None:
    assert requested_page({}) == Page(1, 20)
    assert requested_page({"page": "3", "per_page": "100"}) == Page(3, 100)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "two"}, "page"),
        ({"page": "1" * 10}, "page"),
        ({"page": "٣"}, "page"),  # a digit, but not an ASCII one
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "101"}, "per_page"),
        ({"per_page": ""}, "per_page"),
    ],
)
def test_a_wrong_parameter_is_named(query: dict[str, str], field: str) -> None:
    with pytest.raises(PageError) as caught:
        requested_page(query)
    assert caught.value.field == field


def test_a_page_is_its_slice_and_one_past_the_end_is_empty() -> None:
    items = list(range(5))
    assert Page(1, 2).of(items) == [0, 1]
    assert Page(3, 2).of(items) == [4]
    assert Page(4, 2).of(items) == []


def test_the_headers_link_the_neighbours_and_count_the_pages() -> None:
    headers = paging_headers(URL_, Page(2, 2), total=5)
    assert headers["Link"] == (
        '<http://127.0.0.1:8001/webhooks?per_page=2&page=1>; rel="first", '
        '<http://127.0.0.1:8001/webhooks?per_page=2&page=1>; rel="prev", '
        '<http://127.0.0.1:8001/webhooks?per_page=2&page=3>; rel="next", '
        '<http://127.0.0.1:8001/webhooks?per_page=2&page=3>; rel="last"'
    )
    assert (
        headers["X-Pagination-Per-Page"],
        headers["X-Pagination-Current-Page"],
        headers["X-Pagination-Total-Pages"],
        headers["X-Pagination-Total-Entries"],
    ) == ("2", "2", "3", "5")


def test_the_first_and_last_pages_have_no_prev_and_no_next() -> None:
    first = paging_headers(URL_, Page(1, 2), total=3)["Link"]
    assert 'rel="prev"' not in first
    assert 'rel="next"' in first
    last = paging_headers(URL_, Page(2, 2), total=3)["Link"]
    assert 'rel="next"' not in last
    assert paging_headers(URL_, Page(1, 20), total=0)["X-Pagination-Total-Pages"] == "1"
