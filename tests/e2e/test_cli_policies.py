"""`hookline policies …` and `hookline webhooks … --policy` against a real router, run as an
operator runs them: a process, read by its output, exit status and the key file it writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hookline.cli.client import Exit
from tests.conftest import RUN_PREFIX
from tests.support.processes import ADMIN_TOKEN, REPO, Stack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        f"{RUN_PREFIX}-cli-policies",
        tmp_path_factory.mktemp("logs"),
        (("router", "router"),),
    ) as stack:
        yield stack


def hookline(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our interpreter and our command line
        [sys.executable, "-m", "hookline", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "HOOKLINE_ROUTER_URL": stack.url_of("router"),
            "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
            "COLUMNS": "200",
        },
        cwd=REPO,
        timeout=60,
        check=False,
    )


def as_json(stack: Stack, *args: str) -> Any:
    done = hookline(stack, "--json", *args)
    assert done.returncode == Exit.OK, done.stderr
    return json.loads(done.stdout)


def test_policies_from_create_to_delete(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "subscriber.pem"
    made = as_json(
        stack,
        *("policies", "create", "--name", "Signed", "--alg", "es384"),
        *("--audience", "https://sub.example.com", "--expires-in", "120"),
        *("--save-key", str(key_file)),
    )
    assert (made["jwt_alg"], made["jwt_claim_expires_in"]) == ("es384", 120)
    assert key_file.read_text() == made["public_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = load_pem_public_key(key_file.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    again = hookline(stack, "policies", "create", "--name", "x", "--alg", "hs256", "--save-key")
    assert again.returncode == Exit.USAGE  # --save-key needs a file
    kept = hookline(
        stack, "policies", "create", "--name", "x", "--alg", "hs256", "--save-key", str(key_file)
    )
    assert kept.returncode == Exit.USAGE
    assert "exists already" in kept.stderr
    assert key_file.read_text() == made["public_key"], "an existing file is never written over"

    table = hookline(stack, "policies", "list")
    assert table.returncode == Exit.OK
    assert made["id"] in table.stdout
    assert "es384" in table.stdout
    shown = as_json(stack, "policies", "show", made["id"])
    assert "public_key" not in shown

    changed = as_json(stack, "policies", "update", made["id"], "--disable", "--no-audience")
    assert (changed["disabled"], changed["jwt_audience"]) == (True, None)
    assert [p["id"] for p in as_json(stack, "policies", "list", "--disabled")] == [made["id"]]
    assert as_json(stack, "policies", "list", "--enabled") == []
    wrong = hookline(stack, "policies", "update", made["id"], "--expires-in", "5")
    assert wrong.returncode == Exit.REFUSED
    assert "jwt_claim_expires_in" in wrong.stderr
    bad_alg = hookline(stack, "policies", "create", "--name", "x", "--alg", "ps256")
    assert bad_alg.returncode == Exit.REFUSED
    assert "jwt_alg" in bad_alg.stderr
    assert hookline(stack, "policies", "update", made["id"]).returncode == Exit.USAGE

    hook = as_json(
        stack,
        *("webhooks", "create", "--event", "a.b", "--uri", "http://127.0.0.1:9/h"),
        *("--policy", made["id"]),
    )
    assert hook["webhook_policy"] == made["id"]
    refused = hookline(stack, "policies", "delete", made["id"])
    assert refused.returncode == Exit.REFUSED
    assert hook["id"] in refused.stderr
    cleared = as_json(stack, "webhooks", "update", hook["id"], "--no-policy")
    assert cleared["webhook_policy"] is None
    assert hookline(stack, "policies", "delete", made["id"]).returncode == Exit.OK
    gone = hookline(stack, "policies", "show", made["id"])
    assert gone.returncode == Exit.NOT_FOUND
    assert "404: webhook policy not found" in gone.stderr
