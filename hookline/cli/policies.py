"""`hookline policies …`: the webhook policies API (admin tokens of every account)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hookline.cli.app import session_of
from hookline.cli.pages import every_page

app = typer.Typer(
    name="policies", help="List, create, change and delete webhook policies (JWT signing)."
)

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("alg", "jwt_alg"),
    ("audience", "jwt_audience"),
    ("expires in (s)", "jwt_claim_expires_in"),
    ("disabled", "disabled"),
]
PolicyId = Annotated[str, typer.Argument(help="The policy's id, pol_…")]


@app.command("list")
def list_policies(
    context: typer.Context,
    enabled: Annotated[bool, typer.Option("--enabled", help="Only the enabled ones.")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Only the disabled ones.")] = False,
) -> None:
    """Every webhook policy, newest first (all pages)."""
    session = session_of(context)
    if enabled and disabled:
        raise typer.BadParameter("--enabled or --disabled, not both")
    path = "/webhook_policies"
    path += "/enabled" if enabled else "/disabled" if disabled else ""
    session.output.table(every_page(session.router(), path, {"per_page": 100}), COLUMNS)


@app.command()
def show(context: typer.Context, policy_id: PolicyId) -> None:
    """One webhook policy (its key is never shown again after the create)."""
    session = session_of(context)
    session.output.record(session.router().request("GET", f"/webhook_policies/{policy_id}").body)


@app.command()
def create(
    context: typer.Context,
    name: Annotated[str, typer.Option()],
    alg: Annotated[
        str,
        typer.Option(
            "--alg",
            help="How tokens are signed: none, hs256/384/512, rs256/384/512, es256/384/512.",
        ),
    ],
    audience: Annotated[str | None, typer.Option(help="The tokens' `aud` claim.")] = None,
    expires_in: Annotated[
        int | None, typer.Option(help="Seconds from a token's iat to its exp (default 60).")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    save_key: Annotated[
        Path | None,
        typer.Option(
            help="Write the public key (PEM) or shared secret the answer shows, once, to this "
            "file (it must not exist yet).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Create a webhook policy with a fresh key. The answer shows its public key (rs*, es*) or
    shared secret (hs*) this once: give it to the subscribers."""
    session = session_of(context)
    if save_key is not None and save_key.exists():
        raise typer.BadParameter(f"{save_key} exists already", param_hint="--save-key")
    fields: dict[str, Any] = {"name": name, "jwt_alg": alg, "disabled": disabled}
    if audience is not None:
        fields["jwt_audience"] = audience
    if expires_in is not None:
        fields["jwt_claim_expires_in"] = expires_in
    made = session.router().request("POST", "/webhook_policies", json=fields).body
    key = made.get("public_key") or made.get("secret")
    if save_key is not None and key:
        with save_key.open("x") as handle:  # never over a file of someone else's
            handle.write(key)
        save_key.chmod(0o600)
    session.output.record(made)


@app.command()
def update(
    context: typer.Context,
    policy_id: PolicyId,
    name: Annotated[str | None, typer.Option()] = None,
    audience: Annotated[str | None, typer.Option(help="The tokens' `aud` claim.")] = None,
    no_audience: Annotated[
        bool, typer.Option("--no-audience", help="Send tokens without `aud`.")
    ] = False,
    expires_in: Annotated[int | None, typer.Option(help="Seconds from iat to exp.")] = None,
    enable: Annotated[bool, typer.Option("--enable")] = False,
    disable: Annotated[bool, typer.Option("--disable", help="Its webhooks get nothing.")] = False,
) -> None:
    """Change the fields given; the others stay. The algorithm cannot change (its key was made
    for it): create another policy and point the webhooks at it."""
    session = session_of(context)
    if audience is not None and no_audience:
        raise typer.BadParameter("--audience or --no-audience, not both")
    if enable and disable:
        raise typer.BadParameter("--enable or --disable, not both")
    fields: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "jwt_audience": audience,
            "jwt_claim_expires_in": expires_in,
        }.items()
        if value is not None
    }
    if no_audience:
        fields["jwt_audience"] = None
    if enable or disable:
        fields["disabled"] = disable
    if not fields:
        raise typer.BadParameter("give at least one field to change")
    answer = session.router().request("PATCH", f"/webhook_policies/{policy_id}", json=fields)
    session.output.record(answer.body)


@app.command()
def delete(context: typer.Context, policy_id: PolicyId) -> None:
    """Delete a webhook policy no webhook names (the refusal lists those that do)."""
    session = session_of(context)
    session.router().request("DELETE", f"/webhook_policies/{policy_id}")
    session.output.done(f"deleted {policy_id}", {"deleted": policy_id})
