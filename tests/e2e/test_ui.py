"""The operator page in headless Chromium (Debian's, driven by Playwright), against real services:
sign in, open a failing webhook, see its attempt's status and answer, redrive a dead letter and
see it delivered at a real receiver."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import RUN_PREFIX
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, Stack, running_stack
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PREFIX = f"{RUN_PREFIX}-ui"
SERVICES = (("router", "router"), ("producer", "producer"), ("sender", "sender"))
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Debian's package; `make test` installs it where it can (deploy/ensure_chromium.sh).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What a headless Chromium needs on a machine with a closed network, as root.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        PREFIX,
        tmp_path_factory.mktemp("ui-logs"),
        SERVICES,
        retry_schedule="0.3,0.3",
        attempt_timeout_s="2",
        circuit_failures="2",
        circuit_open_s="0.5",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def chromium() -> str:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: run deploy/ensure_chromium.sh"
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page()
    yield opened
    await opened.close()


async def sign_in(page: Page, stack: Stack, token: str = ADMIN_TOKEN) -> None:
    await page.goto(f"{stack.url_of('router')}/ui/")
    await page.fill("#token", token)
    await page.click("#sign-in-form button[type=submit]")


async def test_a_wrong_token_is_refused(page: Page, stack: Stack) -> None:
    await sign_in(page, stack, token="not-the-token")
    await expect(page.locator("#sign-in-error")).to_have_text("That token was refused.")
    await expect(page.locator("#nav")).to_be_hidden()


async def test_an_operator_sees_a_failure_and_redrives_it_to_a_real_receiver(
    page: Page, stack: Stack, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    receiver.always["/ui-failing"] = 503
    router = stack.url_of("router")
    async with http.post(
        f"{router}/webhooks",
        json={"event": "ui.failing", "uri": f"{receiver.url}/ui-failing", "name": "Failing one"},
        headers=ADMIN,
    ) as response:
        made = await response.json()
    async with http.post(
        f"{stack.url_of('producer')}/events",
        json={"type": "ui.failing", "data": {"n": 1}, "id": "evt_ui_1"},
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
    ) as response:
        assert response.status == 202
    await receiver.wait_for(3, path="/ui-failing", timeout_s=30)

    async def dead_lettered() -> bool:
        async with http.get(f"{router}/dead-letters?webhook_id={made['id']}", headers=ADMIN) as r:
            return len(await r.json()) == 1

    await eventually(dead_lettered, timeout_s=20)

    hostile = '<img src=x onerror="window.pwned=1">'
    async with http.post(
        f"{router}/webhooks",
        json={"event": "ui.other", "uri": f"{receiver.url}/other", "name": hostile},
        headers=ADMIN,
    ) as response:
        assert response.status == 201

    await sign_in(page, stack)
    # What users and subscribers typed is shown as text, never run.
    await expect(page.locator("tr.webhook", has_text=hostile)).to_have_count(1)
    assert await page.evaluate("window.pwned") is None
    failing_row = page.locator("tr.webhook", has_text="Failing one")
    await expect(failing_row).to_contain_text("failing")
    await expect(failing_row).to_contain_text("503 Service Unavailable")
    await expect(failing_row.locator("td.circuit")).to_contain_text("open")  # or half-open
    await failing_row.get_by_role("link", name="Failing one").click()
    await expect(page.locator("dl")).to_contain_text("POST standard")
    delivery = page.locator("tr.delivery").first
    await expect(delivery).to_contain_text("dead_lettered")
    await delivery.locator("button.attempts-toggle").click()
    first_attempt = page.locator("tr.attempt").first
    await expect(first_attempt.locator("td.status")).to_have_text("503")
    await expect(first_attempt).to_contain_text("nope")  # the receiver's answer, as text

    del receiver.always["/ui-failing"]  # the subscriber fixed its endpoint
    await page.get_by_role("link", name="Dead letters").click()
    row = page.locator("tr.delivery", has_text="ui.failing")
    await row.locator("button.redrive").click()
    await expect(page.locator("#redrive-result")).to_contain_text("Redriven: 1")
    [*_, redriven] = await receiver.wait_for(4, path="/ui-failing", timeout_s=20)
    assert redriven.status == 200
    assert redriven.json()["id"] == "evt_ui_1"

    async def circuit_closed() -> bool:
        async with http.get(f"{router}/webhooks/{made['id']}", headers=ADMIN) as r:
            return (await r.json())["circuit_open_until"] is None

    await eventually(circuit_closed, timeout_s=20)  # the success closed it
    await page.get_by_role("link", name="Webhooks").click()
    await expect(
        page.locator("tr.webhook", has_text="Failing one").locator("td.circuit")
    ).to_have_text("closed")
    await expect(page.locator("#rates")).to_contain_text("last minute")
