"""Events as upstream systems send them, and as Hookline stamps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import MAX_DATA_DEPTH, Event, EventIn, content_event_id, json_depth

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def error_fields(error: ValidationError) -> set[str]:
    return {str(problem["loc"][0]) for problem in error.errors()}


@pytest.mark.parametrize(
    "event_type",
    ["problem.update", "recordApproval", "request.team-changed", "a_b.c-d.e9", "x" * 255],
)
def test_valid_event_types_are_accepted(event_type: str) -> None:
    """Dotted, plain and hyphenated event types up to 255 characters are accepted."""
    assert EventIn(type=event_type, data={}).type == event_type


@pytest.mark.parametrize(
    "event_type",
    [
        "",
        "problem.*",
        "#",
        "problem.#",
        "problem update",
        "x" * 256,
        ".problem",
        "problem.",
        "a..b",
    ],
)
def test_invalid_event_types_are_rejected(event_type: str) -> None:
    """Empty types, wildcards, spaces, over 255 characters and stray dots are rejected."""
    with pytest.raises(ValidationError) as caught:
        EventIn(type=event_type, data={})
    assert error_fields(caught.value) == {"type"}


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None])
def test_data_must_be_an_object(data: Any) -> None:
    """`data` is a JSON object; a list, string, number or null is rejected."""
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"type": "problem.update", "data": data})
    assert error_fields(caught.value) == {"data"}


def test_data_is_required() -> None:
    """An event without `data` is rejected."""
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"type": "problem.update"})
    assert error_fields(caught.value) == {"data"}


def test_extra_fields_are_forbidden() -> None:
    """A field the contract does not know is an error, not silently dropped."""
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"type": "a", "data": {}, "payload": {}})
    assert error_fields(caught.value) == {"payload"}


def test_naive_time_is_rejected() -> None:
    """A `time` without a zone is rejected: it would be ambiguous."""
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"type": "a", "data": {}, "time": "2024-05-01T12:00:00"})
    assert error_fields(caught.value) == {"time"}


def test_time_with_a_zone_is_accepted() -> None:
    """An RFC 3339 time with an offset is read with that offset."""
    event = EventIn.model_validate({"type": "a", "data": {}, "time": "2024-05-01T14:00:00+02:00"})
    assert event.time == AT


@pytest.mark.parametrize("object_id", [42, "CR-42"])
def test_object_id_is_an_int_or_a_string(object_id: int | str) -> None:
    """`object_id` keeps an integer as an integer and a string as a string."""
    event = EventIn.model_validate({"type": "a", "data": {}, "object_id": object_id})
    assert event.object_id == object_id
    assert type(event.object_id) is type(object_id)


@pytest.mark.parametrize("object_id", [1.5, True, "", [1]])
def test_object_id_rejects_other_types(object_id: Any) -> None:
    """A float, a boolean, an empty string or a list is not an object id."""
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate({"type": "a", "data": {}, "object_id": object_id})
    assert error_fields(caught.value) == {"object_id"}


@pytest.mark.parametrize("event_id", ["", "has space", "x" * 129])
def test_bad_event_ids_are_rejected(event_id: str) -> None:
    """An event id is 1 to 128 visible ASCII characters."""
    with pytest.raises(ValidationError) as caught:
        EventIn(type="a", data={}, id=event_id)
    assert error_fields(caught.value) == {"id"}


def test_stamped_keeps_the_given_id_and_time() -> None:
    """Stamping keeps an id and a time the event already had."""
    event = EventIn(type="a", data={"k": 1}, id="evt_given", time=AT)
    stamped = event.stamped(id_="evt_other", now=AT + timedelta(hours=1))
    assert stamped.id == "evt_given"
    assert stamped.time == AT
    assert stamped.data == {"k": 1}


def test_stamped_fills_a_missing_id_and_time_from_its_arguments() -> None:
    """Stamping an event without id or time uses the id and time it is given."""
    stamped = EventIn(type="a", data={}).stamped(id_="evt_given", now=AT)
    assert isinstance(stamped, Event)
    assert (stamped.id, stamped.time) == ("evt_given", AT)


def test_stamped_makes_up_an_id_and_the_current_time_when_none_is_given() -> None:
    """Without arguments, stamping gives a fresh `evt_` id and the current, zoned time."""
    before = datetime.now(UTC)
    first = EventIn(type="a", data={}).stamped()
    second = EventIn(type="a", data={}).stamped()
    assert first.id.startswith("evt_")
    assert first.id != second.id
    assert first.time.tzinfo is not None
    assert before <= first.time <= datetime.now(UTC)


def test_stamped_keeps_every_other_field() -> None:
    """Stamping carries source, object_id and account over unchanged."""
    event = EventIn(
        type="a", data={}, source="itsm", object_id=7, account="acme", time=AT, id="evt_x"
    )
    stamped = event.stamped()
    assert (stamped.source, stamped.object_id, stamped.account) == ("itsm", 7, "acme")


def test_a_stamped_event_requires_an_id_and_a_time() -> None:
    """The stored form of an event cannot lack its id or its time."""
    with pytest.raises(ValidationError) as caught:
        Event.model_validate({"type": "a", "data": {}})
    assert error_fields(caught.value) == {"id", "time"}


def test_time_keeps_its_offset() -> None:
    """A time given with an offset is kept as the same instant."""
    plus_two = timezone(timedelta(hours=2))
    event = EventIn(type="a", data={}, time=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    assert event.stamped().time == AT


def test_content_event_id_is_stable() -> None:
    """The same routing key and body always give the same id."""
    first = content_event_id("problem.update", b'{"type":"problem.update","data":{}}')
    again = content_event_id("problem.update", b'{"type":"problem.update","data":{}}')
    assert first == again
    assert first.startswith("evt_")


def test_content_event_id_differs_for_another_body_or_routing_key() -> None:
    """A different body or a different routing key gives a different id."""
    base = content_event_id("a.b", b"{}")
    assert content_event_id("a.b", b"{ }") != base
    assert content_event_id("a.c", b"{}") != base
    # the separator keeps key and body apart: ("a", "b{}") is not ("ab", "{}")
    assert content_event_id("a", b"b{}") != content_event_id("ab", b"{}")


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": … {}}}`, `depth` objects deep."""
    data: dict[str, Any] = {}
    for _ in range(depth - 1):
        data = {"a": data}
    return data


def test_json_depth_counts_objects_and_arrays() -> None:
    """A scalar is 0 deep, `{}` 1, `{"a": [1]}` 2."""
    assert json_depth(5) == 0
    assert json_depth({}) == 1
    assert json_depth({"a": [1]}) == 2
    assert json_depth(nested(64)) == 64


def test_data_may_nest_64_levels_and_no_more() -> None:
    """A payload nested past every parser's comfort is refused at the door, naming `data`."""
    EventIn(type="a", data=nested(MAX_DATA_DEPTH))
    with pytest.raises(ValidationError) as caught:
        EventIn(type="a", data=nested(MAX_DATA_DEPTH + 1))
    assert [error["loc"] for error in caught.value.errors()] == [("data",)]


@pytest.mark.parametrize("time", [0, 1_700_000_000, 1.5, True])
def test_a_time_given_as_a_number_is_refused(time: object) -> None:
    """pydantic would read a number as Unix seconds; the API says RFC 3339."""
    with pytest.raises(ValidationError, match="RFC 3339"):
        EventIn.model_validate({"type": "a.b", "data": {}, "time": time})


@pytest.mark.parametrize("object_id", [2**63, -(2**63) - 1])
def test_a_numeric_object_id_fits_in_64_bits(object_id: int) -> None:
    with pytest.raises(ValidationError):
        EventIn.model_validate({"type": "a.b", "data": {}, "object_id": object_id})
    assert EventIn.model_validate({"type": "a.b", "data": {}, "object_id": 2**63 - 1}).object_id
