"""Appending a change to the webhooks stream for an API call, and the 503 when the broker did
not take it."""

from __future__ import annotations

import structlog
from aiohttp import web

from schemas.webhooks_stream import StreamChange
from services.router.state import Router
from services.runtime.broker import PublishFailed, PublishOutcomeUnknown
from services.runtime.http_errors import http_error
from services.runtime.webhook_log import LogBehind

log = structlog.get_logger(__name__)


async def commit(router: Router, record: StreamChange, **extra: str) -> bool:
    """Append a change; True once this replica has read it back, False when it is stored (the
    broker confirmed it) but not read back yet. Raises 503 when it may not be stored."""
    try:
        await router.webhook_log.append(record)
    except LogBehind as error:
        log.warning("webhook_log.behind", reason=str(error), **_ids(record))
        return False
    except PublishFailed as error:
        raise unavailable(error, **extra) from None
    return True


def unavailable(error: PublishFailed, **extra: str) -> web.HTTPException:
    """503: say whether the change may have been stored, so a client does not blindly repeat a
    create that did happen (the id lets it look)."""
    log.warning("broker.unavailable", reason=str(error), **extra)
    if isinstance(error, PublishOutcomeUnknown):
        message = "the broker did not confirm in time; the change may have been stored"
    else:
        message = "the broker did not take the change; try again"
    return http_error(web.HTTPServiceUnavailable, message, headers={"Retry-After": "1"}, **extra)


def _ids(record: StreamChange) -> dict[str, str]:
    """The id of what the record changes, named for what it is."""
    webhook_id = getattr(record, "webhook_id", None)
    if webhook_id is not None:
        return {"webhook_id": webhook_id}
    return {"policy_id": getattr(record, "policy_id", "")}
