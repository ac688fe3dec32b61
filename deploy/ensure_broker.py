"""Make sure RabbitMQ answers AMQP; start a local `rabbitmq-server -detached` if it is installed.

Standard library only, so it runs before the virtualenv exists:
    python3 deploy/ensure_broker.py [amqp://guest:guest@127.0.0.1:5672/]
Exit 0 when the broker answers, 1 (with what to do) when it does not.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
START_TIMEOUT_S = 90
# AMQP 0-9-1 protocol header; a broker answers with a Connection.Start method frame (type 1).
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(PROTOCOL_HEADER)
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HOOKLINE_AMQP_URL", DEFAULT_URL)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if answers(host, port):
        print(f"RabbitMQ answers on {host}:{port}")
        return 0
    local = host in ("127.0.0.1", "localhost", "::1")
    server = shutil.which("rabbitmq-server")
    if not (local and server):
        print(
            f"RabbitMQ does not answer on {host}:{port}. Start one, for example:\n"
            "  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached\n"
            "  or: docker run -d -p 5672:5672 rabbitmq:3.13\n"
            "or point HOOKLINE_AMQP_URL at a running broker.",
            file=sys.stderr,
        )
        return 1
    print(f"RabbitMQ does not answer on {host}:{port}; starting `rabbitmq-server -detached`")
    subprocess.run([server, "-detached"], check=False)  # noqa: S603 - a fixed, found binary
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers(host, port):
            print(f"RabbitMQ answers on {host}:{port}")
            return 0
        time.sleep(1)
    print(
        f"RabbitMQ did not answer within {START_TIMEOUT_S}s; see its log (/var/log/rabbitmq/)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
