"""`hookline quarantine …`: messages no consumer could handle; send them back or drop them."""

from __future__ import annotations

from typing import Annotated

import typer

from hookline.cli.app import session_of
from hookline.cli.passes import follow_pass

app = typer.Typer(name="quarantine", help="List, redrive and discard quarantined messages.")

COLUMNS = [
    ("id", "id"),
    ("from", "source_queue"),
    ("reason", "reason"),
    ("message id", "message_id"),
    ("size", "size"),
    ("body", "body"),
]


@app.command("list")
def list_quarantined(
    context: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """The first messages in quarantine, oldest first (they stay where they are)."""
    session = session_of(context)
    answer = session.router().request("GET", "/quarantine", params={"limit": limit})
    total = answer.headers.get("X-Total-Count", "?")
    session.output.table(answer.body, COLUMNS, title=f"{len(answer.body)} of {total} in quarantine")


@app.command()
def redrive(
    context: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="q_… ids from `list`.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every quarantined message.")] = False,
) -> None:
    """Send messages back to the queue they came from (once what failed them is fixed)."""
    session = session_of(context)
    if bool(ids) == every:
        raise typer.BadParameter("give ids, or --all")
    api = session.router()
    started = api.request("POST", "/quarantine/redrive", json={"ids": ids} if ids else None)
    raise typer.Exit(follow_pass(api, started, session.output))


@app.command()
def discard(
    context: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="q_… ids from `list`.")],
) -> None:
    """Drop messages on purpose."""
    session = session_of(context)
    api = session.router()
    started = api.request("POST", "/quarantine/discard", json={"ids": ids})
    raise typer.Exit(follow_pass(api, started, session.output))
