"""`hookline webhooks …`: the webhooks API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hookline.cli.app import session_of
from hookline.cli.pages import every_page
from hookline.cli.passes import follow_replay

app = typer.Typer(name="webhooks", help="List, create, change, test and delete webhooks.")

COLUMNS = [
    ("id", "id"),
    ("event", "event"),
    ("uri", "uri"),
    ("disabled", "disabled"),
    ("last error", "last_error"),
    ("last attempt", "last_attempt_at"),
]
WebhookId = Annotated[str, typer.Argument(help="The webhook's id, wh_…")]


@app.command("list")
def list_webhooks(
    context: typer.Context,
    enabled: Annotated[bool, typer.Option("--enabled", help="Only the enabled ones.")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Only the disabled ones.")] = False,
) -> None:
    """Every webhook, newest first (all pages)."""
    session = session_of(context)
    if enabled and disabled:
        raise typer.BadParameter("--enabled or --disabled, not both")
    path = "/webhooks/enabled" if enabled else "/webhooks/disabled" if disabled else "/webhooks"
    rows = every_page(session.router(), path, {"per_page": 100})
    session.output.table(rows, COLUMNS)


@app.command()
def show(context: typer.Context, webhook_id: WebhookId) -> None:
    """One webhook, with its endpoint's health."""
    session = session_of(context)
    session.output.record(session.router().request("GET", f"/webhooks/{webhook_id}").body)


FormatOption = Annotated[
    str | None,
    typer.Option("--format", help="standard (the default), xurrent, keyclic, raw or cloudevents."),
]
MethodOption = Annotated[str | None, typer.Option(help="POST (the default) or GET.")]
HttpsOnlyOption = Annotated[
    bool | None, typer.Option("--https-only/--http-allowed", help="Refuse http targets.")
]
PolicyOption = Annotated[
    str | None, typer.Option(help="Sign its messages as a JWT with this webhook policy (pol_…).")
]
SignedOption = Annotated[
    bool | None, typer.Option("--signed/--unsigned", help="Send webhook-signature (the default).")
]


@app.command()
def create(
    context: typer.Context,
    event: Annotated[str, typer.Option(help="An event type, or a pattern (problem.*, #).")],
    uri: Annotated[str, typer.Option(help="Where to POST.")],
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    account: Annotated[str | None, typer.Option()] = None,
    mail_exceptions_to: Annotated[str | None, typer.Option()] = None,
    secret: Annotated[str | None, typer.Option(help="whsec_…; generated when absent.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    payload_format: FormatOption = None,
    method: MethodOption = None,
    https_only: HttpsOnlyOption = None,
    signed: SignedOption = None,
    policy: PolicyOption = None,
) -> None:
    """Create a webhook; the answer shows its signing secret."""
    session = session_of(context)
    fields: dict[str, Any] = {"event": event, "uri": uri, "disabled": disabled}
    optional = {
        "name": name,
        "description": description,
        "account": account,
        "mail_exceptions_to": mail_exceptions_to,
        "secret": secret,
        "format": payload_format,
        "method": method,
        "https_only": https_only,
        "signed": signed,
        "webhook_policy": policy,
    }
    fields |= {key: value for key, value in optional.items() if value is not None}
    session.output.record(session.router().request("POST", "/webhooks", json=fields).body)


@app.command()
def update(
    context: typer.Context,
    webhook_id: WebhookId,
    event: Annotated[str | None, typer.Option()] = None,
    uri: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    mail_exceptions_to: Annotated[str | None, typer.Option()] = None,
    payload_format: FormatOption = None,
    method: MethodOption = None,
    https_only: HttpsOnlyOption = None,
    signed: SignedOption = None,
    policy: PolicyOption = None,
    no_policy: Annotated[
        bool, typer.Option("--no-policy", help="No webhook policy: the body as it is.")
    ] = False,
) -> None:
    """Change the fields given; the others stay."""
    session = session_of(context)
    given = {
        "event": event,
        "uri": uri,
        "name": name,
        "description": description,
        "mail_exceptions_to": mail_exceptions_to,
        "format": payload_format,
        "method": method,
        "https_only": https_only,
        "signed": signed,
        "webhook_policy": policy,
    }
    fields: dict[str, str | bool | None] = {
        key: value for key, value in given.items() if value is not None
    }
    if no_policy:
        if policy is not None:
            raise typer.BadParameter("--policy or --no-policy, not both")
        fields["webhook_policy"] = None
    if not fields:
        raise typer.BadParameter("give at least one field to change")
    answer = session.router().request("PATCH", f"/webhooks/{webhook_id}", json=fields)
    session.output.record(answer.body)


@app.command()
def enable(context: typer.Context, webhook_id: WebhookId) -> None:
    """Enable a webhook (its failure count starts over)."""
    _set_disabled(context, webhook_id, False)


@app.command()
def disable(context: typer.Context, webhook_id: WebhookId) -> None:
    """Disable a webhook: nothing is sent to it until it is enabled."""
    _set_disabled(context, webhook_id, True)


def _set_disabled(context: typer.Context, webhook_id: str, disabled: bool) -> None:
    session = session_of(context)
    answer = session.router().request(
        "PATCH", f"/webhooks/{webhook_id}", json={"disabled": disabled}
    )
    session.output.record(answer.body)


@app.command()
def delete(context: typer.Context, webhook_id: WebhookId) -> None:
    """Delete a webhook."""
    session = session_of(context)
    session.router().request("DELETE", f"/webhooks/{webhook_id}")
    session.output.done(f"deleted {webhook_id}", {"deleted": webhook_id})


@app.command()
def test(context: typer.Context, webhook_id: WebhookId) -> None:
    """Send a test event once (even to a disabled webhook); see it in `deliveries list`."""
    session = session_of(context)
    session.router().request("POST", f"/webhooks/{webhook_id}/test")
    session.output.done(f"test event sent to {webhook_id}", {"tested": webhook_id})


@app.command()
def secret(
    context: typer.Context,
    webhook_id: WebhookId,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="A new secret now; the old one signs beside it.")
    ] = False,
) -> None:
    """The signing secret (or a new one with --rotate)."""
    session = session_of(context)
    if rotate:
        answer = session.router().request("POST", f"/webhooks/{webhook_id}/secret/rotate")
    else:
        answer = session.router().request("GET", f"/webhooks/{webhook_id}/secret")
    session.output.record(answer.body)


@app.command()
def replay(
    context: typer.Context,
    webhook_id: WebhookId,
    since: Annotated[str, typer.Option(help="From this time (RFC 3339), by the events' own time.")],
    until: Annotated[str | None, typer.Option(help="Up to this time; default: now.")] = None,
    event: Annotated[str | None, typer.Option(help="Only types this matches (a.b, a.*).")] = None,
    rate: Annotated[
        float, typer.Option(min=0.1, max=1000, help="Deliveries a second, at most.")
    ] = 100,
) -> None:
    """Send the webhook the events of a window again, from the events stream, and wait for it
    (exit status 1 if the replay failed)."""
    session = session_of(context)
    body: dict[str, Any] = {"since": since, "rate_per_s": rate}
    if until is not None:
        body["until"] = until
    if event is not None:
        body["event"] = event
    api = session.router()
    started = api.request("POST", f"/webhooks/{webhook_id}/replay", json=body)
    raise typer.Exit(follow_replay(api, started, session.output))
