"""The command line's reading of API answers: exit statuses, errors and `Link` headers."""

from __future__ import annotations

import httpx
import pytest

from hookline.cli.client import Answer, Api, ApiError, Exit, exit_for


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, Exit.REFUSED),
        (409, Exit.REFUSED),
        (415, Exit.REFUSED),
        (422, Exit.REFUSED),
        (401, Exit.UNAUTHORIZED),
        (403, Exit.UNAUTHORIZED),
        (404, Exit.NOT_FOUND),
        (503, Exit.UNAVAILABLE),
        (500, Exit.FAILED),
    ],
)
def test_each_status_has_its_exit(status: int, expected: Exit) -> None:
    assert exit_for(status) == expected


def test_the_next_page_is_read_from_the_link_header() -> None:
    headers = httpx.Headers(
        {"Link": '<http://r/webhooks?page=1>; rel="first", <http://r/webhooks?page=2>; rel="next"'}
    )
    assert Answer(200, [], headers).next_url() == "http://r/webhooks?page=2"
    assert Answer(200, [], httpx.Headers({})).next_url() is None


def test_a_refusal_names_each_wrong_field() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"error": "invalid event", "errors": [{"field": "[0].type", "message": "bad"}]}
        return httpx.Response(400, json=body)

    api = Api("http://hookline.test", "t")
    api._client = httpx.Client(
        base_url="http://hookline.test", transport=httpx.MockTransport(answer)
    )
    with pytest.raises(ApiError) as refused:
        api.request("POST", "/events", json={})
    assert refused.value.exit_code == Exit.REFUSED
    assert str(refused.value) == "400: invalid event\n  [0].type: bad"
