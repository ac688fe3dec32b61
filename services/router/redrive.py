"""Redriving dead letters: each chosen one is sent again as the next attempt of its delivery, with
a fresh retry schedule and the same `webhook-id`, so a subscriber can de-duplicate. Any other
message of the dead queue stays, published again at its back (see `queue_passes`)."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from schemas.deliveries import DELIVERY_TASK, DeliveryTask
from schemas.topology import DELIVER_KEY, Topology
from services.router.queue_passes import Action, PassProgress, SettleOne
from services.runtime.broker import Publisher

log = structlog.get_logger(__name__)

# Header on a redriven delivery: which redrive sent it.
REDRIVE_HEADER = "x-hookline-redrive"

Chooses = Callable[[DeliveryTask], bool]


def redrive_chosen(publisher: Publisher, topology: Topology, chooses: Chooses) -> SettleOne:
    """Settles each dead letter: the chosen ones into the deliver queue, the rest kept."""

    async def settle(progress: PassProgress, message: AbstractIncomingMessage) -> Action:
        task = _task_of(message)
        if task is None or not chooses(task):
            await publisher.republish(message, topology.dead_queue, headers={})
            return Action.KEPT
        redriven = task.redriven()
        await publisher.publish(
            topology.deliveries_exchange,
            DELIVER_KEY,
            redriven.model_dump_json().encode(),
            message_id=redriven.delivery_id,
            headers={
                "event_id": redriven.event.id,
                "webhook_id": redriven.webhook_id,
                REDRIVE_HEADER: progress.id,
            },
        )
        log.info(
            "delivery.redriven",
            redrive_id=progress.id,
            delivery_id=redriven.delivery_id,
            webhook_id=redriven.webhook_id,
            attempt=redriven.attempt,
        )
        return Action.MOVED

    return settle


def _task_of(message: AbstractIncomingMessage) -> DeliveryTask | None:
    try:
        return DELIVERY_TASK.validate_json(message.body)
    except ValidationError:
        return None
