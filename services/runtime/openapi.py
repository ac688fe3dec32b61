"""OpenAPI 3.1 documents of the HTTP APIs, built from the same pydantic models the handlers
validate with, so the document cannot drift from what is accepted; served at `/openapi.json`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

JSON = "application/json"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["error"],
}
# Answers every protected operation may give, whatever it does.
UNAUTHORIZED = {
    "description": "Missing or wrong bearer token.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
}
OPERATIONAL_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "The process is up.",
            "security": [],
            "responses": {"200": {"description": "Up.", "content": {JSON: {"schema": {}}}}},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Every readiness check holds (broker connected, streams followed).",
            "security": [],
            "responses": {
                "200": {"description": "Ready.", "content": {JSON: {"schema": {}}}},
                "503": {"description": "Not ready.", "content": {JSON: {"schema": {}}}},
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics.",
            "security": [],
            "responses": {
                "200": {"description": "Text exposition.", "content": {"text/plain": {}}}
            },
        }
    },
}


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def error(description: str, **headers: str) -> dict[str, Any]:
    """A documented error answer: the JSON body every API error has."""
    answer: dict[str, Any] = {
        "description": description,
        "content": json_content({"$ref": "#/components/schemas/Error"}),
    }
    if headers:
        answer["headers"] = {name: {"schema": {"type": kind}} for name, kind in headers.items()}
    return answer


def document(
    *,
    title: str,
    version: str,
    description: str,
    paths: dict[str, Any],
    models: Iterable[type[BaseModel]],
) -> dict[str, Any]:
    """The whole document: `paths`, plus the operational routes, with each model (and the models
    it uses) under `components/schemas`."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": {**paths, **OPERATIONAL_PATHS},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def add_openapi_route(app: web.Application, built: dict[str, Any]) -> None:
    """Serve the document at `/openapi.json`, without a token."""

    async def serve(_request: web.Request) -> web.Response:
        return web.json_response(built)

    app.router.add_get("/openapi.json", serve)
