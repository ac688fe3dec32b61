"""`hookline`: the root command, its common options, and how a failure ends the process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer

from hookline.cli.client import Api
from hookline.cli.output import Output

app = typer.Typer(
    name="hookline",
    help="Operate Hookline: webhooks, delivery history, dead letters, quarantine, events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@dataclass
class Session:
    """What every command is given: where the APIs are, the tokens, and how to print."""

    router_url: str
    producer_url: str
    admin_token: str | None
    ingest_token: str | None
    output: Output
    _apis: dict[str, Api] = field(default_factory=dict)

    def router(self) -> Api:
        return self._api(self.router_url, self.admin_token)

    def producer(self) -> Api:
        return self._api(self.producer_url, self.ingest_token)

    def _api(self, url: str, token: str | None) -> Api:
        if url not in self._apis:
            self._apis[url] = Api(url, token)
        return self._apis[url]

    def close(self) -> None:
        for api in self._apis.values():
            api.close()


@app.callback()
def root(
    context: typer.Context,
    router_url: Annotated[
        str, typer.Option("--router", envvar="HOOKLINE_ROUTER_URL", help="The router's API.")
    ] = "http://127.0.0.1:8001",
    producer_url: Annotated[
        str, typer.Option("--producer", envvar="HOOKLINE_PRODUCER_URL", help="The producer's API.")
    ] = "http://127.0.0.1:8000",
    admin_token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HOOKLINE_ADMIN_TOKEN",
            help="A bearer token of the router (the first of a comma-separated list).",
            show_default=False,
        ),
    ] = None,
    ingest_token: Annotated[
        str | None,
        typer.Option(
            "--ingest-token",
            envvar="HOOKLINE_INGEST_TOKEN",
            help="A bearer token of the producer.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON instead of tables.")
    ] = False,
) -> None:
    session = Session(
        router_url=router_url,
        producer_url=producer_url,
        admin_token=_first(admin_token),
        ingest_token=_first(ingest_token),
        output=Output(as_json),
    )
    context.obj = session
    context.call_on_close(session.close)


def _first(tokens: str | None) -> str | None:
    """The services take several tokens, comma-separated; a client sends one."""
    if not tokens:
        return None
    return tokens.split(",")[0].strip() or None


def session_of(context: typer.Context) -> Session:
    session = context.find_root().obj
    assert isinstance(session, Session)
    return session
