"""`hookline publish`: one event through the producer's `POST /events`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hookline.cli.app import session_of


def publish(
    context: typer.Context,
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="problem.update, …")],
    data: Annotated[str | None, typer.Option(help="The event's data: a JSON object.")] = None,
    data_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="…or a file holding it.")
    ] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Your id (idempotency key).")] = None,
    account: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option()] = None,
    object_id: Annotated[str | None, typer.Option(help="A number or a string.")] = None,
) -> None:
    """Publish one event; prints its id once the broker confirmed it."""
    session = session_of(context)
    if data is not None and data_file is not None:
        raise typer.BadParameter("--data or --data-file, not both")
    text = data_file.read_text() if data_file is not None else (data or "{}")
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"the data is not JSON: {error}") from None
    event: dict[str, Any] = {"type": event_type, "data": payload}
    optional: dict[str, Any] = {
        "id": event_id,
        "account": account,
        "source": source,
        "object_id": int(object_id) if object_id and object_id.isdigit() else object_id,
    }
    event |= {key: value for key, value in optional.items() if value is not None}
    answer = session.producer().request("POST", "/events", json=event)
    session.output.done(answer.body["id"], answer.body)
