"""The `hookline` console entry point: every command group on the root, and an API's refusal as
a message and an exit status, never a traceback."""

from __future__ import annotations

from hookline.cli import (
    dead_letters,
    deliveries,
    event_types,
    policies,
    publish,
    quarantine,
    webhooks,
)
from hookline.cli.app import app
from hookline.cli.client import ApiError
from hookline.cli.output import Output

for group in (
    webhooks.app,
    policies.app,
    deliveries.app,
    dead_letters.app,
    quarantine.app,
    event_types.app,
):
    app.add_typer(group)
app.command("publish")(publish.publish)


def main() -> None:
    try:
        app()
    except ApiError as error:
        Output(as_json=False).error(str(error))
        raise SystemExit(error.exit_code) from None
