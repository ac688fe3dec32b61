"""Export the wire contract as JSON Schema files: `python -m schemas.export [folder]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.catalog import CatalogFile
from schemas.deliveries import DeliveredPayload, DeliveryAttempted, DeliveryTask
from schemas.events import Event, EventIn
from schemas.history import DeliveryView
from schemas.payloads import CloudEvent, KeyclicPayload, XurrentPayload
from schemas.webhook_policies import WebhookPolicy, WebhookPolicyCreate, WebhookPolicyPatch
from schemas.webhooks import Webhook, WebhookCreate, WebhookPatch

JSON_DIR = Path(__file__).parent / "json"

# file name → the model it describes
MODELS: dict[str, type[BaseModel]] = {
    "event.schema.json": EventIn,
    "stamped-event.schema.json": Event,
    "webhook.schema.json": Webhook,
    "webhook-create.schema.json": WebhookCreate,
    "webhook-patch.schema.json": WebhookPatch,
    "webhook-policy.schema.json": WebhookPolicy,
    "webhook-policy-create.schema.json": WebhookPolicyCreate,
    "webhook-policy-patch.schema.json": WebhookPolicyPatch,
    "delivered-payload.schema.json": DeliveredPayload,
    "xurrent-payload.schema.json": XurrentPayload,
    "keyclic-payload.schema.json": KeyclicPayload,
    "cloudevent.schema.json": CloudEvent,
    "delivery-task.schema.json": DeliveryTask,
    "delivery-attempted.schema.json": DeliveryAttempted,
    "delivery.schema.json": DeliveryView,
    "catalog-file.schema.json": CatalogFile,
}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render(model: type[BaseModel]) -> str:
    return json.dumps(schema_of(model), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else JSON_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, model in MODELS.items():
        (folder / file_name).write_text(render(model))
        print(folder / file_name)


if __name__ == "__main__":
    main(sys.argv[1:])
