"""`hookline event-types …`: the event catalog, as the router lists it."""

from __future__ import annotations

from typing import Annotated

import typer

from hookline.cli.app import session_of

app = typer.Typer(name="event-types", help="The event catalog: known types and their schemas.")

COLUMNS = [("type", "type"), ("product", "product"), ("description", "description")]


@app.command("list")
def list_event_types(
    context: typer.Context,
    product: Annotated[str | None, typer.Option(help="Only this product's types.")] = None,
) -> None:
    """Every cataloged event type, in order of the type."""
    session = session_of(context)
    answer = session.router().request("GET", "/event-types", params={"product": product})
    session.output.table(answer.body, COLUMNS)


@app.command()
def show(
    context: typer.Context,
    event_type: Annotated[str, typer.Argument(help="The type: recordApproval, request.update.")],
) -> None:
    """One type, with the JSON Schema of its data and its examples."""
    session = session_of(context)
    session.output.record(session.router().request("GET", f"/event-types/{event_type}").body)
