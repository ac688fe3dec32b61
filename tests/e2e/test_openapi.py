"""Both HTTP APIs against their own OpenAPI documents: schemathesis generates requests (valid,
invalid, and sequences that follow the documented links) with a valid token, a token of another
role or account, and none, and every answer must be documented, conform to its schema, and never
be a 5xx.

Two of schemathesis's checks are left out, each for a reason no schema can carry:
`positive_data_acceptance` (a schema-valid `uri` may still be a target that is refused, or a
`data` may still hold an integer beyond 64 bits, which the strict reading refuses anywhere in a
body) and `allow_header_conformance` (aiohttp's 405 lists the methods of `/webhooks/{id}` for
`/webhooks/enabled`, which that route would indeed take, as an id).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RUN_PREFIX
from tests.support.catalog import EXAMPLE_CATALOG
from tests.support.processes import ADMIN_TOKEN, INGEST_TOKEN, Stack, running_stack

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).with_name("st")
ACCOUNT_TOKEN = "e2e-acme-token"


@pytest.fixture(scope="module")
def stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        f"{RUN_PREFIX}-openapi",
        tmp_path_factory.mktemp("logs"),
        (("router", "router"), ("producer", "producer")),
        account_tokens=f"acme:{ACCOUNT_TOKEN}",
        # The example catalog: /event-types has types to show, events their schemas to fail.
        catalog_path=str(EXAMPLE_CATALOG),
    ) as stack:
        yield stack


@pytest.mark.parametrize(
    ("service", "token"),
    [
        ("router", ADMIN_TOKEN),
        ("router", ACCOUNT_TOKEN),
        ("router", INGEST_TOKEN),
        ("router", None),
        ("producer", INGEST_TOKEN),
        ("producer", ADMIN_TOKEN),
        ("producer", None),
    ],
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    stack: Stack, service: str, token: str | None, tmp_path: Path
) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{stack.url_of(service)}/openapi.json",
        "--checks=all",
        "--exclude-checks=positive_data_acceptance,allow_header_conformance",
        "--max-examples=25",
        "--seed=1",
        "--no-color",
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    run = subprocess.run(  # noqa: S603 - our interpreter's own tool
        command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
