"""`hookline deliveries …`: a webhook's delivery history, and following it live."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.table import Table

from hookline.cli.app import session_of
from hookline.cli.output import Output
from hookline.cli.pages import every_page

app = typer.Typer(name="deliveries", help="What was sent, when, and what came back.")

COLUMNS = [
    ("delivery (webhook-id)", "delivery_id"),
    ("event type", "event_type"),
    ("outcome", "outcome"),
    ("attempts", "attempt_count"),
    ("last attempt", "last_attempt_at"),
    ("last status", "last_status"),
    ("last error", "last_error"),
]
Outcome = Annotated[
    str | None,
    typer.Option(help="delivered, retry_scheduled, dead_lettered, failed or cancelled."),
]
Since = Annotated[str | None, typer.Option(help="RFC 3339, e.g. 2026-11-27T06:00:00Z.")]


def rows_of(deliveries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each delivery with its last attempt's status and error beside it, for a table."""
    rows = []
    for delivery in deliveries:
        last = (delivery.get("attempts") or [{}])[-1]
        rows.append(
            {**delivery, "last_status": last.get("status_code"), "last_error": last.get("error")}
        )
    return rows


@app.command("list")
def list_deliveries(
    context: typer.Context,
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id, wh_…")],
    outcome: Outcome = None,
    event_type: Annotated[str | None, typer.Option()] = None,
    since: Since = None,
    until: Since = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Rows a page.")] = 20,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just the first.")] = False,
) -> None:
    """A webhook's deliveries, newest first."""
    session = session_of(context)
    params = {
        "outcome": outcome,
        "event_type": event_type,
        "since": since,
        "until": until,
        "limit": limit,
    }
    path = f"/webhooks/{webhook_id}/deliveries"
    if every:
        found = list(every_page(session.router(), path, params))
    else:
        found = session.router().request("GET", path, params=params).body
    if session.output.as_json:
        session.output.json(found)
    else:
        session.output.table(rows_of(found), COLUMNS)


@app.command()
def show(
    context: typer.Context,
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id: its webhook-id header.")],
) -> None:
    """One delivery with every attempt and the start of each answer."""
    session = session_of(context)
    delivery = session.router().request("GET", f"/deliveries/{delivery_id}").body
    if session.output.as_json:
        session.output.json(delivery)
        return
    session.output.record({k: v for k, v in delivery.items() if k != "attempts"})
    table = Table(title="attempts")
    for heading in ("#", "at", "outcome", "status", "ms", "error", "answer"):
        table.add_column(heading, overflow="fold")
    for attempt in delivery["attempts"]:
        table.add_row(
            str(attempt["attempt"]),
            attempt["at"],
            attempt["outcome"],
            str(attempt.get("status_code") or ""),
            str(attempt.get("duration_ms") or ""),
            attempt.get("error") or "",
            attempt.get("response_body") or "",
        )
    session.output.console.print(table)


@app.command()
def follow(
    context: typer.Context,
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id, wh_…")],
    every_s: Annotated[
        float, typer.Option("--every", min=0.2, help="Seconds between looks.")
    ] = 2.0,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many lines (default: Ctrl-C).")
    ] = None,
) -> None:
    """Print each attempt of the webhook's deliveries as it happens (one line each; a JSON
    object a line with --json)."""
    session = session_of(context)
    seen: set[tuple[str, int, str]] = set()
    printed = 0
    first = True
    while count is None or printed < count:
        found = (
            session.router()
            .request("GET", f"/webhooks/{webhook_id}/deliveries", params={"limit": 100})
            .body
        )
        for delivery in reversed(found):
            for attempt in delivery["attempts"]:
                key = (delivery["delivery_id"], attempt["attempt"], attempt["at"])
                if key in seen:
                    continue
                seen.add(key)
                if first:
                    continue  # what happened before we started is history, not news
                _print_attempt(session.output, delivery, attempt)
                printed += 1
                if count is not None and printed >= count:
                    return
        first = False
        time.sleep(every_s)


def _print_attempt(output: Output, delivery: dict[str, Any], attempt: dict[str, Any]) -> None:
    if output.as_json:
        shown = {k: v for k, v in delivery.items() if k != "attempts"}
        output.json_line({**shown, "attempt": attempt})
        return
    status = attempt.get("status_code") or attempt.get("error") or ""
    output.console.print(
        f"{attempt['at']}  {delivery['delivery_id']}  {delivery['event_type']}  "
        f"#{attempt['attempt']}  {attempt['outcome']}  {status}",
        highlight=False,
        markup=False,
    )
