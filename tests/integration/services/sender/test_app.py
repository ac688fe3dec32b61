"""The sender in-process on the real broker, delivering to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from schemas.deliveries import DeliveryAttempted, DeliveryTask, RecordId, delivery_id_for
from schemas.events import Event
from schemas.topology import DELIVER_KEY, REASON_HEADER, REPEAT_HEADER
from schemas.webhooks import (
    WebhookDeleted,
    WebhookSecretRotated,
    new_secret,
)
from tests.integration.services.sender.conftest import SenderFactory, Upstream
from tests.support.broker import message_count, take_all
from tests.support.hostile import HostileReceiver
from tests.support.metrics import metric_value
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def hostile() -> AsyncIterator[HostileReceiver]:
    server = HostileReceiver(sleep_s=5, trickle_interval_s=0.2)
    await server.start()
    yield server
    await server.stop()


async def test_a_delivery_arrives_signed_as_standard_webhooks_says(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """The POST carries the payload and headers a subscriber verifies with `standardwebhooks`."""
    webhook = await upstream.webhook(f"{receiver.url}/hook")
    task = await upstream.deliver(webhook, data={"a": [1, None], "b": {"c": "d"}})
    [request] = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == task.delivery_id
    verified = Webhook(webhook.secret).verify(request.body, request.headers)
    assert verified == {
        "id": task.event.id,
        "type": "a.b",
        "timestamp": task.event.time.isoformat().replace("+00:00", "Z"),
        "webhook_id": webhook.id,
        "object_id": task.event.object_id,
        "data": {"a": [1, None], "b": {"c": "d"}},
    }
    [record] = await upstream.outcomes(1)
    assert (record.outcome, record.status_code, record.attempt) == ("delivered", 200, 1)
    metrics = await (await sender.get("/metrics")).text()
    assert 'hookline_deliveries_total{outcome="delivered"} 1.0' in metrics
    assert 'hookline_delivery_attempts_total{status_class="2xx"} 1.0' in metrics


async def test_after_a_rotation_a_delivery_verifies_with_the_old_and_the_new_secret(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A subscriber that has not switched to the new secret yet still verifies what arrives."""
    webhook = await upstream.webhook(f"{receiver.url}/rotated")
    new = new_secret()
    await upstream.log.append(
        WebhookSecretRotated(
            at=datetime.now(UTC),
            webhook_id=webhook.id,
            secret=new,
            previous_until=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    await upstream.deliver(webhook)
    [request] = await receiver.wait_for(1, path="/rotated")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (webhook.secret, new):
        assert Webhook(secret).verify(request.body, request.headers)["webhook_id"] == webhook.id


async def test_failures_are_retried_on_the_schedule_with_the_same_id(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """500, 500, 200: three attempts, the schedule's delay apart, one webhook-id throughout."""
    receiver.script("/flaky", 500, 500, 200)
    webhook = await upstream.webhook(f"{receiver.url}/flaky")
    task = await upstream.deliver(webhook)
    requests = await receiver.wait_for(3, path="/flaky")
    assert {r.headers["webhook-id"] for r in requests} == {task.delivery_id}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= 0.25 for gap in gaps), gaps
    for request in requests:
        Webhook(webhook.secret).verify(request.body, request.headers)
    records = await upstream.outcomes(3)
    assert [(r.attempt, r.outcome, r.error) for r in records] == [
        (1, "retry_scheduled", "500 Internal Server Error"),
        (2, "retry_scheduled", "500 Internal Server Error"),
        (3, "delivered", None),
    ]
    await asyncio.sleep(0.5)
    assert len(receiver.to("/flaky")) == 3


async def test_a_delivery_out_of_attempts_is_dead_lettered_with_its_reason(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """After the last scheduled attempt fails, the delivery waits in the dead-letter queue."""
    receiver.always["/gone"] = 404
    webhook = await upstream.webhook(f"{receiver.url}/gone")
    task = await upstream.deliver(webhook)
    await receiver.wait_for(3, path="/gone")
    [dead] = await take_all(amqp_url, upstream.settings.topology.dead_queue, expect=1)
    assert DeliveryTask.model_validate_json(dead.body).delivery_id == task.delivery_id
    assert dead.headers[REASON_HEADER] == "404 Not Found"
    assert dead.headers["x-hookline-attempts"] == 3
    records = await upstream.outcomes(3)
    assert records[-1].outcome == "dead_lettered"
    await asyncio.sleep(0.5)
    assert len(receiver.to("/gone")) == 3
    for queue in (
        upstream.settings.topology.deliver_queue,
        *upstream.settings.topology.retry_queues,
    ):
        assert await message_count(amqp_url, queue) == 0
    metrics = await (await sender.get("/metrics")).text()
    assert "hookline_dead_letters_total 1.0" in metrics
    assert 'hookline_delivery_retries_total{tier="300ms"} 2.0' in metrics


async def test_attempt_lines_are_logged_at_the_level_of_their_outcome(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A delivered attempt is an info line, a failed one that is retried a warning, and the
    dead letter after the last one an error, each with the attempt's fields."""
    receiver.always["/down"] = 503
    failing = await upstream.webhook(f"{receiver.url}/down")
    working = await upstream.webhook(f"{receiver.url}/up")
    with structlog.testing.capture_logs() as lines:
        await upstream.deliver(working)
        await upstream.deliver(failing)

        def attempts() -> list[MutableMapping[str, Any]]:
            return [line for line in lines if line["event"] == "delivery.attempted"]

        await eventually(lambda: len(attempts()) == 4)
    levels = {
        (line["webhook_id"], line["attempt"]): (line["log_level"], line["outcome"])
        for line in attempts()
    }
    assert levels == {
        (working.id, 1): ("info", "delivered"),
        (failing.id, 1): ("warning", "retry_scheduled"),
        (failing.id, 2): ("warning", "retry_scheduled"),
        (failing.id, 3): ("error", "dead_lettered"),
    }
    [dead] = [line for line in attempts() if line["outcome"] == "dead_lettered"]
    assert (dead["status_code"], dead["error"]) == (503, "503 Service Unavailable")


async def test_an_attempt_has_one_total_deadline(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A receiver slower than the deadline is a timeout, retried like any failure."""
    receiver.delays_s["/slow"] = 3
    webhook = await upstream.webhook(f"{receiver.url}/slow")
    await upstream.deliver(webhook)
    [record] = await upstream.outcomes(1)
    assert record.outcome == "retry_scheduled"
    assert record.error == "timeout after 1s"
    assert record.duration_s is not None
    assert record.duration_s < 2


async def test_deleted_and_disabled_webhooks_get_nothing_but_test_calls(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """Deliveries for a webhook disabled or deleted since routing are cancelled; test calls go."""
    webhook = await upstream.webhook(f"{receiver.url}/off")
    disabled = await upstream.change(webhook, disabled=True)
    await upstream.deliver(disabled)
    test = await upstream.deliver(disabled, test=True)
    doomed = await upstream.webhook(f"{receiver.url}/doomed")
    # routed as if the router had already seen the delete that comes next
    await upstream.deliver(doomed, revision=upstream.log.table.offset + 1)
    await upstream.log.append(WebhookDeleted(at=datetime.now(UTC), webhook_id=doomed.id))

    [request] = await receiver.wait_for(1, path="/off")
    assert request.headers["webhook-id"] == test.delivery_id
    records = {
        record.webhook_id + str(record.test): record for record in await upstream.outcomes(3)
    }
    assert records[webhook.id + "False"].outcome == "cancelled"
    assert records[webhook.id + "False"].error == "webhook disabled"
    assert records[webhook.id + "True"].outcome == "delivered"
    assert records[doomed.id + "False"].outcome == "cancelled"
    assert records[doomed.id + "False"].error == "webhook deleted"
    assert receiver.to("/doomed") == []


async def test_a_failed_test_call_is_reported_not_retried(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A test call is made once: its failure is recorded as `failed`."""
    receiver.always["/t"] = 500
    webhook = await upstream.webhook(f"{receiver.url}/t")
    await upstream.deliver(webhook, test=True)
    [record] = await upstream.outcomes(1)
    assert (record.outcome, record.error) == ("failed", "500 Internal Server Error")
    await asyncio.sleep(0.8)
    assert len(receiver.to("/t")) == 1


async def test_the_sender_waits_for_the_webhook_revision_it_was_routed_with(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A delivery routed on a newer webhook than the sender has read is held until it has it."""
    webhook = await upstream.webhook(f"{receiver.url}/old")
    await upstream.deliver(webhook, revision=upstream.log.table.offset + 1)
    await asyncio.sleep(0.3)
    assert receiver.requests == []
    await upstream.change(webhook, uri=f"{receiver.url}/new")
    [request] = await receiver.wait_for(1)
    assert request.path == "/new"


async def test_private_targets_are_refused_unless_allowed(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """Without HOOKLINE_ALLOWED_TARGETS a loopback target is refused, never called, and
    dead-lettered at once: no retry can help."""
    await start_sender(allowed_targets="")
    webhook = await upstream.webhook(f"{receiver.url}/private")
    await upstream.deliver(webhook)
    [record] = await upstream.outcomes(1)
    assert record.outcome == "dead_lettered"
    assert record.error is not None
    assert record.error.startswith("refused:")
    [dead] = await take_all(amqp_url, upstream.settings.topology.dead_queue, expect=1)
    assert str(dead.headers[REASON_HEADER]).startswith("refused:")
    assert receiver.requests == []


async def test_an_unreadable_delivery_is_parked_with_its_reason(
    sender: TestClient[Any, Any], upstream: Upstream, amqp_url: str
) -> None:
    """A message on the deliver queue that is not a delivery goes to quarantine, once."""
    await upstream.publisher.publish(
        upstream.settings.topology.deliveries_exchange,
        DELIVER_KEY,
        b'{"nope": 1}',
        message_id="m1",
    )
    [parked] = await take_all(amqp_url, upstream.settings.topology.quarantine_queue, expect=1)
    assert json.loads(parked.body) == {"nope": 1}
    assert "not a delivery" in str(parked.headers[REASON_HEADER])
    assert await message_count(amqp_url, upstream.settings.topology.deliver_queue) == 0


async def test_many_senders_share_the_work(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Two senders on one queue deliver every one of 40 deliveries exactly once between them."""
    first, second = await start_sender(), await start_sender()
    webhook = await upstream.webhook(f"{receiver.url}/many")
    tasks = [await upstream.deliver(webhook) for _ in range(40)]
    await receiver.wait_for(40)
    await asyncio.sleep(0.3)
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        t.delivery_id for t in tasks
    )
    for client in (first, second):
        assert (await client.get("/readyz")).status == 200


async def test_410_gone_disables_the_webhook_at_once(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver, amqp_url: str
) -> None:
    """A 410 dead-letters the delivery, disables the webhook with the reason, and later
    deliveries to it are cancelled without a call."""
    receiver.always["/gone"] = 410
    webhook = await upstream.webhook(f"{receiver.url}/gone")
    await upstream.deliver(webhook)
    [record] = await upstream.outcomes(1)
    assert (record.outcome, record.error) == ("dead_lettered", "410 Gone")
    await eventually(lambda: (upstream.log.table.get(webhook.id) or webhook).disabled)
    disabled = upstream.log.table.get(webhook.id)
    assert disabled is not None
    assert disabled.disabled_reason == "the endpoint answered 410 Gone"
    await upstream.deliver(webhook)  # routed before the router saw the disable
    records = await upstream.outcomes(2)
    assert records[1].outcome == "cancelled"
    assert len(receiver.to("/gone")) == 1
    assert len(await take_all(amqp_url, upstream.settings.topology.dead_queue, expect=1)) == 1
    metrics = await (await sender.get("/metrics")).text()
    assert "hookline_webhooks_disabled_total 1.0" in metrics


async def test_retry_after_on_a_429_makes_the_next_attempt_wait(
    start_sender: SenderFactory, upstream: Upstream, hostile: HostileReceiver
) -> None:
    """A 429 with Retry-After 1 s is retried from the 2 s tier, not the 0.3 s one."""
    await start_sender(retry_schedule=(0.3, 2.0))
    hostile.retry_after = "1"
    webhook = await upstream.webhook(f"{hostile.url}/rate-limited")
    await upstream.deliver(webhook)
    first = await upstream.outcomes(1)
    assert (first[0].outcome, first[0].next_attempt_in_s) == ("retry_scheduled", 2.0)
    [one, two] = await hostile.wait_for(2, path="/rate-limited", timeout_s=10)
    assert two.at - one.at >= 1.9


async def test_an_endpoint_at_its_limit_parks_deliveries_without_using_attempts(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """With a limit of one attempt per endpoint, a slow endpoint never gets two calls at once;
    the deliveries waiting for it are parked, and each is delivered on its first attempt."""
    sender = await start_sender(endpoint_concurrency=1, park_delays=(0.2, 0.5))
    receiver.delays_s["/slow"] = 0.3
    webhook = await upstream.webhook(f"{receiver.url}/slow")
    fast = await upstream.webhook(f"{receiver.url}/fast")
    tasks = [await upstream.deliver(webhook) for _ in range(4)]
    await upstream.deliver(fast)
    await receiver.wait_for(4, path="/slow", timeout_s=20)
    arrivals = sorted(r.at for r in receiver.to("/slow"))
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(arrivals))
    assert receiver.to("/fast")[0].at < arrivals[1]  # not queued behind the slow one
    records = await upstream.outcomes(5)
    assert {
        (r.delivery_id, r.attempt, r.outcome) for r in records if r.webhook_id == webhook.id
    } == {(t.delivery_id, 1, "delivered") for t in tasks}
    metrics = await (await sender.get("/metrics")).text()
    parked = metric_value(metrics, 'hookline_deliveries_parked_total{reason="endpoint_busy"}')
    assert parked >= 1


async def test_an_open_circuit_parks_deliveries_until_a_probe_succeeds(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Two failures in a row open the circuit: the other deliveries wait without attempts, one
    probe goes when it half-opens, and after it succeeds the rest are delivered."""
    sender = await start_sender(
        retry_schedule=(0.3, 0.3, 0.3),
        circuit_failures=2,
        circuit_open_s=1.0,
        park_delays=(0.2, 0.5),
        endpoint_concurrency=1,
    )
    receiver.script("/down", 500, 500)
    webhook = await upstream.webhook(f"{receiver.url}/down")
    tasks = [await upstream.deliver(webhook) for _ in range(5)]
    await receiver.wait_for(2, path="/down")
    metrics = await (await sender.get("/metrics")).text()
    assert metric_value(metrics, "hookline_circuits_open") == 1
    await receiver.wait_for(7, path="/down", timeout_s=20)
    records = await upstream.outcomes(7)
    delivered = {r.delivery_id for r in records if r.outcome == "delivered"}
    assert delivered == {t.delivery_id for t in tasks}
    assert max(r.attempt for r in records) == 2  # only the two failed ones were tried again
    first_after = sorted(r.at for r in receiver.to("/down"))[2]
    assert first_after - sorted(r.at for r in receiver.to("/down"))[1] >= 0.9  # open ~1 s


async def test_a_repeated_delivery_is_not_attempted_again(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """A copy of a delivery whose attempt is recorded (its ack was lost, or the router routed
    it twice) is dropped, not sent again."""
    webhook = await upstream.webhook(f"{receiver.url}/once")
    task = await upstream.deliver(webhook)
    await upstream.outcomes(1)
    for headers in ({REPEAT_HEADER: True}, {}):
        await upstream.send(task, headers=headers)

    async def dropped() -> bool:
        metrics = await (await sender.get("/metrics")).text()
        return metric_value(metrics, "hookline_deliveries_repeat_dropped_total") == 2

    await eventually(dropped)
    assert len(receiver.to("/once")) == 1


async def test_a_hostile_status_line_is_recorded_cleanly(
    sender: TestClient[Any, Any], upstream: Upstream, hostile: HostileReceiver
) -> None:
    """A reason phrase that is not UTF-8 is recorded as valid text, without a crash."""
    webhook = await upstream.webhook(f"{hostile.url}/bad-reason")
    await upstream.deliver(webhook)
    [record] = await upstream.outcomes(1)
    assert (record.outcome, record.error) == ("retry_scheduled", "500 Bad \ufffd\ufffd Reason")
    metrics = await (await sender.get("/metrics")).text()
    assert metric_value(metrics, 'hookline_handler_crashes_total{queue="deliver"}') == 0


async def test_a_table_that_does_not_catch_up_gives_the_message_back(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Held past its bound, a delivery goes back to its queue (counted), then is delivered once
    the webhook table has the revision it was routed with."""
    sender = await start_sender(table_wait_s=0.2)
    webhook = await upstream.webhook(f"{receiver.url}/old")
    await upstream.deliver(webhook, revision=upstream.log.table.offset + 1)

    async def returned() -> bool:
        metrics = await (await sender.get("/metrics")).text()
        return (
            metric_value(
                metrics, 'hookline_messages_returned_total{queue="deliver",reason="table_behind"}'
            )
            >= 1
        )

    await eventually(returned)
    await upstream.change(webhook, uri=f"{receiver.url}/new")
    [request] = await receiver.wait_for(1)
    assert request.path == "/new"


async def test_two_copies_of_an_attempt_that_may_repeat_make_one_call(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """Two copies of one attempt that may repeat work (a router's redelivery routed it twice),
    taken by one sender at once, make one call and start one retry chain."""
    receiver.script("/twice", 500)  # the attempt fails: each call would start a retry chain
    receiver.delays_s["/twice"] = 0.3  # the first copy is still in flight when the second looks
    webhook = await upstream.webhook(f"{receiver.url}/twice")
    task = DeliveryTask(
        delivery_id=delivery_id_for("evt_twice", webhook.id),
        webhook_id=webhook.id,
        webhook_revision=webhook.revision,
        event=Event(id="evt_twice", type="a.b", data={}, time=datetime.now(UTC)),
    )
    for _copy in range(2):  # both queued before the sender starts: it takes them at once
        await upstream.send(task, headers={REPEAT_HEADER: "1"})
    sender = await start_sender()
    records = await upstream.outcomes(2)
    assert [(r.attempt, r.outcome) for r in records] == [
        (1, "retry_scheduled"),
        (2, "delivered"),
    ]

    async def metrics() -> str:
        return await (await sender.get("/metrics")).text()

    async def second_copy_dropped() -> bool:
        return "hookline_deliveries_repeat_dropped_total 1.0" in await metrics()

    await eventually(second_copy_dropped)
    assert len(receiver.to("/twice")) == 2  # attempt 1 once, attempt 2 once
    assert "hookline_handler_crashes_total{" not in await metrics()  # no crash counted


async def test_a_repeated_attempt_waits_for_the_next_one_made_meanwhile(
    start_sender: SenderFactory, upstream: Upstream, receiver: Receiver
) -> None:
    """A redelivered attempt 1 whose retry (attempt 2) was published before its record was lost,
    taken at once with that retry by one sender, is dropped once attempt 2 is recorded: one call,
    one chain."""
    receiver.delays_s["/next"] = 0.3  # attempt 2 is still in flight when attempt 1 looks
    webhook = await upstream.webhook(f"{receiver.url}/next")
    first = DeliveryTask(
        delivery_id=delivery_id_for("evt_next", webhook.id),
        webhook_id=webhook.id,
        webhook_revision=webhook.revision,
        event=Event(id="evt_next", type="a.b", data={}, time=datetime.now(UTC)),
    )
    for task, headers in (
        (first.model_copy(update={"attempt": 2}), {}),  # the retry, as a retry tier returns it
        (first, {REPEAT_HEADER: "1"}),  # attempt 1 again (here marked; redelivered in the wild)
    ):
        await upstream.send(task, headers=headers)
    sender = await start_sender()

    async def repeat_dropped() -> bool:
        metrics = await (await sender.get("/metrics")).text()
        return "hookline_deliveries_repeat_dropped_total 1.0" in metrics

    await eventually(repeat_dropped)
    [record] = await upstream.outcomes(1)
    assert (record.attempt, record.outcome) == (2, "delivered")
    assert len(receiver.to("/next")) == 1


async def test_a_recorded_attempt_whose_retry_was_lost_is_retried_not_repeated(
    sender: TestClient[Any, Any], upstream: Upstream, receiver: Receiver
) -> None:
    """The broker went away between an attempt's record and its retry: the repeated message
    does not call again, it produces the retry the record names, due when it was due; the
    retry is made once."""
    webhook = await upstream.webhook(f"{receiver.url}/lost-retry")
    task = DeliveryTask(
        delivery_id=delivery_id_for("evt_lost_retry", webhook.id),
        webhook_id=webhook.id,
        webhook_revision=webhook.revision,
        event=Event(id="evt_lost_retry", type="a.b", data={}, time=datetime.now(UTC)),
    )
    record = DeliveryAttempted(
        delivery_id=task.delivery_id,
        event_id=task.event.id,
        event_type="a.b",
        webhook_id=webhook.id,
        attempt=1,
        at=datetime.now(UTC),
        outcome="retry_scheduled",
        error="500 Internal Server Error",
        next_attempt_in_s=0.3,
    )
    topology = upstream.settings.topology
    await upstream.publisher.publish(
        "",
        topology.delivery_log_stream,
        record.model_dump_json().encode(),
        message_id=str(RecordId.of(record)),
        message_type=record.kind,
    )
    await upstream.send(task, headers={REPEAT_HEADER: "1"})
    [request] = await receiver.wait_for(1, path="/lost-retry", timeout_s=20)
    assert request.headers["webhook-id"] == task.delivery_id
    records = await upstream.outcomes(2)
    assert [(r.attempt, r.outcome) for r in records] == [(1, "retry_scheduled"), (2, "delivered")]
    metrics = await (await sender.get("/metrics")).text()
    assert metric_value(metrics, "hookline_decisions_reproduced_total") == 1
    assert len(receiver.to("/lost-retry")) == 1
