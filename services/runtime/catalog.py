"""The event catalog at run time: which event types are known, and what is wrong with an event's
`data` for its type's JSON Schema. Loaded once at start (`catalog_files.load_catalog`), then read
only, by the producer (400s), the senders (quarantine of AMQP events) and the router
(`GET /event-types`, webhook creation, replay)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from schemas.catalog import EventTypeView, UncatalogedEvents
from services.runtime.http_errors import field_path

# Problems reported for one event: enough to fix it, bounded whatever the data holds.
MAX_PROBLEMS = 10
# A schema's message quotes the failing value, which may be large.
MAX_MESSAGE_CHARS = 300

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """What is wrong with an event for the catalog: where, relative to the event (`data`, …)."""

    loc: Loc
    message: str

    def field(self, prefix: Sequence[int | str] = ()) -> str:
        """`data.fields[0].value.current`, or `[3].data…` with a batch position as prefix."""
        return field_path((*prefix, *self.loc))

    def __str__(self) -> str:
        return f"{self.field()}: {self.message}"


class EventRefused(ValueError):
    """The catalog refuses events: each problem as (field, message), the field of a batch's
    second event being `[1].data.userId`."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"{where}: {message}" for where, message in self.problems[:MAX_PROBLEMS])
        super().__init__(f"refused by the event catalog: {shown}")


@dataclass(frozen=True)
class CatalogedType:
    """One known event type, its schema compiled."""

    type: str
    product: str
    description: str
    schema: Mapping[str, Any]
    examples: tuple[Mapping[str, Any], ...] = ()
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "validator", Draft202012Validator(self.schema))

    def problems(self, data: Mapping[str, Any]) -> list[CatalogProblem]:
        """Each place `data` fails the schema (at most MAX_PROBLEMS), as a path from the event."""
        found = []
        for error in self.validator.iter_errors(data):
            found.append(_problem(error))
            if len(found) == MAX_PROBLEMS:
                break
        return found

    def view(self) -> EventTypeView:
        return EventTypeView(
            type=self.type,
            product=self.product,
            description=self.description,
            schema=dict(self.schema),
            examples=[dict(example) for example in self.examples],
        )


def _problem(error: ValidationError) -> CatalogProblem:
    # Of `anyOf`, `oneOf` and the like, the branch that came closest says more than "not valid
    # under any of the given schemas".
    best = best_match([error]) or error
    message = best.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return CatalogProblem(("data", *best.absolute_path), message)


class EventCatalog:
    """The known event types, and what becomes of an event of another type."""

    def __init__(
        self, types: Iterable[CatalogedType] = (), *, uncataloged: UncatalogedEvents = "accept"
    ) -> None:
        self._types = {cataloged.type: cataloged for cataloged in types}
        self.uncataloged: UncatalogedEvents = uncataloged

    def __len__(self) -> int:
        return len(self._types)

    def __iter__(self) -> Iterator[CatalogedType]:
        """Every type, in order of its name."""
        return iter(sorted(self._types.values(), key=lambda cataloged: cataloged.type))

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._types

    def get(self, event_type: str) -> CatalogedType | None:
        return self._types.get(event_type)

    @property
    def checks(self) -> bool:
        """Whether this catalog can refuse any event at all."""
        return bool(self._types) or self.uncataloged == "refuse"

    def refuses_type(self, event_type: str) -> bool:
        """Whether an event of this type is refused for its type alone."""
        return self.uncataloged == "refuse" and event_type not in self._types

    def problems(self, event_type: str, data: Mapping[str, Any]) -> list[CatalogProblem]:
        """What is wrong with an event of `event_type` carrying `data`; empty when it passes."""
        cataloged = self._types.get(event_type)
        if cataloged is not None:
            return cataloged.problems(data)
        if self.uncataloged == "refuse":
            return [CatalogProblem(("type",), f"{event_type!r} is not in the event catalog")]
        return []

    @cached_property
    def digest(self) -> str:
        """Names exactly the rules `problems` applies (the schemas and the uncataloged policy, not
        the descriptions): a publisher that checked an event marks it with this, so a consumer
        holding the same rules need not check it again."""
        rules = {
            "uncataloged": self.uncataloged,
            "types": {name: cataloged.schema for name, cataloged in self._types.items()},
        }
        canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
