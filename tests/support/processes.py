"""Hookline services as real processes, the way `make run` starts them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from services.runtime.settings import ServiceSettings
from tests.support.broker import delete_install

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    killed: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else is skipped)."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def kill(self) -> None:
        """SIGKILL: no goodbye, unacked messages go back to their queues."""
        self.killed = True
        self.process.kill()
        self.process.wait()

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, then wait for a graceful exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class Stack:
    """Services started with one environment; each logs JSON to its own file."""

    env: dict[str, str]
    log_dir: Path
    services: list[ServiceProcess] = field(default_factory=list)

    def start(self, service: str, label: str | None = None, **env: str) -> ServiceProcess:
        label = label or service
        log_path = self.log_dir / f"{label}.log"
        with log_path.open("wb") as handle:  # the child keeps its own descriptor
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", f"services.{service}"],
                cwd=REPO,
                env={**os.environ, **self.env, **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        started = ServiceProcess(label, process, log_path)
        self.services.append(started)
        started.port = self._wait_started(started)
        return started

    @staticmethod
    def _wait_started(service: ServiceProcess, timeout_s: float = 60) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in service.log_lines():
                if line.get("event") == "service.started":
                    return int(line["port"])
            if service.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"{service.name} did not start:\n{service.log_path.read_text(errors='replace')}"
        )

    def url_of(self, name: str) -> str:
        """The URL of the running service called `name`, or else of the first running one whose
        name starts with it (`sender` finds `sender-2` once `sender-1` was killed)."""
        running = [s for s in self.services if s.process.poll() is None]
        for service in (*[s for s in running if s.name == name], *running):
            if service.name.startswith(name):
                return service.url
        raise LookupError(f"no running service called {name}")

    def stop_all(self) -> dict[str, int]:
        """SIGTERM to each service still running; the exit codes of those not killed."""
        codes = {service.name: service.stop() for service in reversed(self.services)}
        return {s.name: codes[s.name] for s in self.services if not s.killed}


# (service, label): what `make run` starts.
FULL_STACK = (
    ("router", "router"),
    ("producer", "producer"),
    ("sender", "sender-1"),
    ("sender", "sender-2"),
)
ADMIN_TOKEN = "e2e-admin"
INGEST_TOKEN = "e2e-ingest"


@contextmanager
def running_stack(
    amqp_url: str,
    prefix: str,
    log_dir: Path,
    services: Sequence[tuple[str, str]],
    **settings: str,
) -> Iterator[Stack]:
    """Services (service, label) on their own prefix, allowed to call loopback, logging JSON.

    `settings` are extra HOOKLINE_* variables by lower-case name. Afterwards every service gets
    SIGTERM and must exit 0 (unless a test killed it), and the install is deleted.
    """
    env = {
        "HOOKLINE_AMQP_URL": amqp_url,
        "HOOKLINE_PREFIX": prefix,
        "HOOKLINE_PORT": "0",
        "HOOKLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "HOOKLINE_INGEST_TOKEN": INGEST_TOKEN,
        "HOOKLINE_ALLOWED_TARGETS": "127.0.0.0/8",
        "HOOKLINE_LOG_FORMAT": "json",
        # Routers' delivery history beside their logs; a router started again reads on from it.
        "HOOKLINE_HISTORY_PATH": str(log_dir / "router-history.sqlite3"),
        **{f"HOOKLINE_{name.upper()}": value for name, value in settings.items()},
    }
    stack = Stack(env, log_dir)
    try:
        for service, label in services:
            stack.start(service, label)
        yield stack
    finally:
        codes = stack.stop_all()
        # Every setting that names queues (the retry schedule, the park delays) counts here.
        topology = ServiceSettings.model_validate({**settings, "prefix": prefix}).topology
        asyncio.run(delete_install(amqp_url, topology))
    assert codes == {name: 0 for name in codes}, f"unclean exits: {codes}; logs in {log_dir}"


async def post_events(
    http: aiohttp.ClientSession,
    producer_url: str,
    events: Sequence[dict[str, Any]],
    *,
    timeout_s: float = 60,
) -> int:
    """POST events until the producer accepts them (202), sending them again with the same ids
    after a 503 or a connection error, as the README tells clients to; how many tries it took."""
    tries = 0
    async with asyncio.timeout(timeout_s):
        while True:
            tries += 1
            try:
                async with http.post(
                    f"{producer_url}/events",
                    json=list(events),
                    headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                ) as response:
                    if response.status == 202:
                        return tries
                    assert response.status == 503, await response.text()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
