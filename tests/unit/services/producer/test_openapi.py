"""POST /events' OpenAPI document names every route the producer serves."""

from __future__ import annotations

from pydantic import SecretStr

from services.producer.app import create_app
from services.producer.openapi import producer_document
from services.producer.settings import ProducerSettings


def test_every_route_is_documented_and_the_batch_limit_is_the_setting() -> None:
    settings = ProducerSettings(ingest_token=SecretStr("t"), max_batch=7)
    app = create_app(settings)
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = producer_document(max_batch=settings.max_batch)
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == served - {("get", "/openapi.json")}
    body = document["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["oneOf"][1]["maxItems"] == 7
