"""The event catalog at run time: which types are known, and where an event's data fails its
type's schema."""

from __future__ import annotations

from typing import Any

import pytest

from services.runtime.catalog import (
    MAX_MESSAGE_CHARS,
    MAX_PROBLEMS,
    CatalogedType,
    CatalogProblem,
    EventCatalog,
    EventRefused,
)
from tests.support.catalog import COUNTED, PROJECTRAK_UPDATED

FIELD_CHANGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "value": {
                        "type": "object",
                        "properties": {"current": {"type": ["string", "null"]}},
                    }
                },
            },
        }
    },
}


def cataloged(name: str = "a.counted", schema: dict[str, Any] | None = None) -> CatalogedType:
    return CatalogedType(
        type=name, product="acme", description="d", schema=schema or COUNTED, examples=({"n": 1},)
    )


def fields_of(problems: list[CatalogProblem]) -> list[tuple[str, str]]:
    return [(problem.field(), problem.message) for problem in problems]


def test_data_that_passes_its_schema_has_no_problem() -> None:
    catalog = EventCatalog([cataloged()])
    assert catalog.problems("a.counted", {"n": 3}) == []


def test_a_problem_names_the_path_from_the_event_and_the_schemas_message() -> None:
    """The path starts at the event (`data`), array positions in brackets, as the producer's
    other field errors are named."""
    catalog = EventCatalog([cataloged("field.change", FIELD_CHANGE)])
    data = {"fields": [{"value": {"current": "ok"}}, {"value": {"current": 23}}]}
    assert fields_of(catalog.problems("field.change", data)) == [
        ("data.fields[1].value.current", "23 is not of type 'string', 'null'")
    ]
    [problem] = catalog.problems("field.change", data)
    assert problem.field((3,)) == "[3].data.fields[1].value.current"
    assert str(problem) == "data.fields[1].value.current: 23 is not of type 'string', 'null'"


def test_a_missing_field_is_named_at_its_object() -> None:
    catalog = EventCatalog([cataloged()])
    assert fields_of(catalog.problems("a.counted", {})) == [("data", "'n' is a required property")]


def test_every_problem_is_listed_up_to_a_bound() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    catalog = EventCatalog([cataloged(schema=schema)])
    assert len(catalog.problems("a.counted", {"a": "x", "b": 1, "c": 2})) == 2
    many = {f"k{n}": n for n in range(50)}
    assert len(catalog.problems("a.counted", many)) == MAX_PROBLEMS


def test_a_long_message_is_cut() -> None:
    """A message quotes the failing value: a large one does not make a large answer."""
    catalog = EventCatalog([cataloged()])
    [problem] = catalog.problems("a.counted", {"n": "x" * 10_000})
    assert len(problem.message) == MAX_MESSAGE_CHARS
    assert problem.message.endswith("…")


def test_an_uncataloged_type_is_accepted_by_default_and_refused_on_request() -> None:
    accepting = EventCatalog([cataloged()])
    refusing = EventCatalog([cataloged()], uncataloged="refuse")
    assert accepting.problems("other.type", {"anything": True}) == []
    assert not accepting.refuses_type("other.type")
    assert fields_of(refusing.problems("other.type", {})) == [
        ("type", "'other.type' is not in the event catalog")
    ]
    assert refusing.refuses_type("other.type")
    assert not refusing.refuses_type("a.counted")
    assert refusing.problems("a.counted", {"n": 1}) == []


def test_a_catalog_checks_anything_only_with_types_or_when_it_refuses() -> None:
    assert not EventCatalog().checks
    assert EventCatalog(uncataloged="refuse").checks
    assert EventCatalog([cataloged()]).checks


def test_types_are_listed_by_name_and_shown_with_their_schema() -> None:
    catalog = EventCatalog([cataloged("b.two"), cataloged("a.one")])
    assert [entry.type for entry in catalog] == ["a.one", "b.two"]
    assert "a.one" in catalog
    assert "c.three" not in catalog
    assert len(catalog) == 2
    entry = catalog.get("a.one")
    assert entry is not None
    shown = entry.view().model_dump(mode="json", by_alias=True)
    assert shown == {
        "type": "a.one",
        "product": "acme",
        "description": "d",
        "schema": COUNTED,
        "examples": [{"n": 1}],
    }


def test_the_digest_names_the_rules_and_only_them() -> None:
    """Equal schemas and policy, equal digest (descriptions aside); any change of a rule, another
    digest: a sender trusts an event's mark only for the very rules it holds."""
    base = EventCatalog([cataloged()])
    assert base.digest == EventCatalog([cataloged()]).digest
    described = CatalogedType(type="a.counted", product="other", description="x", schema=COUNTED)
    assert EventCatalog([described]).digest == base.digest
    assert EventCatalog([cataloged()], uncataloged="refuse").digest != base.digest
    loose = {**COUNTED, "required": []}
    assert EventCatalog([cataloged(schema=loose)]).digest != base.digest
    assert EventCatalog([cataloged("a.renamed")]).digest != base.digest
    assert base.digest.startswith("sha256:")


def test_a_refusal_says_every_field() -> None:
    refused = EventRefused([("[1].data.n", "'x' is not of type 'integer'"), ("[2].type", "no")])
    assert refused.problems[0] == ("[1].data.n", "'x' is not of type 'integer'")
    assert str(refused) == (
        "refused by the event catalog: [1].data.n: 'x' is not of type 'integer'; [2].type: no"
    )
    assert isinstance(refused, ValueError)


@pytest.mark.parametrize("key", ["event", "user", "timestamp", "project", "fields"])
def test_projectrak_like_nesting_is_named_through_the_wrapper(key: str) -> None:
    """The example of a `{"data": {...}}` body: a key missing inside is named at `data.data`."""
    schema = {
        "type": "object",
        "properties": {"data": {"type": "object", "required": [key]}},
    }
    catalog = EventCatalog([cataloged(schema=schema)])
    inner = {k: v for k, v in PROJECTRAK_UPDATED["data"].items() if k != key}
    assert fields_of(catalog.problems("a.counted", {"data": inner})) == [
        ("data.data", f"{key!r} is a required property")
    ]
