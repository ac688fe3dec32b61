"""The committed JSON Schemas are what the models say (run `make schemas` after a change)."""

from __future__ import annotations

import json

import pytest

from schemas.export import JSON_DIR, MODELS, render


@pytest.mark.parametrize("file_name", sorted(MODELS))
def test_committed_schema_matches_its_model(file_name: str) -> None:
    """Each schemas/json file is exactly what its model renders today."""
    committed = (JSON_DIR / file_name).read_text()
    assert committed == render(MODELS[file_name]), f"run `make schemas` to update {file_name}"


def test_every_schema_file_is_listed() -> None:
    """Every file in schemas/json belongs to a model, so none is stale."""
    on_disk = {path.name for path in JSON_DIR.glob("*.json")}
    assert on_disk == set(MODELS)


def test_rendered_schemas_are_json_schema_2020_12() -> None:
    """Each rendered schema names its dialect and a title."""
    for model in MODELS.values():
        schema = json.loads(render(model))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"]
