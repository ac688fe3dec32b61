"""The webhooks API's OpenAPI document names every route the router serves, and each model's
schema is the one the handlers validate with."""

from __future__ import annotations

from pydantic import SecretStr

from schemas.webhooks import Webhook, WebhookCreate
from services.router.app import create_app
from services.router.openapi import router_document
from services.router.settings import RouterSettings


def test_every_route_is_documented_and_every_documented_path_is_served() -> None:
    app = create_app(RouterSettings(admin_token=SecretStr("t")))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = router_document()
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    # The document itself and the operator page's static files are not the API.
    pages = {(method, path) for method, path in served if path.startswith("/ui")}
    assert pages == {("get", "/ui"), ("get", "/ui/"), ("get", "/ui/{name}")}
    assert documented == served - {("get", "/openapi.json")} - pages


def test_the_document_carries_the_models_schemas() -> None:
    schemas = router_document()["components"]["schemas"]
    assert schemas["WebhookCreate"]["required"] == ["event", "uri"]
    assert set(Webhook.model_fields) <= set(schemas["Webhook"]["properties"])
    assert set(WebhookCreate.model_fields) == set(schemas["WebhookCreate"]["properties"])
    assert router_document()["openapi"] == "3.1.0"
