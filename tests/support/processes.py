"""Hookline services as real processes, the way `make run` starts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def stop_all(self) -> dict[str, int]:
        """SIGTERM to each service still running; the exit codes of those not killed."""
        codes = {service.name: service.stop() for service in reversed(self.services)}
        return {s.name: codes[s.name] for s in self.services if not s.killed}
