"""Reading an event from an AMQP message: off the route queue, or out of the events stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import Event, content_event_id
from schemas.topology import CATALOG_HEADER, ROUTING_KEY_HEADER
from services.runtime.catalog import EventCatalog
from services.runtime.catalog_files import load_catalog
from services.runtime.event_messages import UnreadableEvent, read_event
from tests.support.catalog import EXAMPLE_CATALOG, RECORD_APPROVAL

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeMessage:
    """The attributes of an incoming AMQP message that read_event looks at."""

    body: bytes
    routing_key: str | None = "problem.update"
    message_id: str | None = None
    timestamp: datetime | None = None
    headers: dict[str, Any] | None = None


def message(
    payload: Any = None,
    *,
    body: bytes | None = None,
    routing_key: str | None = "problem.update",
    message_id: str | None = None,
    timestamp: datetime | None = AT,
    headers: dict[str, Any] | None = None,
) -> AbstractIncomingMessage:
    if body is None:
        if payload is None:
            payload = {"type": "problem.update", "data": {"subject": "printer on fire"}}
        body = json.dumps(payload).encode()
    fake = FakeMessage(body, routing_key, message_id, timestamp, headers)
    return cast(AbstractIncomingMessage, fake)


def test_a_valid_message_gives_a_stamped_event() -> None:
    """A JSON event whose type is the routing key is read and stamped with the message time."""
    event = read_event(message(message_id="amqp-1"))
    assert isinstance(event, Event)
    assert (event.type, event.data, event.id, event.time) == (
        "problem.update",
        {"subject": "printer on fire"},
        "amqp-1",
        AT,
    )


def test_a_republished_message_is_read_with_its_original_routing_key() -> None:
    """After a republish straight to the queue, the routing key kept in a header is the one
    checked against the type, and hashed for the id."""
    body = json.dumps({"type": "problem.update", "data": {}}).encode()
    republished = message(
        body=body, routing_key="hl.route", headers={ROUTING_KEY_HEADER: "problem.update"}
    )
    event = read_event(republished)
    assert event.id == content_event_id("problem.update", body)


def test_the_id_in_the_body_wins_over_the_message_id() -> None:
    """An event's own id is kept even when the message carries another one."""
    payload = {"type": "problem.update", "data": {}, "id": "evt_body"}
    assert read_event(message(payload, message_id="amqp-1")).id == "evt_body"


def test_without_any_id_the_content_hash_is_the_id() -> None:
    """An event without an id gets a content hash, the same on every redelivery."""
    body = b'{"type": "problem.update", "data": {"k": 1}}'
    first = read_event(message(body=body))
    again = read_event(message(body=body, timestamp=None))
    assert first.id == again.id == content_event_id("problem.update", body)


def test_byte_identical_messages_are_one_event_only_without_a_message_id() -> None:
    """Two copies of one body with neither id are one event; with two message_ids (aio-pika sets a
    random one on every publish that has none) they are two; with one message_id, one."""
    body = b'{"type": "problem.update", "data": {"k": 1}}'
    assert read_event(message(body=body)).id == read_event(message(body=body)).id
    assert read_event(message(body=body, message_id="a1")).id == "a1"
    assert read_event(message(body=body, message_id="b2")).id == "b2"


@pytest.mark.parametrize("message_id", ["not an id", "x" * 129, "caf\u00e9"])
def test_a_message_id_that_is_no_event_id_is_unreadable(message_id: str) -> None:
    """An AMQP message_id that cannot be an event id makes the event unreadable, not a crash."""
    with pytest.raises(UnreadableEvent, match="id"):
        read_event(message(message_id=message_id))


def test_the_time_in_the_body_wins_over_the_message_timestamp() -> None:
    """An event's own time is kept; the message timestamp only fills a missing one."""
    payload = {"type": "problem.update", "data": {}, "time": "2020-01-01T00:00:00Z"}
    assert read_event(message(payload)).time == datetime(2020, 1, 1, tzinfo=UTC)


def test_a_naive_message_timestamp_is_read_as_utc() -> None:
    """AMQP timestamps come without a zone: they are taken as UTC."""
    event = read_event(message(timestamp=datetime(2024, 5, 1, 12, 0)))
    assert event.time == AT


def test_without_a_timestamp_the_time_is_now() -> None:
    """A message without a timestamp is stamped with the time it is read."""
    before = datetime.now(UTC)
    event = read_event(message(timestamp=None))
    assert before <= event.time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'"problem.update"', "body is not a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_unreadable(body: bytes, reason: str) -> None:
    """Non-JSON bodies and JSON that is not an object are unreadable, saying so."""
    with pytest.raises(UnreadableEvent, match=reason):
        read_event(message(body=body))


def test_an_invalid_field_is_unreadable_and_named() -> None:
    """A field that breaks the contract makes the event unreadable, with the field named."""
    payload = {"type": "problem.update", "data": [1]}
    with pytest.raises(UnreadableEvent, match=r"^data: "):
        read_event(message(payload))


def test_a_missing_field_is_named() -> None:
    """A missing required field is named in the reason."""
    with pytest.raises(UnreadableEvent, match=r"^data: Field required$"):
        read_event(message({"type": "problem.update"}))


@pytest.mark.parametrize("routing_key", ["problem.create", "", None])
def test_a_routing_key_other_than_the_type_is_unreadable(routing_key: str | None) -> None:
    """The routing key must be the event type, or subscribers would get the wrong events."""
    with pytest.raises(UnreadableEvent, match=r"is not the event type 'problem\.update'"):
        read_event(message(routing_key=routing_key))


# Property: whatever a message holds, read_event gives an event or says why it cannot (the
# message is parked with that reason); it never fails otherwise, which would be a crash loop.
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_ANY = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
EVENT_LIKE = st.fixed_dictionaries(
    {"type": st.sampled_from(["problem.update", "a..b", "", "x" * 300]) | st.text(max_size=10)},
    optional={
        "id": JSON_LEAVES,
        "data": JSON_ANY,
        "time": st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01", "yesterday"]) | JSON_LEAVES,
        "object_id": JSON_LEAVES,
        "source": JSON_LEAVES,
    },
)


@given(
    st.one_of(
        st.binary(max_size=200),
        JSON_ANY.map(lambda value: json.dumps(value).encode()),
        EVENT_LIKE.map(lambda value: json.dumps(value).encode()),
    ),
    st.sampled_from(["problem.update", "other.type", None]),
    st.sampled_from([None, "evt_1", "not an id!", ""]),
)
def test_any_message_is_an_event_or_unreadable(
    body: bytes, routing_key: str | None, message_id: str | None
) -> None:
    read: Event | UnreadableEvent
    try:
        read = read_event(message(body=body, routing_key=routing_key, message_id=message_id))
    except UnreadableEvent as error:
        read = error
    if isinstance(read, UnreadableEvent):
        assert str(read), "a parked message says why"
    else:
        assert read.type == routing_key
        assert isinstance(read.data, dict)


def approval(data: dict[str, Any], **headers: Any) -> AbstractIncomingMessage:
    payload = {"type": "recordApproval", "data": data}
    return message(payload, routing_key="recordApproval", headers=headers or None)


@pytest.fixture(scope="module")
def catalog() -> EventCatalog:
    return EventCatalog(load_catalog(EXAMPLE_CATALOG))


def test_a_cataloged_event_whose_data_passes_is_read(catalog: EventCatalog) -> None:
    assert read_event(approval(RECORD_APPROVAL), catalog).data == RECORD_APPROVAL


def test_a_cataloged_event_whose_data_fails_is_unreadable_naming_each_place(
    catalog: EventCatalog,
) -> None:
    wrong = {**RECORD_APPROVAL, "isControlled": "yes"}
    del wrong["userId"]
    with pytest.raises(UnreadableEvent) as raised:
        read_event(approval(wrong), catalog)
    assert str(raised.value) == (
        "data does not match the catalog's schema of 'recordApproval': "
        "data.isControlled: 'yes' is not of type 'boolean'; data: 'userId' is a required property"
    )
    read_event(approval(wrong))  # without a catalog, nothing is checked


def test_an_uncataloged_type_is_read_or_refused_as_set(catalog: EventCatalog) -> None:
    uncataloged = message({"type": "order.paid", "data": {}}, routing_key="order.paid")
    assert read_event(uncataloged, catalog).type == "order.paid"
    refusing = EventCatalog(catalog, uncataloged="refuse")
    with pytest.raises(UnreadableEvent) as raised:
        read_event(uncataloged, refusing)
    assert str(raised.value) == "type: 'order.paid' is not in the event catalog"


def test_an_event_its_publisher_checked_against_the_same_rules_is_not_checked_again(
    catalog: EventCatalog,
) -> None:
    """The producer marks what it checked with the catalog's digest: the same digest is trusted,
    as text or bytes; any other mark is checked again."""
    wrong = {**RECORD_APPROVAL, "isControlled": "yes"}
    assert read_event(approval(wrong, **{CATALOG_HEADER: catalog.digest}), catalog)
    assert read_event(approval(wrong, **{CATALOG_HEADER: catalog.digest.encode()}), catalog)
    refusing = EventCatalog(catalog, uncataloged="refuse")
    for other in ("sha256:0000", refusing.digest, None, 1):
        with pytest.raises(UnreadableEvent, match="isControlled"):
            read_event(approval(wrong, **{CATALOG_HEADER: other}), catalog)
