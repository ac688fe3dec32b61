"""The `hookline` command line against real services, run as an operator runs it: a process, with
its URLs and tokens in the environment, read by its output and exit status."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hookline.cli.client import Exit
from tests.conftest import RUN_PREFIX
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, REPO, Stack, running_stack
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PREFIX = f"{RUN_PREFIX}-cli"
SERVICES = (("router", "router"), ("producer", "producer"), ("sender", "sender"))


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        PREFIX,
        tmp_path_factory.mktemp("logs"),
        SERVICES,
        retry_schedule="0.3,0.3",
        attempt_timeout_s="2",
        catalog_path=str(REPO / "catalog" / "examples"),
    ) as stack:
        yield stack


def environment(stack: Stack, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "HOOKLINE_ROUTER_URL": stack.url_of("router"),
        "HOOKLINE_PRODUCER_URL": stack.url_of("producer"),
        "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOOKLINE_INGEST_TOKEN": INGEST_TOKEN,
        "COLUMNS": "200",
        **more,
    }


async def hookline(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command line to its end (in a thread: the event loop serves the receiver)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hookline", *args],
        capture_output=True,
        text=True,
        env=environment(stack, **env),
        cwd=REPO,
        timeout=60,
    )


async def as_json(stack: Stack, *args: str) -> Any:
    done = await hookline(stack, "--json", *args)
    assert done.returncode == Exit.OK, done.stderr
    return json.loads(done.stdout)


async def test_webhooks_from_create_to_delete(stack: Stack, receiver: Receiver) -> None:
    made = await as_json(
        stack, "webhooks", "create", "--event", "cli.made", "--uri", f"{receiver.url}/made"
    )
    assert made["secret"].startswith("whsec_")
    listed = await as_json(stack, "webhooks", "list")
    assert made["id"] in [w["id"] for w in listed]
    table = await hookline(stack, "webhooks", "list")
    assert table.returncode == Exit.OK
    assert made["id"] in table.stdout

    assert (await as_json(stack, "webhooks", "disable", made["id"]))["disabled"] is True
    assert [w["id"] for w in await as_json(stack, "webhooks", "list", "--disabled")] == [made["id"]]
    assert (await as_json(stack, "webhooks", "enable", made["id"]))["disabled"] is False
    changed = await as_json(stack, "webhooks", "update", made["id"], "--name", "Made")
    assert changed["name"] == "Made"
    rotated = await as_json(stack, "webhooks", "secret", made["id"], "--rotate")
    assert rotated["secret"] != made["secret"]
    assert "previous_secret_expires_at" in rotated
    assert (await hookline(stack, "webhooks", "test", made["id"])).returncode == Exit.OK
    await receiver.wait_for(1, path="/made")
    assert (await hookline(stack, "webhooks", "delete", made["id"])).returncode == Exit.OK
    gone = await hookline(stack, "webhooks", "show", made["id"])
    assert gone.returncode == Exit.NOT_FOUND
    assert "404: webhook not found" in gone.stderr


async def test_event_types_and_a_webhooks_delivery_options(stack: Stack) -> None:
    """The catalog through the command line, and a webhook made with a format, GET and no
    signature, then changed back."""
    listed = await as_json(stack, "event-types", "list", "--product", "ketryx")
    assert [t["type"] for t in listed] == sorted(
        [
            "documentApproval",
            "milestoneApproval",
            "recordApproval",
            "releaseApproval",
            "testPlanApproval",
            "vulnerabilityApproval",
        ]
    )
    shown = await as_json(stack, "event-types", "show", "recordApproval")
    assert "isControlled" in shown["schema"]["properties"]
    missing = await hookline(stack, "event-types", "show", "recordApproved")
    assert missing.returncode == Exit.NOT_FOUND

    made = await as_json(
        stack,
        "webhooks",
        "create",
        "--event",
        "recordApproval",
        "--uri",
        "https://ketryx.example.com/hook",
        "--format",
        "raw",
        "--method",
        "GET",
        "--unsigned",
    )
    assert (made["format"], made["method"], made["signed"]) == ("raw", "GET", False)
    refused = await hookline(stack, "webhooks", "update", made["id"], "--format", "cloudevents")
    assert refused.returncode == Exit.REFUSED
    assert "method" in refused.stderr
    changed = await as_json(
        stack, "webhooks", "update", made["id"], "--method", "POST", "--signed", "--https-only"
    )
    assert (changed["method"], changed["signed"], changed["https_only"]) == ("POST", True, True)


async def test_publish_then_read_the_history(stack: Stack, receiver: Receiver) -> None:
    made = await as_json(
        stack, "webhooks", "create", "--event", "cli.sent", "--uri", f"{receiver.url}/sent"
    )
    published = await as_json(
        stack, "publish", "cli.sent", "--data", '{"n": 1}', "--id", "evt_cli_1"
    )
    assert published["id"] == "evt_cli_1"
    [got] = await receiver.wait_for(1, path="/sent")
    assert got.json()["data"] == {"n": 1}

    async def delivered() -> bool:
        found = await as_json(stack, "deliveries", "list", made["id"])
        return bool(found) and found[0]["outcome"] == "delivered"

    await eventually(delivered, timeout_s=20)
    delivery = await as_json(stack, "deliveries", "show", got.headers["webhook-id"])
    assert delivery["attempts"][0]["status_code"] == 200
    shown = await hookline(stack, "deliveries", "show", got.headers["webhook-id"])
    assert shown.returncode == Exit.OK
    assert "attempts" in shown.stdout


async def test_follow_prints_each_attempt_as_it_happens(stack: Stack, receiver: Receiver) -> None:
    made = await as_json(
        stack, "webhooks", "create", "--event", "cli.live", "--uri", f"{receiver.url}/live"
    )
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookline",
        "--json",
        "deliveries",
        "follow",
        made["id"],
        "--every",
        "0.2",
        "--count",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(stack),
        cwd=REPO,
    )
    try:
        await asyncio.sleep(1.5)  # its first look: what happened before is not news
        await as_json(stack, "publish", "cli.live", "--id", "evt_cli_live")
        async with asyncio.timeout(30):
            out_bytes, err_bytes = await follower.communicate()
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    out, err = out_bytes.decode(), err_bytes.decode()
    assert follower.returncode == Exit.OK, err
    [line] = out.splitlines()
    followed = json.loads(line)
    assert (followed["event_id"], followed["attempt"]["outcome"]) == ("evt_cli_live", "delivered")


async def test_dead_letters_listed_and_redriven(stack: Stack, receiver: Receiver) -> None:
    receiver.always["/dies"] = 503
    made = await as_json(
        stack, "webhooks", "create", "--event", "cli.dies", "--uri", f"{receiver.url}/dies"
    )
    await as_json(stack, "publish", "cli.dies", "--id", "evt_cli_dies")
    await receiver.wait_for(3, path="/dies", timeout_s=30)

    async def dead() -> bool:
        return len(await as_json(stack, "dead-letters", "list", "--webhook", made["id"])) == 1

    await eventually(dead, timeout_s=20)
    del receiver.always["/dies"]
    refused = await hookline(stack, "dead-letters", "redrive")
    assert refused.returncode == Exit.USAGE
    done = await as_json(stack, "dead-letters", "redrive", "--webhook", made["id"])
    assert (done["status"], done["redriven"]) == ("done", 1)
    await receiver.wait_for(4, path="/dies", timeout_s=20)
    listed = await as_json(stack, "quarantine", "list")
    assert listed == []


async def test_a_webhook_made_after_the_events_catches_up_by_replay(
    stack: Stack, receiver: Receiver
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for n in (1, 2):
        await as_json(stack, "publish", "cli.backfill", "--id", f"evt_backfill_{n}")
    made = await as_json(
        stack, "webhooks", "create", "--event", "cli.backfill", "--uri", f"{receiver.url}/backfill"
    )
    done = await as_json(stack, "webhooks", "replay", made["id"], "--since", since)
    assert (done["status"], done["sent"]) == ("done", 2)
    got = await receiver.wait_for(2, path="/backfill", timeout_s=20)
    assert {r.json()["id"] for r in got} == {"evt_backfill_1", "evt_backfill_2"}

    async def marked() -> bool:
        found = await as_json(stack, "deliveries", "list", made["id"])
        return len(found) == 2 and all(d["replay"] and d["outcome"] == "delivered" for d in found)

    await eventually(marked, timeout_s=20)


async def test_exit_statuses_say_what_happened(stack: Stack) -> None:
    bad = await hookline(stack, "publish", "no..type")
    assert bad.returncode == Exit.REFUSED
    assert "type" in bad.stderr
    wrong_token = await hookline(stack, "webhooks", "list", HOOKLINE_ADMIN_TOKEN="nope")
    assert wrong_token.returncode == Exit.UNAUTHORIZED
    nobody = await hookline(stack, "--router", "http://127.0.0.1:9", "webhooks", "list")
    assert nobody.returncode == Exit.UNAVAILABLE
    assert "cannot reach" in nobody.stderr
    usage = await hookline(stack, "webhooks", "update", "wh_x")
    assert usage.returncode == Exit.USAGE
