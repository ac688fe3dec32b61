"""Loading a catalog folder: every file and schema is checked at start, and whatever is wrong is
named by file and type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from services.runtime import catalog_files
from services.runtime.catalog_files import CatalogError, load_catalog
from tests.support.catalog import COUNTED, entry, write_catalog


def refused(folder: Path, files: dict[str, Any]) -> str:
    """The message of the CatalogError loading these files gives."""
    write_catalog(folder, files)
    with pytest.raises(CatalogError) as raised:
        load_catalog(folder)
    return str(raised.value)


def test_each_file_is_a_product_holding_its_types(tmp_path: Path) -> None:
    write_catalog(
        tmp_path,
        {
            "acme.json": {
                "title": "Acme",
                "events": {"order.paid": entry(examples=[{"n": 1}]), "orderShipped": entry()},
            },
            "globex.json": {"events": {"invoice.sent": entry({"type": "object"})}},
            "README.md": "# not a catalog file",
            ".draft.json": "not even JSON",
        },
    )
    types = {cataloged.type: cataloged for cataloged in load_catalog(tmp_path)}
    assert sorted(types) == ["invoice.sent", "order.paid", "orderShipped"]
    assert types["order.paid"].product == "acme"
    assert types["order.paid"].examples == ({"n": 1},)
    assert types["order.paid"].schema == COUNTED
    assert types["invoice.sent"].product == "globex"
    assert types["order.paid"].problems({"n": "one"})  # compiled, and checking


def test_a_path_that_is_no_folder_or_a_folder_without_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not a folder"):
        load_catalog(tmp_path / "missing")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(CatalogError, match="not a folder"):
        load_catalog(tmp_path / "file.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogError, match=r"empty: holds no \*\.json catalog file"):
        load_catalog(empty)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"events": {}, "events": {}}', "not JSON: the key 'events' appears twice"),
        ('{"events": {"a": ' * 2000, "nests too deeply"),
    ],
)
def test_a_file_that_is_not_json_is_named(tmp_path: Path, text: str, reason: str) -> None:
    message = refused(tmp_path, {"acme.json": text})
    assert message.startswith(f"{tmp_path / 'acme.json'}: ")
    assert re.search(reason, message), message


def test_a_file_without_the_shape_of_a_catalog_file_names_each_field(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        {
            "acme.json": {
                "events": {
                    "order.paid": {"schema": COUNTED},
                    "bad type": entry(),
                    "order.sent": entry(shape="round"),
                },
                "owner": "me",
            }
        },
    )
    assert message.startswith(f"{tmp_path / 'acme.json'}: not an event catalog file: ")
    assert "events.order.paid.description: Field required" in message
    assert "events.bad type.[key]: String should match pattern" in message
    assert "events.order.sent.shape: Extra inputs are not permitted" in message
    assert "owner: Extra inputs are not permitted" in message


def test_a_file_without_events_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, {"acme.json": {"events": {}}})
    assert "events: Dictionary should have at least 1 item" in message


def test_a_file_is_named_after_its_product(tmp_path: Path) -> None:
    message = refused(tmp_path, {"acme corp.json": {"events": {"a.b": entry()}}})
    assert "acme corp.json: a catalog file is named after its product" in message


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "strin"}, r"schema is not valid JSON Schema at \$\.type: 'strin' is not valid"),
        (
            {"properties": {"id": {"type": "string", "pattern": "(unclosed"}}},
            r"schema is not valid JSON Schema at \$\.properties\.id\.pattern: '\(unclosed' is not",
        ),
        ({"required": "n"}, r"schema is not valid JSON Schema at \$\.required"),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
            r"\$schema is 'http://json-schema.org/draft-07/schema#'; a catalog's schemas are "
            r"Draft 2020-12",
        ),
        (
            {"properties": {"a": {"$ref": "https://example.com/a.json"}}},
            r"\$ref 'https://example.com/a.json' points outside the schema",
        ),
        ({"properties": {"a": {"$ref": "other.json#/x"}}}, "points outside the schema"),
        (
            {"$defs": {"id": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/nope"}}},
            r"\$ref '#/\$defs/nope' does not resolve",
        ),
    ],
)
def test_an_invalid_schema_is_named_by_file_type_and_place(
    tmp_path: Path, schema: dict[str, Any], reason: str
) -> None:
    message = refused(tmp_path, {"acme.json": {"events": {"order.paid": entry(schema)}}})
    assert message.startswith(f"{tmp_path / 'acme.json'}: type 'order.paid': "), message
    assert re.search(reason, message), message


def test_references_within_the_schema_are_fine(tmp_path: Path) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"id": {"type": "string", "pattern": "^KX"}},
        "type": "object",
        "properties": {"userId": {"$ref": "#/$defs/id"}, "list": {"items": {"$ref": "#"}}},
    }
    write_catalog(tmp_path, {"acme.json": {"events": {"a.b": entry(schema)}}})
    [cataloged] = load_catalog(tmp_path)
    assert [str(problem) for problem in cataloged.problems({"userId": "nope"})] == [
        "data.userId: 'nope' does not match '^KX'"
    ]


def test_an_example_its_schema_refuses_is_named(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        {"acme.json": {"events": {"order.paid": entry(examples=[{"n": 1}, {"n": "two"}])}}},
    )
    assert message == (
        f"{tmp_path / 'acme.json'}: type 'order.paid': examples[1] fails the schema: "
        "data.n: 'two' is not of type 'integer'"
    )


def test_a_type_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        {
            "acme.json": {"events": {"order.paid": entry()}},
            "globex.json": {"events": {"order.paid": entry()}},
        },
    )
    assert message == (
        f"{tmp_path / 'globex.json'}: type 'order.paid' is also defined in {tmp_path / 'acme.json'}"
    )


def test_a_huge_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_files, "MAX_FILE_BYTES", 100)
    message = refused(tmp_path, {"acme.json": {"events": {"order.paid": entry()}}})
    assert "more than 100" in message
