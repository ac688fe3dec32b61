"""`hookline dead-letters …`: deliveries that ran out of attempts, and sending them again."""

from __future__ import annotations

from typing import Annotated

import typer

from hookline.cli.app import session_of
from hookline.cli.deliveries import COLUMNS, rows_of
from hookline.cli.pages import every_page
from hookline.cli.passes import follow_pass

app = typer.Typer(name="dead-letters", help="List dead letters and redrive them.")


@app.command("list")
def list_dead_letters(
    context: typer.Context,
    webhook: Annotated[str | None, typer.Option(help="Only this webhook's.")] = None,
    reason: Annotated[str | None, typer.Option(help="The last error, exactly: '410 Gone'.")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339.")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just the first.")] = False,
) -> None:
    """Deliveries whose newest attempt dead-lettered them, newest first."""
    session = session_of(context)
    params = {"webhook_id": webhook, "reason": reason, "since": since, "until": until, "limit": 100}
    if every:
        found = list(every_page(session.router(), "/dead-letters", params))
    else:
        found = session.router().request("GET", "/dead-letters", params=params).body
    if session.output.as_json:
        session.output.json(found)
    else:
        columns = [("webhook", "webhook_id"), *COLUMNS]
        session.output.table(rows_of(found), columns)


@app.command()
def redrive(
    context: typer.Context,
    webhook: Annotated[str | None, typer.Option(help="Only this webhook's dead letters.")] = None,
    delivery: Annotated[
        list[str] | None, typer.Option(help="A delivery id (webhook-id); give it again for more.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Send dead letters again: each is its delivery's next attempt on a fresh schedule, under
    the same webhook-id. Exit status 0 when the redrive finished, 1 when it failed."""
    session = session_of(context)
    if not (every or webhook or delivery):
        raise typer.BadParameter("say which: --all, --webhook or --delivery")
    if every and (webhook or delivery):
        raise typer.BadParameter("--all, or --webhook/--delivery, not both")
    body: dict[str, object] = {}
    if webhook:
        body["webhook_id"] = webhook
    if delivery:
        body["delivery_ids"] = delivery
    api = session.router()
    started = api.request("POST", "/dead-letters/redrive", json=body)
    raise typer.Exit(follow_pass(api, started, session.output))
