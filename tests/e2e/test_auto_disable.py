"""Auto-disable with real endpoints: one that always fails is disabled after the (compressed)
time and count, with its reason, and its owners are mailed; one that fails every other attempt
is never disabled, which is the control that the first check can fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import RUN_PREFIX
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, Stack, running_stack
from tests.support.receiver import Receiver
from tests.support.smtp import SmtpSink
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
PREFIX = f"{RUN_PREFIX}-autodisable"
DISABLE_AFTER_S, DISABLE_AFTER_FAILURES = 3.0, 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def stack(
    amqp_url: str, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink
) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        PREFIX,
        tmp_path_factory.mktemp("autodisable-logs"),
        (("router", "router"), ("producer", "producer"), ("sender", "sender-1")),
        retry_schedule="0.5,0.5,0.5",
        attempt_timeout_s="2",
        circuit_failures="1000",  # every failure is an attempt here, none is parked
        disable_after_s=f"{DISABLE_AFTER_S:g}",
        disable_after_failures=str(DISABLE_AFTER_FAILURES),
        smtp_url=smtp.url,
        mail_gather_s="0.2",
        mail_digest_s="1",
    ) as stack:
        yield stack


async def test_always_failing_is_disabled_and_sometimes_failing_is_not(
    stack: Stack, receiver: Receiver, smtp: SmtpSink
) -> None:
    """An endpoint answering 503 to everything is disabled with its reason once it has failed
    for the time and the count, and mailed about; one answering 503 and 200 in turn never is."""
    receiver.always["/down"] = 503
    receiver.script("/flaky", *([503, 200] * 50))
    router = stack.url_of("router")
    async with aiohttp.ClientSession() as http:

        async def create(path: str) -> str:
            async with http.post(
                f"{router}/webhooks",
                json={
                    "event": "health.tick",
                    "uri": f"{receiver.url}{path}",
                    "mail_exceptions_to": "ops@example.com",
                },
                headers=ADMIN,
            ) as response:
                assert response.status == 201
                webhook_id: str = (await response.json())["id"]
                return webhook_id

        down, flaky = await create("/down"), await create("/flaky")

        async def shown(webhook_id: str) -> dict[str, Any]:
            async with http.get(f"{router}/webhooks/{webhook_id}", headers=ADMIN) as response:
                body: dict[str, Any] = await response.json()
                return body

        async def publish_until_disabled() -> None:
            n = 0
            while not (await shown(down))["disabled"]:
                n += 1
                async with http.post(
                    f"{stack.url_of('producer')}/events",
                    json={"type": "health.tick", "id": f"evt_{n}", "data": {"n": n}},
                    headers=INGEST,
                ) as response:
                    assert response.status == 202
                await asyncio.sleep(0.25)

        await asyncio.wait_for(publish_until_disabled(), timeout=60)
        body = await shown(down)
        assert body["disabled_reason"].startswith("failed continuously since")
        assert body["consecutive_failures"] >= DISABLE_AFTER_FAILURES
        # The control: by now the flaky endpoint has failed as often, and is still enabled.
        flaky_calls = receiver.to("/flaky")
        assert sum(1 for r in flaky_calls if r.status == 503) >= DISABLE_AFTER_FAILURES
        flaky_body = await shown(flaky)
        assert flaky_body["disabled"] is False
        assert flaky_body["consecutive_failures"] < DISABLE_AFTER_FAILURES
        # Its owners hear of it (in a digest that may also list its dead letters).
        await eventually(lambda: any("disabled" in m.subject for m in smtp.mails), timeout_s=20)
        [mail] = [m for m in smtp.mails if "disabled" in m.subject]
        assert down in mail.text
        assert "Hookline disabled it: failed continuously since" in mail.text
