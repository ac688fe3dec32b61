"""A webhook receiver for trying Hookline out: prints every POST and checks its signature.

    .venv/bin/python -m tools.receiver --port 9000 [--secret whsec_…] [--status 200]

With `--secret`, each request's Standard Webhooks signature is verified with the independent
`standardwebhooks` package, and the verdict printed beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from aiohttp import web

SECRETS = web.AppKey("secrets", list[str])
STATUS = web.AppKey("status", int)


def verify(secrets: list[str], headers: dict[str, str], body: bytes) -> str:
    """`verified`, `no secret given`, or why the signature does not check out."""
    if not secrets:
        return "no secret given"
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    errors = []
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError as error:
            errors.append(str(error))
        else:
            return "verified"
    return "NOT VERIFIED: " + "; ".join(errors)


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {key.lower(): value for key, value in request.headers.items()}
    verdict = verify(request.app[SECRETS], headers, body)
    try:
        shown = json.dumps(json.loads(body), indent=2)
    except ValueError:
        shown = body.decode(errors="replace")
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    print(f"--- {now} {request.method} {request.path_qs}", flush=True)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        print(f"{name}: {headers.get(name, '-')}")
    print(f"signature: {verdict}")
    print(shown, flush=True)
    return web.Response(status=request.app[STATUS])


def create_app(secrets: list[str], status: int = 200) -> web.Application:
    app = web.Application()
    app[SECRETS] = secrets
    app[STATUS] = status
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", action="append", default=[], help="whsec_… (repeatable)")
    parser.add_argument("--status", type=int, default=200, help="the status to answer with")
    args = parser.parse_args(argv)
    print(f"receiver listening on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    web.run_app(create_app(args.secret, args.status), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
