"""Loading an event catalog from its folder, checked whole at start: a file that is not JSON, a
type with a bad name or defined twice, a schema that is not valid JSON Schema Draft 2020-12 or
points outside itself, an example its own schema refuses, each is a CatalogError naming the file
and the type, so a service with a broken catalog does not start (rather than fail on an event).

    catalog/examples/
      ketryx.json       {"title": "Ketryx", "events": {"recordApproval": {"description": …,
      keyclic.json                                      "schema": {…}, "examples": [{…}]}, …}}

Every `*.json` directly in the folder is one product's file, named after it; other files are left
alone (a README, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from schemas.catalog import DRAFT_2020_12, CatalogEntry, CatalogFile
from schemas.events import TYPE_WORD
from services.runtime.catalog import CatalogedType
from services.runtime.json_body import loads_strict

# A catalog file larger than this is a mistake (the example files take 130 KiB together).
MAX_FILE_BYTES = 4 * 1024 * 1024
# A file's name without `.json` is its product.
PRODUCT_NAME = re.compile(rf"^{TYPE_WORD}$")
# Problems listed for a file that does not have the catalog file's shape.
MAX_LISTED = 10
# Where each schema is placed to resolve its own `$ref`s: nothing else is there.
BASE_URI = "urn:hookline:event-catalog"


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the file and the type."""


def load_catalog(folder: str | Path) -> list[CatalogedType]:
    """Every type of the catalog in `folder`, each file and schema checked; CatalogError else."""
    root = Path(folder)
    if not root.is_dir():
        raise CatalogError(f"{root}: not a folder (the catalog is a folder of *.json files)")
    files = sorted(
        path for path in root.glob("*.json") if path.is_file() and not path.name.startswith(".")
    )
    if not files:
        raise CatalogError(f"{root}: holds no *.json catalog file")
    defined_in: dict[str, Path] = {}
    types: list[CatalogedType] = []
    for path in files:
        for cataloged in _types_of(path):
            if (other := defined_in.get(cataloged.type)) is not None:
                raise CatalogError(f"{path}: type {cataloged.type!r} is also defined in {other}")
            defined_in[cataloged.type] = path
            types.append(cataloged)
    return types


def _types_of(path: Path) -> Iterator[CatalogedType]:
    product = path.name.removesuffix(".json")
    if not PRODUCT_NAME.match(product):
        raise CatalogError(
            f"{path}: a catalog file is named after its product, in letters, digits, '_' and '-'"
        )
    catalog_file = _read(path)
    for event_type, entry in catalog_file.events.items():
        yield _cataloged(path, product, event_type, entry)


def _read(path: Path) -> CatalogFile:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CatalogError(f"{path}: {size} bytes, more than {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as error:
        raise CatalogError(f"{path}: cannot be read: {error.strerror or error}") from None
    try:
        parsed = loads_strict(raw)
    except ValueError as error:
        raise CatalogError(f"{path}: not JSON: {error}") from None
    except RecursionError:
        raise CatalogError(f"{path}: nests too deeply") from None
    try:
        return CatalogFile.model_validate(parsed)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or 'file'}: {problem['msg']}"
            for problem in error.errors(include_url=False)[:MAX_LISTED]
        ]
        raise CatalogError(f"{path}: not an event catalog file: {'; '.join(problems)}") from None


def _cataloged(path: Path, product: str, event_type: str, entry: CatalogEntry) -> CatalogedType:
    where = f"{path}: type {event_type!r}"
    schema = entry.data_schema
    dialect = schema.get("$schema", DRAFT_2020_12)
    if dialect not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
        raise CatalogError(
            f"{where}: schema: $schema is {dialect!r}; a catalog's schemas are Draft 2020-12"
            f" ({DRAFT_2020_12})"
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise CatalogError(
            f"{where}: schema is not valid JSON Schema at {error.json_path}: {error.message}"
        ) from None
    _check_references(where, schema)
    cataloged = CatalogedType(
        type=event_type,
        product=product,
        description=entry.description,
        schema=schema,
        examples=tuple(entry.examples),
    )
    for position, example in enumerate(entry.examples):
        if problems := cataloged.problems(example):
            raise CatalogError(
                f"{where}: examples[{position}] fails the schema: "
                + "; ".join(str(problem) for problem in problems)
            )
    return cataloged


def _check_references(where: str, schema: Mapping[str, Any]) -> None:
    """Every `$ref` and `$dynamicRef` points inside the schema, at something there: each type's
    schema stands alone (it is served alone by `GET /event-types/{type}`), and a reference that
    does not resolve would fail only on the first event that reaches it."""
    resource = DRAFT202012.create_resource(dict(schema))
    resolver = Registry().with_resource(BASE_URI, resource).resolver(base_uri=BASE_URI)
    for keyword, reference in _references(schema):
        if not reference.startswith("#"):
            raise CatalogError(
                f"{where}: schema: {keyword} {reference!r} points outside the schema; use"
                " #/$defs/… within it"
            )
        try:
            resolver.lookup(reference)
        except Unresolvable as error:
            raise CatalogError(
                f"{where}: schema: {keyword} {reference!r} does not resolve: {error}"
            ) from None


def _references(value: Any) -> Iterator[tuple[str, str]]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key in ("$ref", "$dynamicRef") and isinstance(child, str):
                    yield key, child
                else:
                    pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)
