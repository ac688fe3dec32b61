"""The operator page at `/ui/`: static HTML, CSS and a little JavaScript with no build step. It
asks for an admin token once and then uses the router's own API, so it can do nothing the token
could not do with curl.

Whatever a subscriber answered is shown as text, never as markup: the page builds its elements
with `textContent`, and the Content-Security-Policy allows no inline script and no other origin.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

FILES = Path(__file__).parent / "ui"
# file name → content type
SERVED = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_index)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name}", asset)


async def to_index(_request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/ui/")


async def index(_request: web.Request) -> web.Response:
    return _file("index.html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in SERVED:
        raise web.HTTPNotFound()
    return _file(name)


def _file(name: str) -> web.Response:
    return web.Response(
        body=(FILES / name).read_bytes(),
        content_type=SERVED[name],
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )
